"""Lambda authorizers of the local HTTP API, run as API Gateway runs them (HTTP API,
payload format 2.0, simple responses).

For a route guarded by an authorizer:

1. every identity source (``$request.header.<name>``) must be present and non-empty,
   else API Gateway answers ``401 {"message":"Unauthorized"}`` without invoking anything;
2. a result cached for the same identity values within ``ReauthorizeEvery`` seconds is
   reused (allow and deny alike; the cache is per authorizer and identity, whichever route);
3. otherwise the authorizer function is invoked with the request (no body) plus ``type``,
   ``routeArn`` and ``identitySource``; a failure or a response without a boolean
   ``isAuthorized`` is ``500 {"message":"Internal Server Error"}`` (and not cached);
4. ``isAuthorized: false`` is ``403 {"message":"Forbidden"}``; ``true`` runs the route with
   the response's ``context`` under ``requestContext.authorizer.lambda``.

The cache never holds the credentials themselves, only their SHA-256. Time is the
runtime's clock, like the schedules.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from infra.local.functions import InvocationError
from infra.local.template import ACCOUNT_ID, REGION, HttpAuthorizer, Route, TemplateError

Answer = tuple[int, dict[str, str], bytes]
JSON = {"content-type": "application/json"}
UNAUTHORIZED: Answer = (401, JSON, b'{"message":"Unauthorized"}')
FORBIDDEN: Answer = (403, JSON, b'{"message":"Forbidden"}')
FAILED: Answer = (500, JSON, b'{"message":"Internal Server Error"}')


class LocalAuthorizers:
    def __init__(
        self,
        authorizers: dict[str, HttpAuthorizer],
        invoke: Callable[[str, dict[str, Any]], Any],
        *,
        now: Callable[[], datetime],
    ) -> None:
        for spec in authorizers.values():
            if spec.payload_version != "2.0" or not spec.simple_responses:
                raise TemplateError(
                    f"authorizer {spec.name}: only payload format 2.0 with simple responses runs locally"
                )
        self.authorizers = authorizers
        self.invoke = invoke
        self.now = now
        self._cache: dict[tuple[str, str], tuple[datetime, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.invocations = 0

    def authorize(self, route: Route, event: dict[str, Any]) -> Answer | None:
        """``None`` when the route may run (``event`` then carries the authorizer's context),
        else API Gateway's answer."""
        if route.authorizer is None:
            return None
        spec = self.authorizers.get(route.authorizer)
        if spec is None:  # a route naming an authorizer nobody declared: fail closed
            return FAILED
        headers = event.get("headers") or {}
        identity = [headers.get(name) or "" for name in spec.identity_headers]
        if not all(value.strip() for value in identity):
            return UNAUTHORIZED
        cache_key = (spec.name, hashlib.sha256("\x00".join(identity).encode("utf-8")).hexdigest())
        result = self._cached(cache_key) if spec.ttl_seconds > 0 else None
        if result is None:
            try:
                returned = self.invoke(spec.function, self._authorizer_event(event, identity))
            except InvocationError:
                return FAILED
            if not isinstance(returned, dict) or not isinstance(returned.get("isAuthorized"), bool):
                return FAILED
            context = returned.get("context") or {}
            if not isinstance(context, dict):
                return FAILED
            result = {"isAuthorized": returned["isAuthorized"], "context": context}
            if spec.ttl_seconds > 0:
                with self._lock:
                    self._cache[cache_key] = (self.now() + timedelta(seconds=spec.ttl_seconds), result)
        if not result["isAuthorized"]:
            return FORBIDDEN
        event.setdefault("requestContext", {})["authorizer"] = {"lambda": copy.deepcopy(result["context"])}
        return None

    def _cached(self, key: tuple[str, str]) -> dict[str, Any] | None:
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                return None
            expires, result = found
            if self.now() >= expires:
                del self._cache[key]
                return None
            return result

    def _authorizer_event(self, event: dict[str, Any], identity: list[str]) -> dict[str, Any]:
        context = event.get("requestContext") or {}
        http = context.get("http") or {}
        request = {k: copy.deepcopy(v) for k, v in event.items() if k not in ("body", "isBase64Encoded")}
        request["type"] = "REQUEST"
        request["routeArn"] = (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{context.get('apiId', 'local')}/"
            f"{context.get('stage', '$default')}/{http.get('method', 'GET')}{http.get('path', '/')}"
        )
        request["identitySource"] = identity
        return request
