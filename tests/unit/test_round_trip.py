"""Every payload builder against its adapter: a true scan of every kind, rendered in the
source's own shape, codes and time format, reads back as the canonical milestone the
builder promises, at the true instant, for the right carrier and tracking number.

The simulator and the fake carrier API render with these builders, and the evaluation
scores Shiplight against what they promise, so this is the contract that holds them up.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest

from infra.formats.scan import CANONICAL, Leg, Parcel, Place, TrueScan
from shared.adapters import load_adapter

T0 = datetime(2026, 3, 7, 15, 20, tzinfo=UTC)  # the weekend US clocks move forward
RECEIVED = T0 + timedelta(days=9)
RENO = Place("Reno", "NV", "89502", "US", "America/Los_Angeles")
DENVER = Place("Denver", "CO", "80216", "US", "America/Denver")
AKRON = Place("Akron", "OH", "44308", "US", "America/New_York")
LEIPZIG = Place("Leipzig", "SN", "04435", "DE", "Europe/Berlin")

PARCELS = {
    "easypost": Parcel((Leg("usps", "9400111899223344556677"),), RENO, AKRON),
    "aftership": Parcel((Leg("ups", "1Z4Y0A190348261953"),), RENO, AKRON),
    "shippo": Parcel((Leg("fedex", "794611112222"),), RENO, AKRON),
    "seventeentrack": Parcel((Leg("usps", "9400111899223344556677"),), RENO, AKRON),
    "ups": Parcel((Leg("ups", "1Z4Y0A190348261953"),), RENO, AKRON),
    "fedex": Parcel((Leg("fedex", "794611112222"),), RENO, AKRON),
    "usps": Parcel((Leg("usps", "9400111899223344556677"),), RENO, AKRON),
    "dhl": Parcel((Leg("dhl", "JD014600006281230704"),), LEIPZIG, AKRON),
}
CASES = [(source, kind) for source in PARCELS for kind in sorted(CANONICAL)]


def render(source: str, parcel: Parcel, scans: list[TrueScan]) -> bytes:
    builder = importlib.import_module(f"infra.formats.{source}")
    now = scans[-1].at + timedelta(minutes=20)
    if hasattr(builder, "webhook_body"):
        body: bytes = builder.webhook_body(parcel, scans, now=now)
    else:
        body = builder.poll_response(parcel, scans, now=now)
    return body


@pytest.mark.parametrize(("source", "kind"), CASES)
def test_a_true_scan_reads_back_as_promised(source: str, kind: str) -> None:
    # Given a parcel picked up in Reno, then a scan of this kind in Denver (wall time on the
    # Sunday the clocks moved, for the carriers that write local time)
    parcel = PARCELS[source]
    first = TrueScan("picked_up", T0, RENO)
    scan = TrueScan(kind, T0 + timedelta(hours=16, minutes=7), DENVER)
    journey = [first, scan]
    if kind == "return_delivered":  # a return reaches the shipper after it started
        journey.insert(1, TrueScan("return_started", T0 + timedelta(hours=9), RENO))
    # When the source's payload is normalized
    result = load_adapter(source).normalize(render(source, parcel, journey), received_at=RECEIVED)
    # Then that scan is one event of the parcel, at its instant, read as the builder promises
    leg = parcel.first
    matching = [
        e
        for e in result.events
        if e.occurred_at.replace(second=0, microsecond=0) == scan.at.replace(second=0, microsecond=0)
    ]
    assert len(matching) == 1, [(e.occurred_at, e.milestone) for e in result.events]
    event = matching[0]
    assert (event.carrier, event.tracking_number) == (leg.carrier, leg.tracking_number)
    builder = importlib.import_module(f"infra.formats.{source}")
    assert (event.milestone, event.exception) in builder.RENDERS[kind]
    assert result.unmapped == []


@pytest.mark.parametrize("source", sorted(PARCELS))
def test_every_kind_is_renderable_and_promised(source: str) -> None:
    builder = importlib.import_module(f"infra.formats.{source}")
    assert set(builder.RENDERS) == set(CANONICAL)
    for kind, readings in builder.RENDERS.items():
        assert readings, kind
