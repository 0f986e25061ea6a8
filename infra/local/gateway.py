"""The local HTTP API: the template's routes as API Gateway HTTP API payload-v2.0 events.

Requests are matched against the ``HttpApi`` events of the template's functions (a
literal segment beats a parameter, as in API Gateway), turned into the event API
Gateway would send (headers lower-cased, repeated headers joined with commas, cookies
split out, non-text bodies base64-encoded), and the handler's response is written back.
Routes outside the template answer 404 ``{"message":"Not Found"}`` like API Gateway.
Routes guarded by a Lambda authorizer run it first, with API Gateway's caching and
answers (``infra.local.authorizers``). Nothing here logs a request: headers carry keys.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from infra.local.authorizers import LocalAuthorizers
from infra.local.functions import InvocationError
from infra.local.template import ACCOUNT_ID, HttpAuthorizer, Route

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)|.*\+(json|xml)\b)")

_SET_BY_GATEWAY = ("x-forwarded-proto", "x-forwarded-port")  # API Gateway's own, not the client's
Invoke = Callable[[str, dict[str, Any]], Any]
LocalRoutes = Callable[[str, str, dict[str, str]], tuple[int, dict[str, str], bytes] | None]


@dataclass(frozen=True)
class CompiledRoute:
    route: Route
    regex: re.Pattern[str]


def http_event(
    *,
    route: Route,
    method: str,
    raw_path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    path_parameters: dict[str, str],
    source_ip: str,
    now: datetime,
) -> dict[str, Any]:
    """The payload-v2.0 event API Gateway HTTP API sends for one request."""
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    content_type = joined.get("content-type", "")
    try:
        text = body.decode("utf-8")
        is_text = bool(_TEXT_TYPES.match(content_type)) or not content_type
    except UnicodeDecodeError:
        is_text = False
    query_parameters: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        query_parameters[key] = f"{query_parameters[key]},{value}" if key in query_parameters else value
    request_id = base64.b32encode(uuid.uuid4().bytes[:10]).decode().rstrip("=")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": joined,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": joined.get("host", "localhost"),
            "domainPrefix": joined.get("host", "localhost").split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query_parameters:
        event["queryStringParameters"] = query_parameters
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        event["body"] = text if is_text else base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = not is_text
    return event


def http_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """A handler's return value as API Gateway would turn it into an HTTP response."""
    if isinstance(result, dict) and "statusCode" in result:
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers[key] = ",".join(str(v) for v in values)
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode("utf-8")
        cookies = result.get("cookies") or []
        if cookies:
            headers["set-cookie"] = "; ".join(cookies)
        return int(result["statusCode"]), headers, body
    # Payload v2.0 infers a 200 JSON response from any other value.
    return 200, {"content-type": "application/json"}, json.dumps(result).encode("utf-8")


class LocalGateway:
    def __init__(
        self,
        routes: list[Route],
        invoke: Invoke,
        *,
        now: Callable[[], datetime],
        host: str = "127.0.0.1",
        port: int = 3000,
        local_routes: LocalRoutes | None = None,
        authorizers: dict[str, HttpAuthorizer] | None = None,
    ) -> None:
        self.routes = [CompiledRoute(route, route.pattern()) for route in routes]
        self.invoke = invoke
        self.now = now
        self.local_routes = local_routes
        # A guarded route with no authorizer declared fails closed (500), never open.
        self.authorizers = LocalAuthorizers(authorizers or {}, invoke, now=now)
        self.server = ThreadingHTTPServer((host, port), self._handler_class())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="local-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for compiled in self.routes:
            if compiled.route.method not in (method, "ANY"):
                continue
            found = compiled.regex.match(path)
            if found:
                return compiled.route, found.groupdict()
        return None

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        if self.local_routes:
            answered = self.local_routes(method, parts.path, dict(headers))
            if answered is not None:
                return answered
        matched = self.match(method, parts.path)
        if matched is None:
            return 404, {"content-type": "application/json"}, b'{"message":"Not Found"}'
        route, parameters = matched
        port = self.server.server_address[1]
        forwarded = [("x-forwarded-for", ip), ("x-forwarded-port", str(port)), ("x-forwarded-proto", "http")]
        event = http_event(
            route=route,
            method=method,
            raw_path=parts.path,
            query=parts.query,
            headers=[*(h for h in headers if h[0].lower() not in _SET_BY_GATEWAY), *forwarded],
            body=body,
            path_parameters=parameters,
            source_ip=ip,
            now=self.now(),
        )
        refused = self.authorizers.authorize(route, event)
        if refused is not None:
            return refused
        try:
            return http_response(self.invoke(route.function, event))
        except InvocationError:
            return 500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "shiplight-local"
            # The status line and headers go out in one write, the body in a second: with Nagle's
            # algorithm the second waits for the client's delayed ACK (~40 ms on loopback).
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > API_GATEWAY_MAX_BODY:
                    self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {}, b'{"message":"Request Entity Too Large"}')
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                status, headers, payload = gateway.handle(
                    self.command, self.path, list(self.headers.items()), body, self.client_address[0]
                )
                self._reply(status, headers, payload)

            def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return  # access logs would drown the demo's output

        return Handler
