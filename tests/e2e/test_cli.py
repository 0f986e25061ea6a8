"""The `shiplight` command as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import EVENTS
from tests.e2e.conftest import http

SHIPLIGHT = [sys.executable, "-m", "infra.cli"]
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SHIPLIGHT, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_demo_replays_the_bundled_webhooks_and_exits(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    done = run(
        "demo", "--bundled", "--no-serve", "--port", "0", "--state-dir", str(tmp_path), "--summary-json", str(summary)
    )
    assert done.returncode == 0, done.stderr
    counts = json.loads(summary.read_text())
    # every source told its part: pushed webhooks and polled carrier APIs
    assert counts["sources"] == [
        "aftership",
        "dhl",
        "easypost",
        "fedex",
        "generic",
        "seventeentrack",
        "shippo",
        "ups",
        "usps",
    ]
    assert counts["webhooks_rejected"] == 1
    assert counts["unexpected_answers"] == 0
    assert counts["carrier_polls"] > 0
    assert counts["poll_answers_queued"] > 0
    assert counts["events_stored"] + counts["duplicates_dropped"] == counts["events_received"]
    assert counts["duplicates_dropped"] > 0
    assert counts["changes_published"] == counts["events_on_bus"] > 0
    assert counts["payloads_quarantined"] == 1
    assert counts["payloads_ignored"] >= 1
    assert counts["unmapped_codes"] >= 1
    statuses = {key: shipment["status"] for key, shipment in counts["shipments"].items()}
    assert statuses["usps:9400111899223344556677"] == "delivered"
    assert statuses["fedex:794622223333"] == "return_started"
    assert statuses["yunexpress:YT2612345678901"] == "customs_started"
    # the SurePost parcel: UPS polled, the handover found, then USPS polled for the last mile
    surepost = counts["shipments"]["ups:1Z4Y0A190348261953"]
    assert surepost["tracking_numbers"] == ["ups:1Z4Y0A190348261953", "usps:92419900000033499522966220"]
    assert surepost["status"] == "delivered"
    assert "Timelines" in done.stdout


def test_demo_serves_tracking_json_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*SHIPLIGHT, "demo", "--bundled", "--port", "0", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    assert process.stderr is not None
    url = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "tracking: " in line and url is None:
            url = line.split("tracking: ", 1)[1].strip()
        if "until Ctrl-C" in line:
            break
    assert url, process.stderr.read() if process.poll() is not None else "no tracking URL printed"
    status, view = http("GET", url)
    assert status == 200
    assert view["status"] == "delivered"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0


def test_normalize_prints_canonical_events_and_reports_unmapped_codes() -> None:
    done = run("normalize", "--carrier", "easypost", str(EVENTS / "easypost" / "tracker_updated_unknown_codes.json"))
    assert done.returncode == 0
    events = json.loads(done.stdout)
    assert [e["milestone"] for e in events] == ["in_transit", None]
    assert set(events[0]) == {
        "event_id",
        "carrier",
        "tracking_number",
        "milestone",
        "exception",
        "occurred_at",
        "occurred_at_local",
        "time_source",
        "location",
        "description",
        "raw_code",
        "received_at",
    }
    assert "unmapped code: easypost status=teleported" in done.stderr
    assert "unmapped code: easypost status_detail=drone_handoff" in done.stderr


def test_normalize_explains_what_it_cannot_read() -> None:
    done = run("normalize", "--carrier", "generic", str(EVENTS / "generic" / "missing_offset.json"))
    assert done.returncode == 1
    assert "timezone" in done.stderr
    assert run("normalize", "--carrier", "pony", str(EVENTS / "generic" / "missing_offset.json")).returncode == 2


def test_carriers_lists_every_source_with_its_ingest_mode_and_scheme() -> None:
    done = run("carriers")
    assert done.returncode == 0
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert set(lines) == {"generic", "easypost", "aftership", "shippo", "seventeentrack", "ups", "fedex", "usps", "dhl"}
    modes = {name: line.split()[2] for name, line in lines.items()}
    assert modes == {
        "generic": "push",
        "easypost": "push",
        "aftership": "push",
        "shippo": "push",
        "seventeentrack": "both",
        "ups": "both",
        "fedex": "both",
        "usps": "poll",
        "dhl": "both",
    }
    assert "x-hmac-signature" in lines["easypost"]
    assert "NFKD" in lines["easypost"]
    assert "aftership-hmac-sha256" in lines["aftership"]
    assert "base64" in lines["fedex"]
    assert "(polled)" in lines["usps"]
    assert "shiplight-signature" in lines["generic"]


def test_serve_gives_its_own_address_as_the_api_url_and_keeps_the_terminal_free_of_metrics_warnings(
    tmp_path: Path,
) -> None:
    # Given `shiplight serve` on a free port
    process = subprocess.Popen(
        [*SHIPLIGHT, "serve", "--port", "0", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("Shiplight local stack on http://127.0.0.1:"), banner
        url = banner.split(" on ", 1)[1].split()[0]
        while "Ctrl-C to stop" not in process.stdout.readline():
            assert process.poll() is None
        # When a developer reads the stack's outputs, and the merchant API answers a request that
        # publishes no metric (a key it does not know)
        status, stack = http("GET", f"{url}/_local/stack")
        assert status == 200
        status, _ = http("GET", f"{url}/v1/exceptions", headers={"authorization": "Bearer sk_live_unknown"})
        assert status == 401
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    # Then the outputs name the local gateway, as a deployed stack's name API Gateway
    assert stack["outputs"]["ApiUrl"] == url
    assert stack["outputs"]["WebhookUrl"] == f"{url}/webhooks/{{carrier}}"
    assert stack["outputs"]["ShipmentsUrl"] == f"{url}/v1/shipments"
    # And serve's terminal shows no Powertools warning about empty metrics
    assert process.returncode == 0
    assert "No application metrics to publish" not in stderr
    assert "Traceback" not in stderr
