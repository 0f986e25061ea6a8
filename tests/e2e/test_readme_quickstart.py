"""The README's five-minute quickstart, run as a new user would paste it.

The commands are read from README.md itself (the ``bash`` blocks between the quickstart
markers), so the README cannot drift from what works. Two things differ from a person's
terminal, and only these: the commands run in a scratch folder holding a link to the repo's
``.venv``, and port 3000 is replaced by a free port (the test suite may run beside a stack
already serving on 3000).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.local.runtime import free_port
from tests.e2e.conftest import http

ROOT = Path(__file__).resolve().parents[2]
SEPARATOR = "----8<---- next block ----8<----"
BASH = shutil.which("bash") or "/bin/bash"


def quickstart_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"<!-- quickstart.*?-->(.*?)<!-- /quickstart -->", text, re.S)
    assert section, "README.md lost its quickstart markers"
    return re.findall(r"```bash\n(.*?)```", section.group(1), re.S)


def json_documents(text: str) -> list[Any]:
    """Every JSON document printed one after another (curl prints no newline between them)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return found
        document, at = decoder.raw_decode(text, at)
        found.append(document)


def test_every_quickstart_command_works_against_serve(tmp_path: Path) -> None:
    port = str(free_port())
    blocks = [block.replace("3000", port) for block in quickstart_blocks()]
    start, *rest = blocks
    assert "shiplight serve" in start, "the first quickstart block starts the stack"
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    setup, serve = start.strip().splitlines()
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Given the first terminal: the secrets file, then `shiplight serve` left running
    subprocess.run([BASH, "-euo", "pipefail", "-c", setup], cwd=tmp_path, check=True, env=environment)
    server = subprocess.Popen(
        [BASH, "-c", f"exec {serve}"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # serve says "Ctrl-C to stop" once it listens and has written .shiplight/local.json
        assert server.stdout is not None
        for line in server.stdout:
            if "Ctrl-C to stop" in line:
                break
        else:
            pytest.fail(f"serve exited before it was ready: {server.stderr.read() if server.stderr else ''}")
        assert (tmp_path / ".shiplight" / "local.json").exists()
        # When the second terminal's blocks run, in order, as pasted
        script = f"\necho '{SEPARATOR}'\n".join(rest)
        done = subprocess.run(
            [BASH, "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        registration, webhook, reads = done.stdout.split(SEPARATOR)
        # Then the shipment was registered, the signed webhook accepted, and the customer's link
        # shows the pickup without the customer's e-mail, while the merchant's view has it all
        (answer,) = json_documents(registration)
        assert answer["created"] is True and answer["tracking_url"].endswith(f"/t/{answer['tracking_token']}")
        assert json_documents(webhook)[0]["status"] == "accepted"
        public, merchant = json_documents(reads)
        assert public["status"] == "picked_up"
        assert public["events"][0]["description"] == "Loaded on UPS pickup"
        assert "sam.roe@example.com" not in json.dumps(public)
        assert merchant["status"] == "picked_up"
        assert merchant["registration"]["customer"]["email"] == "sam.roe@example.com"
        assert http("GET", f"http://127.0.0.1:{port}/v1/track/{answer['tracking_token']}")[0] == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
