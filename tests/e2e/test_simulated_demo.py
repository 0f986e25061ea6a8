"""``shiplight demo`` on the simulator, end to end, then ``shiplight evaluate`` on what it stored."""

from __future__ import annotations

import json
import os
import re
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


def _small_demo(state_dir: Path, hash_seed: str, *extra: str) -> subprocess.Popen[str]:
    """A short `shiplight demo --no-serve` (8 shipments, 3 days) in its own process."""
    return subprocess.Popen(
        [
            *SHIPLIGHT,
            "demo",
            "--no-serve",
            "--shipments",
            "8",
            "--days",
            "3",
            "--seed",
            "11",
            "--port",
            "0",
            "--state-dir",
            str(state_dir),
            "--summary-json",
            str(state_dir / "summary.json"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
    )


def test_two_demo_runs_with_the_same_arguments_tell_the_same_story(tmp_path: Path) -> None:
    # Given the same demo arguments and seed, run twice side by side, in processes that hash
    # strings differently (as any two processes may) and compete for the machine
    runs = [_small_demo(tmp_path / name, hash_seed) for name, hash_seed in (("first", "1"), ("second", "2"))]
    # When both finish
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stdout[-2000:] + stderr[-2000:]
    first, second = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("first", "second"))
    # Then their summaries are the same, figure for figure, except how long each took
    assert set(first.pop("timing")) >= {"wall_seconds", "simulated_hours_per_second"}
    assert set(second.pop("timing")) >= {"wall_seconds", "simulated_hours_per_second"}
    assert first == second
    # and they are about something: events came in, and carriers were polled
    assert first["events_received"] > 0 and first["carrier_polls"] > 0


def test_the_demo_summary_speaks_plainly_and_keeps_the_tables_for_details(tmp_path: Path) -> None:
    # Given a short demo run with --details and one without
    runs = [_small_demo(tmp_path / "plain", "0"), _small_demo(tmp_path / "detailed", "0", "--details")]
    # When both finish
    (plain, _), (detailed, _) = (run.communicate(timeout=300) for run in runs)
    assert [run.returncode for run in runs] == [0, 0], plain[-2000:] + detailed[-2000:]
    # Then the plain one says what happened without the simulator's jargon or its tables
    assert "duplicates ignored" in plain and "late scans" in plain and "Exceptions" in plain
    for jargon in ("out-of-order", "absorbed", "better readings", "held_back", "timestamp error"):
        assert jargon not in plain
    # and, served by nothing, it prints no tracking address to open, only how to get one
    assert "http://127.0.0.1:<port>/v1/track/<token>" in plain
    assert re.search(r"127\.0\.0\.1:\d+/v1/track/", plain) is None
    # while --details adds the scoring tables and the answers per request kind
    assert "Against the ground truth" in detailed and "timestamp error" in detailed
    assert "Requests sent" in detailed and "shipments registered by the order system" in detailed
