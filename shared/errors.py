"""One error hierarchy for every part of Shiplight.

The data layer translates AWS ``ClientError`` codes into these; ``shared.http`` maps
them to HTTP statuses in one table. Nothing decides a status code from message text.
Every error carries a stable machine ``code`` and a human ``detail`` that is safe to
return to the caller (no secrets, no personal data).
"""

from __future__ import annotations


class ServiceError(Exception):
    code = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(ServiceError):
    code = "invalid_input"


class MalformedPayload(InvalidInput):
    """The body is not well-formed (not JSON, not an object, not UTF-8)."""

    code = "malformed_payload"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class Unauthorized(ServiceError):
    code = "unauthorized"


class Forbidden(ServiceError):
    code = "forbidden"


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class DependencyUnavailable(ServiceError):
    """An AWS dependency failed or throttled; the caller should retry."""

    code = "unavailable"


class PayloadError(ServiceError):
    """A verified payload that an adapter cannot turn into canonical events.

    Never surfaced over HTTP (the webhook was already accepted): the processor keeps
    the payload, quarantines it with this reason and counts it.
    """

    code = "unparseable_payload"
