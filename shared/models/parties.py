"""The parties of a shipment as its record keeps them: the two ends and the customer.

Checked on the way in by the registration payload (``shared.models.registration``), which
only the merchant API builds; kept apart from it so that the functions that only read
records (the processor, the poller, the checker) do not build the input models.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Address(BaseModel):
    """Where a parcel leaves from or goes to, as stored on the shipment: enough for the lane
    and the local calendar, no street. Stored values were checked on the way in; reading
    them back does not check again (a stricter rule later must not make old records unreadable)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    country: str
    region: str | None = None
    city: str | None = None
    postal_code: str | None = None


class CustomerContact(BaseModel):
    """Who receives the parcel. Private: never projected into the public token index,
    never logged, never put on the event bus."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str | None = None
    email: str | None = None
    phone: str | None = None
