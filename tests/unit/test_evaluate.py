"""``shiplight evaluate``'s scoring on a hand-made truth: what counts as right, missed or extra."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from infra.sim.evaluate import evaluate

T0 = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)  # a Monday
RENO = {"city": "Reno", "region": "NV", "postal_code": "89502", "country": "US", "tz": "America/Los_Angeles"}
NUMBER = "9400111899223344556677"


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def truth(scans: list[tuple[str, float]], incidents: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """One USPS parcel, polled, whose true scans are (kind, hours after T0)."""
    return [
        {"type": "run", "seed": 1, "shipments": 1, "start": at(0), "end": at(24 * 5)},
        {
            "type": "shipment",
            "sim_id": "sim-1",
            "lane": "us_usps",
            "legs": [{"carrier": "usps", "tracking_number": NUMBER}],
            "push": None,
            "polled": ["usps"],
            "label_at": at(0),
            "scans": [{"kind": kind, "at": at(hours), "leg": 0, "place": RENO} for kind, hours in scans],
            "warehouse_events": [],
            "incidents": [{"type": kind, "at": at(hours)} for kind, hours in incidents],
            "claim_at": None,
            "dropped_scans": [],
            "forged": [],
        },
    ]


def stored(
    events: list[tuple[str | None, str | None, float]], exceptions: list[dict[str, Any]], status: str
) -> list[dict[str, Any]]:
    return [
        {
            "sim_id": "sim-1",
            "shipment": {"status": status},
            "events": [
                {
                    "source": "usps",
                    "carrier": "usps",
                    "tracking_number": NUMBER,
                    "occurred_at": at(hours),
                    "milestone": milestone,
                    "exception": exception,
                }
                for milestone, exception, hours in events
            ],
            "exceptions": exceptions,
        }
    ]


def raised(kind: str, *, hours: float, cause: float, received: float | None = None) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "open",
        "raised_at": at(hours),
        "cause_at": at(cause),
        "cause_received_at": at(received) if received is not None else None,
    }


SCANS = [("label_created", 0), ("picked_up", 2), ("in_transit", 20), ("damaged", 30), ("delivered", 50)]


def test_a_damage_usps_can_only_report_as_a_delay_is_missed_against_the_truth_and_right_as_reported() -> None:
    # Given a USPS parcel damaged in transit (USPS has no damage code: "DX", read as delayed),
    # and Shiplight raising `delayed` 10 minutes after the report arrived, 2 hours after the scan
    report = evaluate(
        truth(SCANS, [("damaged", 30)]),
        stored(
            [
                ("label_created", None, 0),
                ("picked_up", None, 2),
                ("in_transit", None, 20),
                (None, "delayed", 30),
                ("delivered", None, 50),
            ],
            [raised("delayed", hours=32 + 1 / 6, cause=30, received=32)],
            "delivered",
        ),
    )
    # Then against the truth the damage is missed and the delay is an extra alert
    assert report["detection"]["damaged"]["missed"] == 1
    assert report["detection"]["delayed"]["false_positives"] == 1
    # and as the carrier reported it, the delay is the one alert expected, and nothing is missed
    assert report["detection_as_reported"]["delayed"] | {"max_delay_minutes": None} == {
        "precision": 1.0,
        "recall": 1.0,
        "true_positives": 1,
        "false_positives": 0,
        "missed": 0,
        "max_delay_minutes": None,
    }
    assert "damaged" not in report["detection_as_reported"]
    # and the delay counts from the report's arrival, not from the scan
    assert report["detection"]["delayed"]["max_delay_minutes"] == 10.0
    # while the milestones are all right and nothing was stored twice
    assert report["milestone_accuracy"] == 1.0
    assert report["duplicates_stored"] == 0
    assert report["status_accuracy"] == 1.0


def test_a_missed_incident_a_format_can_say_is_missed_both_ways() -> None:
    # Given a USPS failed delivery attempt ("52", which USPS can say) that raised nothing
    scans = [("label_created", 0), ("picked_up", 2), ("out_for_delivery", 40), ("delivery_failed", 44)]
    report = evaluate(
        truth(scans, [("delivery_failed", 44)]),
        stored(
            [
                ("label_created", None, 0),
                ("picked_up", None, 2),
                ("out_for_delivery", None, 40),
                ("delivery_failed", "delivery_failed", 44),
            ],
            [],
            "delivery_failed",
        ),
    )
    # Then the miss shows in both scorings
    assert report["detection"]["delivery_failed"]["recall"] == 0.0
    assert report["detection_as_reported"]["delivery_failed"]["recall"] == 0.0


def test_a_wrong_reading_and_an_event_nothing_happened_for_are_counted() -> None:
    # Given a stored reading "arrived_hub" for a true in-transit scan, and an extra stored scan
    report = evaluate(
        truth(SCANS, []),
        stored(
            [
                ("label_created", None, 0),
                ("picked_up", None, 2),
                ("arrived_hub", None, 20),
                (None, "delayed", 30),
                ("delivered", None, 50),
                ("in_transit", None, 70),
            ],
            [],
            "delivered",
        ),
    )
    # Then one of the five expected scans is wrong (USPS can say "in transit") and one is a duplicate
    assert report["milestone_accuracy"] == 0.8
    assert report["milestone_accuracy_expressible"] == 0.8
    assert report["duplicates_stored"] == 1
