"""Cached botocore clients and the translation of AWS errors into ``shared.errors``."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import Conflict, DependencyUnavailable, NotFound, ServiceError

_lock = threading.Lock()
_clients: dict[tuple[str, ...], Any] = {}
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=10,
)


def client(service: str) -> Any:
    """A botocore client for ``service``, created once per endpoint/region/credentials.

    The cache key includes the endpoint and credential environment, so a test that
    starts moto, or the local runtime switching to its moto server, gets a fresh client.
    """
    key = (
        service,
        os.environ.get("AWS_ENDPOINT_URL", ""),
        os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "")),
        os.environ.get("AWS_ACCESS_KEY_ID", ""),
    )
    with _lock:
        found = _clients.get(key)
        if found is None:
            session = botocore.session.get_session()
            found = session.create_client(service, config=_CONFIG)
            _clients[key] = found
        return found


def reset_clients() -> None:
    """Forget every cached client (tests start and stop moto between cases)."""
    with _lock:
        _clients.clear()


_THROTTLING = {
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "SlowDown",
    "TransactionInProgressException",
}


def translate(error: Exception, what: str) -> ServiceError:
    """One table from AWS error codes to the domain's errors."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("ConditionalCheckFailedException", "TransactionConflictException"):
            return Conflict(f"{what}: concurrent update")
        if code in ("NoSuchKey", "ResourceNotFoundException") and what.startswith("read"):
            return NotFound(f"{what}: not found")
        if code in _THROTTLING:
            return DependencyUnavailable(f"{what}: AWS is throttling or unavailable ({code})")
        return DependencyUnavailable(f"{what}: AWS error {code}")
    return DependencyUnavailable(f"{what}: {type(error).__name__}")


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Translate AWS errors raised inside the block."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise translate(error, what) from error


def query_pages(request: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
    """Every item a DynamoDB ``Query`` answers, decoded, page after page (``request`` is the
    Query's parameters; ``what`` names the read in errors)."""
    from shared.dal.codec import decode_item

    ddb = client("dynamodb")
    while True:
        with aws_call(what):
            response = ddb.query(**request)
        for raw in response.get("Items", []):
            yield decode_item(raw)
        if "LastEvaluatedKey" not in response:
            return
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
