"""``shiplight demo`` on the simulator, end to end, then ``shiplight evaluate`` on what it stored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPLIGHT = [sys.executable, "-m", "infra.cli"]


def test_a_simulated_week_of_50_shipments_is_stored_as_it_happened(tmp_path: Path) -> None:
    truth, summary_path = tmp_path / "truth.jsonl", tmp_path / "summary.json"
    demo = subprocess.run(
        [
            *SHIPLIGHT,
            "demo",
            "--no-serve",
            "--shipments",
            "50",
            "--days",
            "7",
            "--seed",
            "3",
            "--bad-input",
            "0.2",
            "--port",
            "0",
            "--state-dir",
            str(tmp_path),
            "--truth",
            str(truth),
            "--summary-json",
            str(summary_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    summary = json.loads(summary_path.read_text())
    # every request was answered as its sender should expect, forged and malformed ones refused
    assert summary["unexpected_answers"] == 0
    assert summary["bad_input_refused"] >= 1
    assert summary["events_stored"] + summary["duplicates_dropped"] == summary["events_received"]
    assert summary["duplicates_dropped"] > 0 and summary["out_of_order_absorbed"] > 0
    assert summary["carrier_polls"] > 0 and summary["poller_runs"] == 7 * 24 * 12
    assert {"generic", "usps", "ups", "fedex", "dhl"} <= set(summary["events_per_source"])
    assert sum(summary["shipments_by_status"].values()) == 50
    assert "Shipments by status" in demo.stdout and "/v1/track/" in demo.stdout
    # the truth has a header and one line per shipment
    lines = truth.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "run" and len(lines) == 51

    evaluation = subprocess.run(
        [*SHIPLIGHT, "evaluate", "--truth", str(truth), "--stored", str(tmp_path / "stored.jsonl"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert evaluation.returncode == 0, evaluation.stderr
    report = json.loads(evaluation.stdout)
    assert report["events_matched"] == report["events_expected"] > 200
    assert report["milestone_accuracy_expressible"] >= 0.99
    assert report["milestone_accuracy"] >= 0.9
    assert report["status_accuracy"] >= 0.97  # a DHL "not located" can only read as a failed delivery
    assert report["duplicates_stored"] == 0
    assert report["forged_stored"] == 0
    assert report["timestamp_error_minutes"]["within_one_minute"] >= 0.99
    assert set(report["per_carrier"]) >= {"ups", "fedex", "usps", "dhl"}


def test_evaluate_names_a_missing_truth_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [*SHIPLIGHT, "evaluate", "--truth", str(tmp_path / "nope.jsonl"), "--stored", str(tmp_path / "x.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "nope.jsonl does not exist" in done.stderr
