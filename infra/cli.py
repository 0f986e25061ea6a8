"""The ``shiplight`` command (README "Commands", docs/local-stack.md)."""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, TextIO

from shared import clock
from shared.errors import NotFound, PayloadError
from shared.sources import SOURCES

EXIT_USAGE = 2  # what argparse exits with: a file or flag value the command cannot use
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `… | head` when the reader left first


class CliError(Exception):
    """What the user gave (a file, a flag value) cannot be used: ``main`` prints the message as
    one line, ``shiplight <command>: <message>``, and exits with ``EXIT_USAGE``."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line naming the problem, like every other error of the command (the usage is in --help).
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number, 0-65535 (0 picks a free one)")
    return port


def _at_least_one(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return number


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _share(text: str) -> float:
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0 <= share <= 1:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1")
    return share


def _unreadable(flag: str, path: Path, error: OSError, missing_hint: str = "") -> CliError:
    """``--flag PATH does not exist``, or ``--flag PATH: <the system's reason>`` (``Is a directory``,
    ``Permission denied``), as cat(1) would say it."""
    where = f"{flag}{' ' if flag else ''}{path}"
    if isinstance(error, FileNotFoundError):
        return CliError(f"{where} does not exist" + (f" ({missing_hint})" if missing_hint else ""))
    return CliError(f"{where}: {error.strerror or error}")


def _read_bytes(path: Path, flag: str = "") -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise _unreadable(flag, path, error) from None


def _check_json_objects(path: Path, flag: str, missing_hint: str = "") -> None:
    """Fail now, in one line, for a JSON-lines input whose lines are not all JSON objects (another
    file given by mistake), before another module reads it."""
    number = 0
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip() and not isinstance(json.loads(line), dict):
                    raise CliError(f"{flag} {path}: line {number} is not a JSON object")
    except OSError as error:
        raise _unreadable(flag, path, error, missing_hint) from None
    except UnicodeDecodeError:
        raise CliError(f"{flag} {path}: not UTF-8 text") from None
    except ValueError as error:
        raise CliError(f"{flag} {path}: line {number} is not JSON ({error})") from None


def _check_writable(path: Path, flag: str) -> None:
    """Fail now, before a long run, for an output file that could not be written at its end."""
    folder = path.parent
    if path.is_dir():
        raise CliError(f"{flag} {path}: is a directory (give a file name)")
    if not folder.is_dir():
        why = "not a directory" if folder.exists() else "no such directory"
        raise CliError(f"{flag} {path}: {folder}: {why}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise CliError(f"{flag} {path}: {os.strerror(errno.EACCES)}")


def _state_dir(path: Path) -> Path:
    """The state directory, created if needed, known to be writable."""
    if path.exists() and not path.is_dir():
        raise CliError(f"--state-dir {path}: not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _unreadable("--state-dir", path, error) from None
    if not os.access(path, os.W_OK):
        raise CliError(f"--state-dir {path}: {os.strerror(errno.EACCES)}")
    return path


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
    body = sys.stdin.buffer.read() if str(args.file) == "-" else _read_bytes(Path(args.file))
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


_SECRETS_SHAPE = '{"<source>": ["secret", ...]}'


def _load_secrets(path: Path | None) -> dict[str, list[str]] | None:
    if path is None:
        return None
    try:
        document = json.loads(_read_bytes(path, "--secrets"))
    except ValueError as error:  # not JSON, or not UTF-8
        raise CliError(f"--secrets {path}: not JSON ({error})") from None
    if not isinstance(document, dict):
        raise CliError(f"--secrets {path}: must be a JSON object {_SECRETS_SHAPE}")
    secrets: dict[str, list[str]] = {}
    for source, value in document.items():
        if source not in SOURCES:
            raise CliError(f"--secrets {path}: unknown source {source!r} (see `shiplight carriers`)")
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise CliError(f"--secrets {path}: {source!r} must be a secret or a non-empty list of secrets")
        secrets[source] = values
    return secrets


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    from infra.demo.run import _wait_for_interrupt
    from infra.local.runtime import LocalRuntime, RuntimeOptions

    secrets = _load_secrets(args.secrets)
    state_dir = _state_dir(args.state_dir)
    runtime = LocalRuntime(
        RuntimeOptions(port=args.port, secrets=secrets, state_dir=state_dir, echo_logs=args.echo_logs)
    )
    try:
        runtime.start()
        stack = runtime.require_stack()
        out.write(f"Shiplight local stack on {runtime.url} (moto at {runtime.endpoint})\n")
        for route in stack.template.http_routes():
            out.write(f"  {route.method:<5} {runtime.url}{route.path}  → {route.function}\n")
        out.write("  GET   " + runtime.url + "/_local/metrics | /_local/stack | /_local/health\n")
        for logical_id, why in sorted(stack.not_emulated.items()):
            out.write(f"  not emulated: {logical_id} — {why}\n")
        # `shiplight api-key … --local` finds this stack through this file: written before the
        # last line, so whoever reads "Ctrl-C to stop" can use it at once.
        (args.state_dir / "local.json").write_text(json.dumps({"url": runtime.url, "moto": runtime.endpoint}))
        out.write(f"Function logs in {args.state_dir / 'logs'}/. Ctrl-C to stop.\n")
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


def _check_demo_files(args: argparse.Namespace) -> None:
    """The files a demo writes at its end, checked before it starts."""
    _state_dir(args.state_dir)
    if args.summary_json is not None:
        _check_writable(args.summary_json, "--summary-json")
    if args.truth is not None:
        _check_writable(args.truth, "--truth")


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    _check_demo_files(args)
    if args.bundled:
        from infra.demo.run import DemoOptions, run_demo

        return run_demo(
            DemoOptions(
                port=args.port, serve=not args.no_serve, summary_json=args.summary_json, state_dir=args.state_dir
            ),
            out,
        )
    from infra.sim.demo import SimDemoOptions, run_simulated_demo

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
    written_by_demo = "`shiplight demo --truth FILE --state-dir DIR` writes both"
    _check_json_objects(args.truth, "--truth", written_by_demo)
    if args.stored:
        _check_json_objects(stored, "--stored", written_by_demo)
    else:
        _check_json_objects(stored, "--stored", f"the default, from --state-dir; {written_by_demo}")
    return run_evaluate(args.truth, stored, as_json=args.json, out=out)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="shiplight", description="Shiplight: real-time shipment visibility.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the embedded local stack (moto + the template's routes)")
    serve.add_argument("--port", type=_port, help="default 3000, or any free port if 3000 is taken")
    serve.add_argument("--secrets", type=Path, help='JSON file {"<source>": ["secret", ...]}')
    serve.add_argument("--state-dir", type=Path, default=Path(".shiplight"))
    serve.add_argument("--echo-logs", action="store_true", help="also print the functions' logs to stderr")
    serve.set_defaults(run=_cmd_serve)

    demo = commands.add_parser("demo", help="simulated carriers send webhooks and answer polls through the local stack")
    demo.add_argument("--port", type=_port, help="default 3000, or any free port if 3000 is taken")
    demo.add_argument("--no-serve", action="store_true", help="exit after the summary")
    demo.add_argument("--shipments", type=_at_least_one, default=60, help="simulated shipments (default 60)")
    demo.add_argument("--days", type=_at_least_one, default=10, help="simulated days (default 10)")
    demo.add_argument("--seed", type=_integer, default=7, help="the same seed gives the same world")
    demo.add_argument("--summary-json", type=Path, help="write the summary as JSON")
    demo.add_argument("--truth", type=Path, help="write the ground truth here as JSON lines")
    demo.add_argument(
        "--bad-input", type=_share, default=0.03, help="share of shipments that also get a forged or malformed webhook"
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


def _say(line: str) -> None:
    if sys.stderr is None:  # started with stderr closed: the exit code is all that is left
        return
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except OSError:  # stderr is closed too: the exit code is all that is left
        pass


def _stdout_to_devnull() -> None:
    """After a closed pipe: what is still buffered, and the interpreter's flush at exit, go nowhere
    instead of failing again (Python's documented way, see the signal module's notes on SIGPIPE)."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's StringIO)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run one command. A problem with what was given (a file, a flag value, a port, a closed
    pipe) is one line on stderr, ``shiplight <command>: …``, and a non-zero exit, never a traceback."""
    args = build_parser().parse_args(argv)
    command = " ".join(["shiplight", args.command, *([args.action] if getattr(args, "action", None) else [])])
    if sys.stdout is None:  # started with its standard output closed (`shiplight carriers >&-`)
        _say(f"{command}: standard output is closed")
        return 1
    try:
        code: int = args.run(args, sys.stdout)
        sys.stdout.flush()  # a closed pipe shows here at the latest, not in the interpreter's exit
    except CliError as error:
        _say(f"{command}: {error}")
        return EXIT_USAGE
    except BrokenPipeError:
        _stdout_to_devnull()
        _say(f"{command}: output closed early (broken pipe); the rest was not written")
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        _say(f"{command}: interrupted")
        return EXIT_INTERRUPTED
    except OSError as error:
        port = getattr(args, "port", None)
        if port is not None and error.filename is None and error.errno in (errno.EADDRINUSE, errno.EACCES):
            _say(f"{command}: --port {port}: cannot listen there: {error.strerror} (--port 0 picks a free one)")
            return EXIT_USAGE
        if error.filename is None:
            raise
        # a file or directory given, or made from what was given (disk full, a folder made read-only…)
        _say(f"{command}: {error.filename}: {error.strerror or error}")
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
