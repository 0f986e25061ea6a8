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


# ---------------------------------------------------------------------------- silences


def parcel(
    carrier: str,
    lane: str,
    origin: dict[str, str],
    destination: dict[str, str],
    scans: list[tuple[str, float]],
    incidents: tuple[tuple[str, float], ...] = (),
) -> list[dict[str, Any]]:
    """One parcel of ``carrier`` (pushed and polled) from ``origin`` to ``destination``."""
    header, line = truth([], [])
    line |= {
        "lane": lane,
        "legs": [{"carrier": carrier, "tracking_number": NUMBER}],
        "push": carrier,
        "polled": [carrier],
        "origin": origin,
        "destination": destination,
        "scans": [{"kind": kind, "at": at(hours), "leg": 0, "place": origin} for kind, hours in scans],
        "incidents": [{"type": kind, "at": at(hours)} for kind, hours in incidents],
    }
    return [header, line]


LEIPZIG = {"city": "Leipzig", "region": None, "postal_code": "04109", "country": "DE", "tz": "Europe/Berlin"}
GRAZ = {"city": "Graz", "region": None, "postal_code": "8010", "country": "AT", "tz": "Europe/Vienna"}
BERLIN = {"city": "Berlin", "region": None, "postal_code": "10115", "country": "DE", "tz": "Europe/Berlin"}
# Tuesday 11:00 in Germany, then nothing for 60 hours: past a domestic lane's 48 business hours
# (and its grace), short of a cross-border lane's 72
QUIET = [("label_created", 0), ("picked_up", 2), ("in_transit", 20), ("arrived_hub", 80)]


def test_a_lane_between_two_countries_is_judged_by_the_cross_border_threshold() -> None:
    events = [("label_created", None, 0), ("picked_up", None, 2), ("in_transit", None, 20), ("arrived_hub", None, 80)]
    # Given a DHL parcel from Leipzig to Graz (an EU lane, not a cross-border one by name) that
    # raised no stall over its 60-hour gap
    abroad = evaluate(parcel("dhl", "eu_dhl", LEIPZIG, GRAZ, QUIET), stored(events, [], "arrived_hub"))
    # Then nothing was missed: between two countries the rule waits 72 business hours
    assert "stalled" not in abroad["detection"]
    # while the same gap from Leipzig to Berlin had to raise one
    at_home = evaluate(parcel("dhl", "eu_dhl", LEIPZIG, BERLIN, QUIET), stored(events, [], "arrived_hub"))
    assert at_home["detection"]["stalled"]["missed"] == 1


def test_a_loss_the_format_reports_as_a_hold_leaves_the_silence_rules_running() -> None:
    # Given a FedEx parcel lost at a hub: FedEx's "package not located" is a shipment exception,
    # read as a hold, and two business days later Shiplight raised a stall
    scans = [("label_created", 0), ("picked_up", 2), ("arrived_hub", 20), ("lost", 30)]
    report = evaluate(
        parcel("fedex", "us_fedex", RENO, RENO, scans, [("lost", 30)]),
        stored(
            [("label_created", None, 0), ("picked_up", None, 2), ("arrived_hub", None, 20), (None, "held", 30)],
            [raised("held", hours=30.2, cause=30, received=30.1), raised("stalled", hours=78.1, cause=78)],
            "arrived_hub",
        ),
    )
    # Then against the truth the loss is missed and both alerts are extra (a lost parcel is not stalled)
    assert report["detection"]["lost"]["missed"] == 1
    assert report["detection"]["stalled"]["false_positives"] == 1
    # and as FedEx reported it, the hold and the stall after it are the two alerts expected
    for kind in ("held", "stalled"):
        assert report["detection_as_reported"][kind]["true_positives"] == 1
        assert report["detection_as_reported"][kind]["false_positives"] == 0
