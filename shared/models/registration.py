"""Registration (``POST /v1/shipments``): what a merchant tells Shiplight about a parcel.

Three kinds of model, as everywhere: the input payload (:class:`RegistrationRequest`,
strict, every field checked at the edge), the parts kept on the shipment record
(:class:`Address`, :class:`CustomerContact`, in ``shared.models.parties``) and the output
(:class:`RegistrationAnswer`).
Every check answers with the field and the reason, never with the value: the payload
carries a customer's name, e-mail address and phone number.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, Strict

from shared.models.canonical import UtcInstant
from shared.models.geo import normalize_country
from shared.models.parties import Address, CustomerContact
from shared.text import checked_text


def _country(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 2 or normalize_country(code) != code:
        known = normalize_country(value)
        hint = f" (did you mean {known}?)" if known else ""
        raise ValueError(f"not an ISO 3166-1 alpha-2 country code{hint}")
    return code


Country = Annotated[str, Field(min_length=2, max_length=64), AfterValidator(_country)]

_POSTAL = re.compile(r"^[A-Z0-9][A-Z0-9 -]{0,18}[A-Z0-9]$|^[A-Z0-9]$")


def _postal_code(value: str) -> str:
    code = re.sub(r"\s+", " ", value.strip().upper())
    if not _POSTAL.fullmatch(code):
        raise ValueError("a postal code is 1 to 20 letters, digits, spaces or hyphens")
    return code


# WHATWG's "valid e-mail address" (what browsers accept in <input type=email>), with a dot
# required in the domain: a customer's address is on the public internet.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


def _email(value: str) -> str:
    address = value.strip()
    if not _EMAIL.fullmatch(address):
        raise ValueError("not an e-mail address")
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


def _phone(value: str) -> str:
    # Spaces, dots, hyphens and parentheses are how people write numbers; E.164 has none.
    number = re.sub(r"[\s().-]", "", value)
    if not _E164.fullmatch(number):
        raise ValueError("not an E.164 phone number (+ then country code and number, at most 15 digits)")
    return number


# RFC 5646 §2.1 "langtag", well-formed, with the language subtags that exist: ISO 639 codes
# of 2 or 3 letters (the 4 and 5-8 letter forms are reserved and none is registered, so
# "english" is refused rather than taken for a language). Grandfathered tags are refused.
_LANGTAG = re.compile(
    r"""^(?P<language>[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3})
        (?:-(?P<script>[A-Za-z]{4}))?
        (?:-(?P<region>[A-Za-z]{2}|[0-9]{3}))?
        (?P<variants>(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*)
        (?P<extensions>(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*)
        (?P<private>-[Xx](?:-[A-Za-z0-9]{1,8})+)?$""",
    re.VERBOSE,
)


def _locale(value: str) -> str:
    tag = value.strip().replace("_", "-")
    found = _LANGTAG.fullmatch(tag)
    if not found or len(tag) > 35:
        raise ValueError("not a BCP 47 language tag (e.g. en-US, fr, zh-Hant-TW)")
    # The case conventions of RFC 5646 §2.1.1: en-US, zh-Hant-TW.
    parts = [found.group("language").lower()]
    if found.group("script"):
        parts.append(found.group("script").title())
    if found.group("region"):
        parts.append(found.group("region").upper())
    rest = (found.group("variants") or "") + (found.group("extensions") or "") + (found.group("private") or "")
    return "-".join(parts) + rest.lower()


@cache
def _zones() -> frozenset[str]:
    import zoneinfo

    # Not places: a host's configuration files that tzdata happens to ship.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "posixrules", "Factory"})


def _time_zone(value: str) -> str:
    name = value.strip()
    if name not in _zones():
        raise ValueError("not an IANA time zone name (e.g. America/Chicago, Europe/Paris)")
    return name


def _tracking_number(value: str) -> str:
    # As the adapters store it (shared.adapters.base.tracking_number): no spaces, upper case.
    cleaned = re.sub(r"\s+", "", value).upper()
    if not re.fullmatch(r"[A-Z0-9-]{1,64}", cleaned):
        raise ValueError("a tracking number is 1 to 64 letters, digits or hyphens")
    return cleaned


def _carrier_name(value: str) -> str:
    name = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.()&-]{1,63}", name):
        raise ValueError("not a carrier name (e.g. ups, fedex, usps, dhl)")
    return name


CarrierName = Annotated[str, Field(max_length=64), AfterValidator(_carrier_name)]
TrackingNumberInput = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_tracking_number)]
Text100 = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(checked_text)]
Text200 = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(checked_text)]
OrderId = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(checked_text)]
Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
Phone = Annotated[str, Field(max_length=32), AfterValidator(_phone)]
Locale = Annotated[str, Field(max_length=35), AfterValidator(_locale)]
TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(_time_zone)]
PostalCode = Annotated[str, Field(max_length=20), AfterValidator(_postal_code)]


# ------------------------------------------------------------------------------ input


class AddressInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    country: Country
    region: Text100 | None = None
    city: Text100 | None = None
    postal_code: PostalCode | None = None

    def stored(self) -> Address:
        return Address.model_validate(self.model_dump())


class CustomerInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Text200 | None = None
    email: Email | None = None
    phone: Phone | None = None

    def stored(self) -> CustomerContact | None:
        contact = CustomerContact.model_validate(self.model_dump())
        return contact if any((contact.name, contact.email, contact.phone)) else None


class LegInput(BaseModel):
    """A last-mile carrier's tracking number for the same parcel (docs/sources.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    carrier: CarrierName
    tracking_number: TrackingNumberInput


class RegistrationRequest(BaseModel):
    """The body of ``POST /v1/shipments`` (the README documents every field)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    carrier: CarrierName
    tracking_number: TrackingNumberInput
    last_mile: LegInput | None = None
    order_id: OrderId
    origin: AddressInput
    destination: AddressInput
    customer: CustomerInput | None = None
    locale: Locale | None = None
    time_zone: TimeZoneName | None = None
    promised_delivery_date: Annotated[date, Strict()] | None = None  # YYYY-MM-DD
    label_created_at: Annotated[AwareDatetime, Strict()] | None = None  # RFC 3339, with an offset


# ------------------------------------------------------------------------------ output


class RegistrationAnswer(BaseModel):
    """What ``POST /v1/shipments`` answers (201 created, 200 existing)."""

    model_config = ConfigDict(frozen=True)

    shipment_id: str
    tracking_token: str
    tracking_url: str
    order_id: str
    carrier: str
    tracking_number: str
    created: bool
    registered_at: UtcInstant
