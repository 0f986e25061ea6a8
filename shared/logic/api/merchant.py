"""The merchant API's common ground: the authenticated resolver, the services its routes
use, the shipment view, tracking links and JSON answers.

A route module (``shared.logic.merchant.registration`` and the ones that follow) takes a
:class:`MerchantServices` and returns models; ``functions/merchant_api/app.py`` wires each
route to it in a few lines, behind :func:`new_merchant_resolver`, so no route can run
without a valid API key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from pydantic import BaseModel

from shared.dal.bus import EventBridgePublisher
from shared.dal.orders import DynamoOrderIndex, OrderPage
from shared.dal.shipments import DynamoShipmentStore
from shared.errors import Forbidden, ServiceError, Unauthorized
from shared.http import JSON_HEADERS, error_body, status_for
from shared.logic.api.auth import require_merchant
from shared.logic.api.resolver import new_resolver
from shared.logic.ingest.parcels import CommitOptions, ShipmentStore
from shared.logic.ingest.process import EventPublisher
from shared.models.merchant import MerchantEvent, MerchantShipmentView, Registration
from shared.models.ops import QueueRow
from shared.models.shipment import Partition
from shared.models.views import STATUS_LABELS, PublicLeg
from shared.settings import MerchantApiSettings, load

WWW_AUTHENTICATE = 'Bearer realm="shiplight"'


class OrderIndex(Protocol):
    def shipments_of_order(self, order_id: str, *, limit: int, after: tuple[str, str] | None) -> OrderPage: ...


@dataclass
class MerchantServices:
    """What the merchant routes work with (real AWS resources, or fakes in unit tests)."""

    store: ShipmentStore
    orders: OrderIndex
    publisher: EventPublisher
    options: CommitOptions
    public_base_url: str = ""


def merchant_services() -> MerchantServices:
    """The services wired to the resources the environment names."""
    settings = load(MerchantApiSettings)
    sources = frozenset(s.strip() for s in settings.poll_sources.split(",") if s.strip())
    return MerchantServices(
        store=DynamoShipmentStore(settings.shipments_table),
        orders=DynamoOrderIndex(settings.shipments_table),
        publisher=EventBridgePublisher(settings.event_bus_name),
        options=CommitOptions(poll_sources=sources),
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


# ------------------------------------------------------------------------------ the view


def shipment_view(
    partition: Partition,
    *,
    tracking_link: str,
    exceptions: Iterable[QueueRow] = (),
    eta: dict[str, Any] | None = None,
) -> MerchantShipmentView:
    """Everything about one shipment for its merchant, newest event first."""
    shipment = partition.shipment
    events = sorted(partition.events, key=lambda stored: stored.event.sort_key, reverse=True)
    registration = None
    if shipment.registered_at is not None:
        registration = Registration(
            registered_at=shipment.registered_at,
            order_id=shipment.order_id,
            origin=shipment.origin,
            destination=shipment.destination,
            customer=shipment.customer,
            locale=shipment.locale,
            time_zone=shipment.time_zone,
            promised_delivery_date=shipment.promised_delivery_date,
            label_created_at=shipment.label_created_at,
        )
    return MerchantShipmentView(
        shipment_id=shipment.shipment_id,
        order_id=shipment.order_id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_numbers=[PublicLeg(carrier=key.carrier, tracking_number=key.tracking_number) for key in shipment.keys],
        status=shipment.status,
        status_label=STATUS_LABELS[shipment.status],
        status_since=shipment.status_since,
        last_event_at=shipment.last_event_at,
        event_count=shipment.event_count,
        created_at=shipment.created_at,
        updated_at=shipment.updated_at,
        tracking_token=shipment.public_token,
        tracking_url=tracking_link,
        registration=registration,
        exceptions=list(exceptions),
        eta=eta,
        events=[
            MerchantEvent(
                event_id=stored.event.event_id,
                carrier=stored.event.carrier,
                tracking_number=stored.event.tracking_number,
                milestone=stored.event.milestone,
                exception=stored.event.exception,
                occurred_at=stored.event.occurred_at,
                occurred_at_local=stored.event.occurred_at_local,
                time_source=stored.event.time_source,
                location=stored.event.location,
                description=stored.event.description,
                raw_code=stored.event.raw_code,
                source=stored.source,
                received_at=stored.event.received_at,
            )
            for stored in events
        ],
    )
