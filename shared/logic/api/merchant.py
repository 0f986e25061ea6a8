"""The merchant API's common ground: the authenticated resolver, the services its routes
use, request bodies, tracking links and JSON answers.

A route module (``shared.logic.merchant.*``) takes a :class:`MerchantServices` and returns
models; ``functions/merchant_api/app.py`` wires each route to it in a few lines, behind
:func:`new_merchant_resolver`, so no route can run without a valid API key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from pydantic import BaseModel, ValidationError

from shared.dal.bus import EventBridgePublisher
from shared.dal.orders import DynamoOrderIndex, OrderPage
from shared.dal.shipments import DynamoShipmentStore
from shared.errors import Forbidden, InvalidInput, MalformedPayload, PayloadTooLarge, ServiceError, Unauthorized
from shared.http import JSON_HEADERS, error_body, status_for
from shared.logic.api.auth import require_merchant
from shared.logic.api.resolver import new_resolver
from shared.logic.shipments.chain import CommitOptions
from shared.logic.shipments.ports import Publisher, ShipmentStore
from shared.settings import MerchantApiSettings, load

WWW_AUTHENTICATE = 'Bearer realm="shiplight"'
Model = TypeVar("Model", bound=BaseModel)


class OrderIndex(Protocol):
    def shipments_of_order(self, order_id: str, *, limit: int, after: tuple[str, str] | None) -> OrderPage: ...


@dataclass
class MerchantServices:
    """What the merchant routes work with (real AWS resources, or fakes in unit tests)."""

    store: ShipmentStore
    orders: OrderIndex
    publisher: Publisher
    options: CommitOptions
    public_base_url: str = ""


def merchant_services() -> MerchantServices:
    """The services wired to the resources the environment names."""
    settings = load(MerchantApiSettings)
    return MerchantServices(
        store=DynamoShipmentStore(settings.shipments_table),
        orders=DynamoOrderIndex(settings.shipments_table),
        publisher=EventBridgePublisher(settings.event_bus_name),
        options=CommitOptions.from_setting(settings.poll_sources),
        public_base_url=settings.public_base_url,
    )


# ------------------------------------------------------------------------------ HTTP


def refusal(error: ServiceError) -> Response[str]:
    """The JSON answer to a refused request (401 with the RFC 6750 challenge)."""
    headers = {"cache-control": JSON_HEADERS["cache-control"]}
    if isinstance(error, Unauthorized):
        headers["www-authenticate"] = WWW_AUTHENTICATE
    return Response(
        status_code=int(status_for(error)),
        content_type="application/json",
        body=json.dumps(error_body(error)),
        headers=headers,
    )


def _require_api_key(app: APIGatewayHttpResolver, next_middleware: Callable[..., Response[Any]]) -> Response[Any]:
    try:
        key_id = require_merchant(app.current_event.raw_event)
    except (Unauthorized, Forbidden) as error:
        return refusal(error)
    app.context["api_key_id"] = key_id  # for routes that record who acted
    return next_middleware(app)


def new_merchant_resolver() -> APIGatewayHttpResolver:
    """``new_resolver()`` whose every route first requires the authorizer's ``valid`` verdict
    (``shared.logic.api.auth``): 401 without a usable key, 403 with a revoked one."""
    app = new_resolver()
    app.use(middlewares=[_require_api_key])
    return app


def json_answer(status: int, model: BaseModel, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=model.model_dump_json(),
        headers={"cache-control": JSON_HEADERS["cache-control"], **(headers or {})},
    )


def request_origin(event: dict[str, Any]) -> str:
    """The scheme and host the merchant called (``https://<api>.execute-api.…`` when deployed)."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    host = (event.get("requestContext") or {}).get("domainName") or headers.get("host") or "localhost"
    scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
    return f"{scheme}://{host}"


def tracking_url(token: str, *, public_base_url: str, origin: str) -> str:
    """The customer's tracking link: ``PUBLIC_BASE_URL`` (a base, or a template holding
    ``{token}``), else the API's own address, followed by ``/t/{token}``."""
    base = public_base_url.strip() or origin
    if "{token}" in base:
        return base.replace("{token}", token)
    return f"{base.rstrip('/')}/t/{token}"


# ------------------------------------------------------------------------------ bodies


def describe(error: ValidationError) -> str:
    """Every problem of a payload as ``field: reason`` (never the value: it may be personal)."""
    problems: list[str] = []
    for detail in error.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in detail["loc"]) or "body"
        if detail["type"] == "missing":
            reason = "is required"
        elif detail["type"] == "extra_forbidden":
            reason = "is not a field of this request"
        else:
            reason = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {reason}")
    return "; ".join(problems[:20])


def parse_body(body: str | bytes | None, model: type[Model], *, max_bytes: int) -> Model:
    """A JSON object validated by ``model``: 413 over ``max_bytes``, 400 when it is not a JSON
    object, 400 (``InvalidInput``) naming every bad field and why."""
    raw = body.encode("utf-8") if isinstance(body, str) else (body or b"")
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"body: at most {max_bytes} bytes")
    try:
        document = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise MalformedPayload("body: not a JSON document") from None
    if not isinstance(document, dict):
        raise MalformedPayload("body: a JSON object is required")
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise InvalidInput(describe(error)) from None
