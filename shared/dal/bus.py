"""The EventBridge bus ``shiplight``: PutEvents in calls of at most 10 entries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shared.dal.aws import aws_call, client
from shared.models.shipment import OutboxEntry

EVENT_SOURCE = "shiplight"
MAX_ENTRIES_PER_CALL = 10


class EventBridgePublisher:
    """``EventPublisher`` on EventBridge (see ``shared.logic.ingest.process``)."""

    def __init__(self, bus_name: str) -> None:
        self.bus_name = bus_name

    def publish(self, entries: Sequence[OutboxEntry]) -> list[OutboxEntry]:
        """Publish ``entries`` in order; returns those EventBridge did not accept."""
        failed: list[OutboxEntry] = []
        events = client("events")
        for start in range(0, len(entries), MAX_ENTRIES_PER_CALL):
            chunk = list(entries[start : start + MAX_ENTRIES_PER_CALL])
            request: list[dict[str, Any]] = [
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": entry.detail_type,
                    "Detail": json.dumps(entry.detail, separators=(",", ":"), ensure_ascii=False),
                    "EventBusName": self.bus_name,
                    "Resources": [],
                }
                for entry in chunk
            ]
            with aws_call("publish to the event bus"):
                response = events.put_events(Entries=request)
            if response.get("FailedEntryCount", 0):
                for entry, result in zip(chunk, response.get("Entries", []), strict=False):
                    if result.get("ErrorCode"):
                        failed.append(entry)
        return failed
