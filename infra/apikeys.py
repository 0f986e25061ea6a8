"""Merchant API keys from outside Lambda: ``shiplight api-key …``, the demo and the simulator.

The same store the authorizer reads (``shared.dal.apikeys``), found three ways:

- a deployed stack: its ``ApiKeysTableName`` output, with the caller's AWS credentials;
- a running ``shiplight serve``: its ``/_local/stack`` and ``/_local/health`` pages give the
  table and the moto endpoint;
- a local runtime in this process (the demo, the simulator, tests): :func:`issue_local_key`.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, PartialCredentialsError

from shared import clock
from shared.dal.apikeys import DynamoApiKeyStore
from shared.logic.api.auth import create_api_key
from shared.models.apikeys import ApiKeyRecord

if TYPE_CHECKING:
    from infra.local.runtime import LocalRuntime

LOCAL_STATE_FILE = "local.json"  # written by `shiplight serve` in its state directory
DEFAULT_LOCAL_URL = "http://127.0.0.1:3000"
OR_LOCAL = "or --local for a running `shiplight serve`"


class KeyStoreNotFound(RuntimeError):
    """The stack or local runtime holding the keys could not be found (the message says why)."""


def deployed_store(stack_name: str, region: str | None = None) -> DynamoApiKeyStore:
    """The ApiKeys table of a deployed stack (credentials and region from the usual AWS sources)."""
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    try:
        cloudformation = boto3.client("cloudformation")
    except NoRegionError:
        raise KeyStoreNotFound(
            f"no AWS region for the deployed stack {stack_name!r}: give --region REGION (or configure one: "
            f"`aws configure`, AWS_DEFAULT_REGION), {OR_LOCAL}"
        ) from None
    except BotoCoreError as error:  # a bad region name, an unknown AWS_PROFILE
        raise KeyStoreNotFound(
            f"cannot use your AWS configuration: {error} (check --region and AWS_PROFILE, {OR_LOCAL})"
        ) from None
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise KeyStoreNotFound(
            f"no usable AWS credentials to read the deployed stack {stack_name!r} ({error}): configure them "
            f"(`aws configure`, AWS_PROFILE), {OR_LOCAL}"
        ) from None
    except (ClientError, BotoCoreError) as error:
        raise KeyStoreNotFound(
            f"cannot read stack {stack_name!r} in {cloudformation.meta.region_name}: {error} "
            f"(check --stack-name and --region, {OR_LOCAL})"
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    table = outputs.get("ApiKeysTableName")
    if not table:
        raise KeyStoreNotFound(f"stack {stack_name!r} has no ApiKeysTableName output (deploy this version first)")
    return DynamoApiKeyStore(table)


def _get_json(url: str) -> Any:
    if not url.startswith(("http://", "https://")):
        raise KeyStoreNotFound(f"{url} is not an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - checked just above
            return json.loads(response.read())
    except (OSError, ValueError) as error:
        raise KeyStoreNotFound(
            f"no Shiplight local stack answers at {url}: {error} (start one with `shiplight serve`, "
            "or give its URL: --local URL)"
        ) from None


def local_url(state_dir: Path) -> str:
    """The URL of the ``shiplight serve`` that wrote ``state_dir``, else the default port."""
    state = state_dir / LOCAL_STATE_FILE
    if state.is_file():
        try:
            return str(json.loads(state.read_text())["url"])
        except (ValueError, KeyError):
            pass
    return DEFAULT_LOCAL_URL


def local_store(url: str) -> DynamoApiKeyStore:
    """The ApiKeys table of a running ``shiplight serve`` at ``url``."""
    base = url.rstrip("/")
    health = _get_json(f"{base}/_local/health")
    outputs = _get_json(f"{base}/_local/stack").get("outputs", {})
    table = outputs.get("ApiKeysTableName")
    if not table or not health.get("moto"):
        raise KeyStoreNotFound(f"the local stack at {url} has no API key table")
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": str(health["moto"]),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto's dummy credentials
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    return DynamoApiKeyStore(str(table))


def runtime_store(runtime: LocalRuntime) -> DynamoApiKeyStore:
    """The ApiKeys table of a local runtime started in this process."""
    return DynamoApiKeyStore(str(runtime.require_stack().ref("ApiKeysTable")))


def issue_local_key(runtime: LocalRuntime, label: str = "local") -> str:
    """A new API key for a local runtime in this process (the demo and the simulator use it
    to register shipments): ``Authorization: Bearer <returned key>``."""
    _record, key = create_api_key(runtime_store(runtime), label=label, now=clock.now())
    return key


def issue_key(store: DynamoApiKeyStore, label: str | None) -> tuple[ApiKeyRecord, str]:
    return create_api_key(store, label=label, now=clock.now())
