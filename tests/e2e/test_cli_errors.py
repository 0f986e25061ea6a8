"""What the `shiplight` command says when it is given something it cannot use: a missing or
unreadable file, a bad flag value, a busy port, or an output pipe closed early. Each time: a
non-zero exit and one line on stderr naming the problem, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EVENTS
from tests.e2e.test_cli import ROOT, SHIPLIGHT, run

PAYLOAD = EVENTS / "easypost" / "tracker_updated_unknown_codes.json"
# A simulator truth file with its header and no shipments: enough for `evaluate` to print a report.
TRUTH_HEADER = {
    "type": "run",
    "seed": 7,
    "shipments": 0,
    "start": "2026-12-01T00:00:00+00:00",
    "end": "2026-12-02T00:00:00+00:00",
    "poll_step_minutes": 30,
}


def one_line_error(done: subprocess.CompletedProcess[str], *named: str) -> str:
    """The single stderr line of a failed command, checked to name each of ``named``."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    for name in named:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def evaluation_files(tmp_path: Path) -> tuple[Path, Path]:
    truth, stored = tmp_path / "truth.jsonl", tmp_path / "stored.jsonl"
    truth.write_text(json.dumps(TRUTH_HEADER) + "\n")
    stored.write_text("")
    return truth, stored


# ----------------------------------------------------------------------------- missing files


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["normalize", "--carrier", "ups", "{missing}"], ""),
        (["evaluate", "--truth", "{missing}"], "--truth"),
        (["evaluate", "--truth", "{truth}", "--stored", "{missing}"], "--stored"),
        (["evaluate", "--truth", "{truth}", "--state-dir", "{missing}"], "--stored"),
        (["serve", "--port", "0", "--secrets", "{missing}"], "--secrets"),
    ],
)
def test_a_missing_input_file_is_named_in_one_line(
    args: list[str], flag: str, tmp_path: Path, evaluation_files: tuple[Path, Path]
) -> None:
    # Given a path where nothing exists
    missing = tmp_path / "no" / "such-file.json"
    # When a command is asked to read it
    done = run(*(a.format(missing=missing, truth=evaluation_files[0]) for a in args))
    # Then it stops at once, naming the flag and the path, and says the file is not there
    line = one_line_error(done, flag, str(missing), "does not exist")
    assert line.startswith(f"shiplight {args[0]}: ")


@pytest.mark.parametrize(
    "args",
    [
        ["normalize", "--carrier", "ups", "{folder}"],
        ["evaluate", "--truth", "{folder}"],
        ["serve", "--port", "0", "--secrets", "{folder}"],
        ["demo", "--no-serve", "--port", "0", "--truth", "{folder}", "--state-dir", "{state}"],
        ["demo", "--no-serve", "--port", "0", "--summary-json", "{folder}", "--state-dir", "{state}"],
    ],
)
def test_a_directory_given_as_a_file_is_refused(args: list[str], tmp_path: Path) -> None:
    # Given a directory
    folder = tmp_path / "a-folder"
    folder.mkdir()
    # When it is given where a file is expected
    done = run(*(a.format(folder=folder, state=tmp_path / "state") for a in args))
    # Then the command says it is a directory
    line = one_line_error(done, str(folder))
    assert "is a directory" in line.replace(str(folder), "").lower()


def _without_root_file_access() -> list[str]:
    """A prefix that makes the command obey file permissions even when the tests run as root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, which reads every file, and setpriv is not there to drop that")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, "--bounding-set", caps, "--inh-caps", caps]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["normalize", "--carrier", "ups", "{locked}"], ""),
        (["evaluate", "--truth", "{locked}"], "--truth"),
        (["serve", "--port", "0", "--secrets", "{locked}"], "--secrets"),
    ],
)
def test_an_unreadable_file_is_named_with_the_permission_problem(args: list[str], flag: str, tmp_path: Path) -> None:
    # Given a file nobody may read
    locked = tmp_path / "locked.json"
    locked.write_text("{}")
    locked.chmod(0)
    # When a command is asked to read it
    done = subprocess.run(
        [*_without_root_file_access(), *SHIPLIGHT, *(a.format(locked=locked) for a in args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    # Then it says so, naming the file
    one_line_error(done, flag, str(locked), "Permission denied")


# ----------------------------------------------------------------------------- bad flag values


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["serve", "--port", "99999"], "--port"),
        (["serve", "--port", "-1"], "--port"),
        (["serve", "--port", "web"], "--port"),
        (["demo", "--port", "65536"], "--port"),
        (["demo", "--shipments", "0"], "--shipments"),
        (["demo", "--shipments", "many"], "--shipments"),
        (["demo", "--days", "-3"], "--days"),
        (["demo", "--seed", "1.5"], "--seed"),
        (["demo", "--bad-input", "2"], "--bad-input"),
        (["demo", "--bad-input", "nan"], "--bad-input"),
        (["evaluate"], "--truth"),
        (["normalize", "--carrier", "ups"], "file"),
        (["api-key", "frobnicate"], "frobnicate"),
        (["teleport"], "teleport"),
    ],
)
def test_a_bad_flag_value_is_one_usage_line(args: list[str], named: str) -> None:
    # Given a flag value (or a missing argument) the command cannot use
    # When it is run
    done = run(*args)
    # Then argparse's verdict is one line naming the flag, pointing at --help, with its usual exit code
    line = one_line_error(done, named, "--help")
    assert "error:" in line
    assert done.returncode == 2


def test_an_unknown_carrier_is_named(tmp_path: Path) -> None:
    # Given a payload file and a carrier Shiplight does not know
    # When normalize is asked to read it as that carrier
    done = run("normalize", "--carrier", "pony", str(PAYLOAD))
    # Then it says the source is unknown and where to find the known ones
    one_line_error(done, "'pony'", "shiplight carriers")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("not json at all", "not JSON"),
        ('["easypost-secret"]', "must be a JSON object"),
        ('{"pony": ["s3cret"]}', "unknown source 'pony'"),
        ('{"easypost": []}', "'easypost' must be"),
        ('{"easypost": [42]}', "'easypost' must be"),
    ],
)
def test_a_secrets_file_of_the_wrong_shape_is_refused_before_the_stack_starts(
    document: str, problem: str, tmp_path: Path
) -> None:
    # Given a --secrets file that is not {"<source>": ["secret", ...]}
    secrets = tmp_path / "secrets.json"
    secrets.write_text(document)
    # When serve is started with it
    done = run("serve", "--port", "0", "--secrets", str(secrets), "--state-dir", str(tmp_path / "state"))
    # Then it refuses in one line naming the file and what is wrong, and nothing was started
    one_line_error(done, "--secrets", str(secrets), problem)
    assert not (tmp_path / "state" / "local.json").exists()


def test_a_demo_output_in_a_missing_directory_is_refused_before_the_run(tmp_path: Path) -> None:
    # Given a summary path in a directory that does not exist
    summary = tmp_path / "no-such-dir" / "summary.json"
    # When a demo is asked to write it
    done = run("demo", "--no-serve", "--port", "0", "--summary-json", str(summary), "--state-dir", str(tmp_path))
    # Then it stops before simulating anything, naming the flag and the directory
    one_line_error(done, "--summary-json", str(summary.parent), "no such directory")
    assert done.stdout == ""


def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    # Given a file where the state directory should be
    state = tmp_path / "state"
    state.write_text("")
    # When serve is started with it
    done = run("serve", "--port", "0", "--state-dir", str(state))
    # Then it says the state directory is not a directory
    one_line_error(done, "--state-dir", str(state), "not a directory")


@pytest.mark.parametrize("lines", [None, "[1, 2]\n", "a line of prose\n", '{"type": "run"}\n'])
def test_a_truth_file_of_another_kind_is_refused(lines: str | None, tmp_path: Path) -> None:
    # Given a file that is not a simulator's truth (a payload given by mistake, JSON arrays, prose, a bare header)
    truth = PAYLOAD
    if lines is not None:
        truth = tmp_path / "truth.jsonl"
        truth.write_text(lines)
    stored = tmp_path / "stored.jsonl"
    stored.write_text("")
    # When it is evaluated as the truth
    done = run("evaluate", "--truth", str(truth), "--stored", str(stored))
    # Then the command says which file is not what it expects
    one_line_error(done, str(truth), "truth")


def test_a_busy_port_is_named(tmp_path: Path) -> None:
    # Given a port something else already listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # When serve is asked to listen there
        done = run("serve", "--port", str(port), "--state-dir", str(tmp_path))
    # Then it names the port, says it is in use and how to get a free one
    one_line_error(done, f"--port {port}", "in use", "--port 0")


# ----------------------------------------------------------------------------- closed pipes


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command whose stdout reader is gone, as `shiplight … | head` once head has left."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [*SHIPLIGHT, *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["carriers"],
        ["evaluate", "--truth", "{truth}", "--stored", "{stored}"],
        ["evaluate", "--truth", "{truth}", "--stored", "{stored}", "--json"],
        ["normalize", "--carrier", "easypost", str(PAYLOAD)],
    ],
)
def test_output_into_a_closed_pipe_ends_quietly_with_one_line(
    args: list[str], evaluation_files: tuple[Path, Path]
) -> None:
    # Given a command whose output pipe was closed by its reader
    truth, stored = evaluation_files
    # When it writes its output
    done = run_into_closed_pipe(*(a.format(truth=truth, stored=stored) for a in args))
    # Then it exits as a shell reports a pipe's end (128 + SIGPIPE), saying so in one line
    one_line_error(done, f"shiplight {args[0]}", "broken pipe")
    assert done.returncode == 141


# ----------------------------------------------------------------------------- api-key without a region


def test_api_key_without_a_region_says_how_to_give_one_or_use_the_local_stack(tmp_path: Path) -> None:
    # Given no AWS region anywhere: no flag, no environment variable, no config file
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")}
    env |= {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    # When the deployed stack's keys are listed
    done = subprocess.run(
        [*SHIPLIGHT, "api-key", "list", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    # Then the one line says what to do: give --region (or configure AWS), or use --local
    line = one_line_error(done, "shiplight api-key list", "region", "--region", "--local", "shiplight serve")
    assert "You must specify a region" not in line
