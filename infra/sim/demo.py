"""``shiplight demo``: a simulated fortnight of carrier traffic through the embedded stack, then
the story a merchant wants — what happened, how accurate and how fast, in plain words (the
scoring tables with ``--details``) — and, while it serves, the URLs to look at."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from infra.sim.evaluate import evaluate, print_report, read_lines
from infra.sim.reporting import Chaos
from infra.sim.runner import SimOptions, SimRun, simulate, write_stored, write_truth
from infra.sim.summary import print_summary, summarize
from shared.models.shipment import Partition


@dataclass
class SimDemoOptions:
    shipments: int = 60
    days: int = 10
    seed: int = 7
    port: int | None = None
    serve: bool = True
    summary_json: Path | None = None
    truth: Path | None = None
    state_dir: Path = Path(".shiplight")
    bad_input: float = 0.03  # share of shipments that also get a forged or malformed webhook
    details: bool = False  # also print the scoring tables, answers per request kind, delays per carrier


def _progress(out: TextIO) -> Any:
    """A rich progress bar over simulated time when ``out`` is a terminal; otherwise nothing."""
    if not (hasattr(out, "isatty") and out.isatty()):
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]simulating[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=Console(file=out),
        transient=True,
    )
    task = bar.add_task("", total=1.0)

    first: list[datetime] = []

    def advance(now: datetime, end: datetime, sent: int) -> None:
        if not first:
            first.append(now)
        done = (now - first[0]).total_seconds() / max((end - first[0]).total_seconds(), 1.0)
        bar.update(task, completed=done, description=f"{now:%a %d %b %H:%M} UTC · {sent} requests")

    return bar, advance


def _examples(partitions: dict[str, Partition]) -> list[Partition]:
    """One shipment per status, the most eventful first: what to open in the browser."""
    chosen: dict[str, Partition] = {}
    for partition in sorted({id(p): p for p in partitions.values()}.values(), key=lambda p: -len(p.events)):
        status = partition.shipment.status.value if partition.shipment.status else "none"
        chosen.setdefault(status, partition)
    return list(chosen.values())


def run_simulated_demo(options: SimDemoOptions, out: TextIO) -> int:
    options.state_dir.mkdir(parents=True, exist_ok=True)
    out.write(
        f"Shiplight demo: {options.shipments} simulated shipments over {options.days} days (seed {options.seed}). "
        "Carriers, tracking services and a warehouse send their news to Shiplight, which also asks the carriers "
        "that send none; all of it runs on this machine.\n"
    )
    out.flush()
    bar, advance = _progress(out)
    sim = SimOptions(
        shipments=options.shipments,
        days=options.days,
        seed=options.seed,
        port=options.port,
        state_dir=options.state_dir,
        chaos=Chaos(bad_input=options.bad_input),
    )
    if bar is not None:
        with bar:
            run = simulate(sim, progress=advance)
    else:
        run = simulate(sim)
    try:
        return _report(run, options, out)
    finally:
        run.runtime.stop()


def _report(run: SimRun, options: SimDemoOptions, out: TextIO) -> int:
    truth_path = options.truth or options.state_dir / "truth.jsonl"
    stored_path = options.state_dir / "stored.jsonl"
    write_truth(run, truth_path)
    partitions = write_stored(run, stored_path)
    summary = summarize(run, partitions)
    accuracy = evaluate(read_lines(truth_path), read_lines(stored_path))
    summary["evaluation"] = accuracy
    print_summary(summary, out, details=options.details)
    if options.details:
        out.write("\nAgainst the ground truth:\n")
        print_report(accuracy, out)
    serving = options.serve and not run.unexpected
    base = run.runtime.url
    if serving:
        pages: dict[str, str] = {}
        out.write("\nLook at (served until Ctrl-C):\n")
        for partition in _examples(partitions):
            shipment = partition.shipment
            label = shipment.status.value if shipment.status else "no status"
            pages[label] = f"{base}/v1/track/{shipment.public_token}"
            out.write(f"  {label:<22} tracking: {pages[label]}\n")
        out.write(f"  metrics: {base}/_local/metrics   stack outputs: {base}/_local/stack\n")
        summary["links"] = {"tracking_pages": pages, "metrics": f"{base}/_local/metrics"}
    else:
        # Nothing listens any more: no address to open, only how to get one.
        why = "--no-serve" if not options.serve else "the run went wrong, see below"
        out.write(
            f"\nNothing is served now ({why}). Run `shiplight demo` without --no-serve to open one shipment's "
            "tracking per status (http://127.0.0.1:<port>/v1/track/<token>) while it serves.\n"
        )
    out.write(
        f"Files: the ground truth {truth_path}, what Shiplight stored {stored_path}, "
        f"function logs {options.state_dir / 'logs'}/\n"
        f"  score them again: shiplight evaluate --truth {truth_path} --stored {stored_path}\n"
    )
    if not options.details:
        out.write(
            "More: `shiplight demo --details` adds the scoring tables per carrier and exception type, the answers "
            "per request kind and the delays per carrier.\n"
        )
    summary["timing"] = summary.pop("timing")  # last: the one object that differs between two runs
    if options.summary_json:
        options.summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    if run.unexpected:
        out.write(f"\n{len(run.unexpected)} requests were not answered as expected, e.g. {run.unexpected[:3]}\n")
        return 1
    if serving:
        from infra.demo.run import _wait_for_interrupt

        out.write("\nServing the tracking JSON above until Ctrl-C.\n")
        out.flush()
        _wait_for_interrupt()
    return 0


def run_evaluate(truth: Path, stored: Path, *, as_json: bool, out: TextIO) -> int:
    for path in (truth, stored):
        if not path.is_file():
            sys.stderr.write(f"shiplight evaluate: {path} does not exist (run `shiplight demo --truth FILE` first)\n")
            return 2
    try:
        report = evaluate(read_lines(truth), read_lines(stored))
    except (ValueError, KeyError, StopIteration) as error:
        sys.stderr.write(f"shiplight evaluate: {truth} is not a simulator truth file ({error!r})\n")
        return 2
    if as_json:
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        print_report(report, out)
    return 0
