"""The ``shiplight`` command (README "Commands", docs/local-stack.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from shared import clock
from shared.errors import NotFound, PayloadError
from shared.sources import SOURCES


def _cmd_carriers(args: argparse.Namespace, out: TextIO) -> int:
    rows = [("source", "kind", "ingest", "webhook signature")]
    for source in SOURCES.values():
        scheme = source.signature.description if source.signature else "— (polled)"
        rows.append((source.name, source.kind, source.ingest, scheme))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3] + "\n"
        )
    return 0


def _cmd_normalize(args: argparse.Namespace, out: TextIO) -> int:
    from shared.adapters import load_adapter

    try:
        adapter = load_adapter(args.carrier)
    except NotFound as error:
        sys.stderr.write(f"shiplight normalize: {error.detail}\n")
        return 2
    body = sys.stdin.buffer.read() if str(args.file) == "-" else Path(args.file).read_bytes()
    try:
        result = adapter.normalize(body, received_at=clock.now())
    except PayloadError as error:
        sys.stderr.write(f"shiplight normalize: cannot read this {args.carrier} payload: {error.detail}\n")
        return 1
    out.write(json.dumps([event.to_json_dict() for event in result.events], indent=2, ensure_ascii=False) + "\n")
    if result.ignored:
        sys.stderr.write(f"ignored: {result.ignored}\n")
    for code in sorted(set(result.unmapped)):
        sys.stderr.write(f"unmapped code: {args.carrier} {code} (x{result.unmapped.count(code)})\n")
    return 0


def _load_secrets(path: Path | None) -> dict[str, list[str]] | None:
    if path is None:
        return None
    document = json.loads(path.read_text())
    if not isinstance(document, dict):
        raise SystemExit('--secrets must hold a JSON object {"<source>": ["secret", ...]}')
    return {key: [value] if isinstance(value, str) else list(value) for key, value in document.items()}


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    from infra.demo.run import _wait_for_interrupt
    from infra.local.runtime import LocalRuntime, RuntimeOptions

    runtime = LocalRuntime(
        RuntimeOptions(
            port=args.port, secrets=_load_secrets(args.secrets), state_dir=args.state_dir, echo_logs=args.echo_logs
        )
    )
    runtime.start()
    try:
        stack = runtime.require_stack()
        out.write(f"Shiplight local stack on {runtime.url} (moto at {runtime.endpoint})\n")
        for route in stack.template.http_routes():
            out.write(f"  {route.method:<5} {runtime.url}{route.path}  → {route.function}\n")
        out.write("  GET   " + runtime.url + "/_local/metrics | /_local/stack | /_local/health\n")
        for logical_id, why in sorted(stack.not_emulated.items()):
            out.write(f"  not emulated: {logical_id} — {why}\n")
        out.write(f"Function logs in {args.state_dir / 'logs'}/. Ctrl-C to stop.\n")
        # `shiplight api-key … --local` finds this stack through this file.
        (args.state_dir / "local.json").write_text(json.dumps({"url": runtime.url, "moto": runtime.endpoint}))
        out.flush()
        _wait_for_interrupt()
        return 0
    finally:
        runtime.stop()


def _key_store(args: argparse.Namespace) -> Any:
    from infra.apikeys import deployed_store, local_store, local_url

    if args.local is not None:
        return local_store(args.local or local_url(args.state_dir))
    return deployed_store(args.stack_name, args.region)


def _cmd_api_key(args: argparse.Namespace, out: TextIO) -> int:
    from infra.apikeys import KeyStoreNotFound
    from shared.errors import ServiceError
    from shared.logic.api.auth import create_api_key, revoke_api_key

    try:
        store = _key_store(args)
        if args.action == "create":
            record, key = create_api_key(store, label=args.label, now=clock.now())
            if args.json:
                out.write(json.dumps({**record.listing(), "api_key": key}) + "\n")
            else:
                out.write(key + "\n")
                sys.stderr.write(
                    f"API key {record.key_id} ({record.label or 'no label'}) created. This is the only time it is "
                    "shown: send it as 'Authorization: Bearer <key>'.\n"
                )
        elif args.action == "list":
            listing = [record.listing() for record in store.all()]
            if args.json:
                out.write(json.dumps(listing, indent=2) + "\n")
            else:
                rows = [("key id", "label", "created", "revoked")]
                rows += [
                    (r["key_id"] or "", r["label"] or "", r["created_at"] or "", r["revoked_at"] or "-")
                    for r in listing
                ]
                widths = [max(len(row[i]) for row in rows) for i in range(4)]
                for row in rows:
                    out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
        else:
            record = revoke_api_key(store, args.key_id, now=clock.now())
            if args.json:
                out.write(json.dumps(record.listing()) + "\n")
            else:
                out.write(f"API key {record.key_id} revoked at {record.revoked_at} (within 5 minutes everywhere)\n")
        return 0
    except (KeyStoreNotFound, ServiceError) as error:
        sys.stderr.write(f"shiplight api-key {args.action}: {getattr(error, 'detail', error)}\n")
        return 1


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    if args.bundled:
        from infra.demo.run import DemoOptions, run_demo

        return run_demo(
            DemoOptions(
                port=args.port, serve=not args.no_serve, summary_json=args.summary_json, state_dir=args.state_dir
            ),
            out,
        )
    from infra.sim.demo import SimDemoOptions, run_simulated_demo

    if args.shipments < 1 or args.days < 1 or not 0 <= args.bad_input <= 1:
        sys.stderr.write("shiplight demo: --shipments and --days must be at least 1, --bad-input in [0, 1]\n")
        return 2
    return run_simulated_demo(
        SimDemoOptions(
            shipments=args.shipments,
            days=args.days,
            seed=args.seed,
            port=args.port,
            serve=not args.no_serve,
            summary_json=args.summary_json,
            truth=args.truth,
            state_dir=args.state_dir,
            bad_input=args.bad_input,
            details=args.details,
        ),
        out,
    )


def _cmd_evaluate(args: argparse.Namespace, out: TextIO) -> int:
    from infra.sim.demo import run_evaluate

    stored = args.stored or args.state_dir / "stored.jsonl"
    return run_evaluate(args.truth, stored, as_json=args.json, out=out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shiplight", description="Shiplight: real-time shipment visibility.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the embedded local stack (moto + the template's routes)")
    serve.add_argument("--port", type=int, help="default 3000, or any free port if 3000 is taken")
    serve.add_argument("--secrets", type=Path, help='JSON file {"<source>": ["secret", ...]}')
    serve.add_argument("--state-dir", type=Path, default=Path(".shiplight"))
    serve.add_argument("--echo-logs", action="store_true", help="also print the functions' logs to stderr")
    serve.set_defaults(run=_cmd_serve)

    demo = commands.add_parser("demo", help="simulated carriers send webhooks and answer polls through the local stack")
    demo.add_argument("--port", type=int, help="default 3000, or any free port if 3000 is taken")
    demo.add_argument("--no-serve", action="store_true", help="exit after the summary")
    demo.add_argument("--shipments", type=int, default=60, help="simulated shipments (default 60)")
    demo.add_argument("--days", type=int, default=10, help="simulated days (default 10)")
    demo.add_argument("--seed", type=int, default=7, help="the same seed gives the same world")
    demo.add_argument("--summary-json", type=Path, help="write the summary as JSON")
    demo.add_argument("--truth", type=Path, help="write the ground truth here as JSON lines")
    demo.add_argument(
        "--bad-input", type=float, default=0.03, help="share of shipments that also get a forged or malformed webhook"
    )
    demo.add_argument("--bundled", action="store_true", help="replay the small bundled story instead")
    demo.add_argument(
        "--details", action="store_true", help="also print the scoring tables, answers per request kind and delays"
    )
    demo.add_argument("--state-dir", type=Path, default=Path(".shiplight"))
    demo.set_defaults(run=_cmd_demo)

    evaluate = commands.add_parser("evaluate", help="score what Shiplight stored against a demo's ground truth")
    evaluate.add_argument("--truth", type=Path, required=True, help="the truth file of a `shiplight demo` run")
    evaluate.add_argument("--stored", type=Path, help="what was stored (default: the state dir's stored.jsonl)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object (docs/simulator.md)")
    evaluate.add_argument("--state-dir", type=Path, default=Path(".shiplight"))
    evaluate.set_defaults(run=_cmd_evaluate)

    normalize = commands.add_parser("normalize", help="print the canonical events of one payload")
    normalize.add_argument("--carrier", required=True, help="source name, see `shiplight carriers`")
    normalize.add_argument("file", help="payload file, or - for stdin")
    normalize.set_defaults(run=_cmd_normalize)

    api_key = commands.add_parser("api-key", help="create, list or revoke merchant API keys")
    key_actions = api_key.add_subparsers(dest="action", required=True)
    key_create = key_actions.add_parser("create", help="create a key and print it (only this once)")
    key_create.add_argument("--label", help="what the key is for, e.g. the shop or system using it")
    key_actions.add_parser("list", help="every key: id, label, created, revoked (never the key)")
    key_revoke = key_actions.add_parser("revoke", help="revoke a key (takes effect within 5 minutes)")
    key_revoke.add_argument("key_id", help="the key id, as `list` shows it")
    for sub in key_actions.choices.values():
        sub.add_argument(
            "--local",
            nargs="?",
            const="",
            metavar="URL",
            help="a running `shiplight serve` (default: the one that wrote --state-dir, else port 3000)",
        )
        sub.add_argument("--state-dir", type=Path, default=Path(".shiplight"))
        sub.add_argument("--stack-name", default="shiplight", help="deployed stack (default: shiplight)")
        sub.add_argument("--region", help="AWS region of the deployed stack (default: your AWS configuration)")
        sub.add_argument("--json", action="store_true", help="print JSON")
    api_key.set_defaults(run=_cmd_api_key)

    carriers = commands.add_parser("carriers", help="supported sources, their ingest mode and signature scheme")
    carriers.set_defaults(run=_cmd_carriers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args, sys.stdout)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
