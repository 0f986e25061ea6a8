"""The ports of the write path, each declared once.

``shared.dal`` implements them on DynamoDB and EventBridge (``DynamoShipmentStore``,
``EventBridgePublisher``); ``tests/fakes.py`` implements them in memory, type-checked against
these Protocols so the fakes cannot drift. The third port, the clock, is
``shared.clock.Clock``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from shared.dal.shipments import Commit
from shared.models.shipment import OutboxEntry, Partition, TrackingKey


class ShipmentReader(Protocol):
    """The shipments table as the read side uses it (views): reads only."""

    def load(self, shipment_id: str) -> Partition | None:
        """A shipment's record, timeline, incidents and unpublished outbox (one Query)."""
        ...


class ShipmentStore(ShipmentReader, Protocol):
    """The shipments table as the write path uses it."""

    def resolve(self, keys: Collection[TrackingKey]) -> dict[TrackingKey, str]:
        """The shipment id holding each tracking number already known (strongly consistent)."""
        ...

    def commit(self, commit: Commit) -> None:
        """Write one change atomically; ``Conflict`` when anything it is conditioned on moved."""
        ...

    def delete_outbox(self, entries: Sequence[OutboxEntry]) -> None:
        """Forget outbox entries the bus accepted."""
        ...


class Publisher(Protocol):
    """The event bus."""

    def publish(self, entries: Sequence[OutboxEntry]) -> list[OutboxEntry]:
        """Publish ``entries`` in order; returns those the bus refused."""
        ...
