"""The public routes through the template's routes on moto: the customer's link forwards to the
tracking JSON, answers carry their cache and robots headers, refusals all look alike and log
no token, and the function's cold start imports nothing heavier than botocore."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from infra.local.gateway import http_event, http_response
from infra.local.template import REPO_ROOT, Template
from shared import clock
from shared.logic.views.tracking import token_reference
from tests.builders import generic_scans
from tests.integration.conftest import Deployed

REFUSED = {"error": "not_found", "detail": "no shipment is tracked under this link"}


def tracked_token(deployed: Deployed) -> str:
    deployed.post_webhook("generic", generic_scans(("handed_to_carrier", 1), ("arrived_hub", 5)))
    deployed.drain()
    (meta,) = [item for item in deployed.table_items() if item["sk"]["S"] == "META"]
    return str(meta["public_token"]["S"])


def follow_link(deployed: Deployed, token: str) -> tuple[int, dict[str, str], str]:
    """``GET /t/{token}`` as API Gateway delivers it (its answer is text, not JSON)."""
    (route,) = [r for r in deployed.stack.template.http_routes() if r.route_key == "GET /t/{token}"]
    event = http_event(
        route=route,
        method="GET",
        raw_path=f"/t/{token}",
        query="",
        headers=[],
        body=b"",
        path_parameters={"token": token},
        source_ip="203.0.113.9",
        now=clock.now(),
    )
    status, headers, body = http_response(deployed.host.invoke(route.function, event))
    return status, headers, body.decode("utf-8")


def test_the_customer_s_link_leads_to_the_tracking_json(deployed: Deployed, tmp_path: Path) -> None:
    # Given a parcel with two scans
    token = tracked_token(deployed)
    # When the customer follows the tracking link
    status, headers, text = follow_link(deployed, token)
    # Then it forwards to the tracking JSON of the same token, which search engines must not index
    assert (status, text) == (303, f"See /v1/track/{token}\n")
    assert headers["location"] == f"/v1/track/{token}"
    assert headers["x-robots-tag"] == "noindex"
    view = deployed.call("GET", headers["location"])
    assert view.status == 200
    assert view.headers["content-type"] == "application/json"
    assert view.headers["cache-control"] == "public, max-age=60"
    assert view.headers["x-robots-tag"] == "noindex"
    assert view.body["status"] == "arrived_hub"
    assert view.body["status_label"] == "At a sorting facility"
    assert [e["milestone"] for e in view.body["events"]] == ["arrived_hub", "picked_up"]
    assert view.body["events"][0]["location"] == {"city": "Reno", "region": "NV", "country": "US"}
    # and the business counts what happened
    metrics = deployed.host.metrics
    assert metrics.get("TrackingLinksFollowed", "PublicApiFunction") == 1
    assert metrics.get("TrackingLookups", "PublicApiFunction") == metrics.get("TrackingViews", "PublicApiFunction") == 1
    # and the function's log never holds the token
    assert token not in (tmp_path / "logs" / "PublicApiFunction.log").read_text()


def test_refusals_all_look_alike_and_log_only_a_hash_of_the_token(deployed: Deployed, tmp_path: Path) -> None:
    # Given a parcel, and a guess one character off its token
    token = tracked_token(deployed)
    guess = token[:-1] + ("A" if token[-1] != "A" else "B")
    # When unknown, malformed and misdirected requests arrive
    answers = [
        deployed.call("GET", f"/v1/track/{guess}"),
        deployed.call("GET", "/v1/track/x"),
    ]
    status, _, text = follow_link(deployed, "not!a!token")
    assert (status, json.loads(text)) == (404, REFUSED)
    # Then each gets the same 404, never cached
    for answer in answers:
        assert (answer.status, answer.body) == (404, REFUSED)
        assert answer.headers["cache-control"] == "no-store"
    # and a request outside the public routes (API Gateway would not send one) is refused too
    stray = deployed.host.invoke(
        "PublicApiFunction",
        {"routeKey": "$default", "rawPath": f"/v1/track/{token}", "requestContext": {"http": {"method": "POST"}}},
    )
    assert stray["statusCode"] == 404
    assert json.loads(stray["body"])["error"] == "not_found"
    # and the log says which guess was refused by a short hash, never by the token itself
    log = (tmp_path / "logs" / "PublicApiFunction.log").read_text()
    assert token_reference(guess) in log
    assert guess not in log
    assert token not in log


def test_the_public_route_imports_only_the_standard_library_and_botocore() -> None:
    # Given a fresh interpreter, as the cold start a customer waits for, that then serves the
    # link, a refusal and a view (from a stand-in index: no AWS call)
    probe = """
import runpy, sys
handler = runpy.run_path(sys.argv[1])["lambda_handler"]
class Context:
    aws_request_id = "probe"
link = {"routeKey": "GET /t/{token}", "pathParameters": {"token": "tok_" + "A" * 20}}
assert handler(link, Context())["statusCode"] == 303
refused = {"routeKey": "GET /v1/track/{token}", "pathParameters": {"token": "x"}}
assert handler(refused, Context())["statusCode"] == 404
from shared.logic.views.tracking import tracking_view
class Index:
    def public_items(self, token):
        return [
            {"entity": "shipment", "sk": "META", "carrier": "ups", "tracking_number": "1Z", "status": "delivered",
             "status_since": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z"},
            {"entity": "event", "sk": "EVT#2026-12-01T10:00:00.000000Z#0", "milestone": "delivered",
             "occurred_at": "2026-12-01T10:00:00Z", "occurred_at_local": "2026-12-01T05:00:00-05:00",
             "location": {"city": "Reno", "postal_code": "89501"}},
        ]
assert tracking_view("tok_" + "A" * 20, Index())["status_label"] == "Delivered"
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""
    path = Template.load().functions()["PublicApiFunction"].module_path
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe, str(path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO_ROOT,
            env={"SHIPMENTS_TABLE": "shipments", "PATH": ""},
        ).stdout.split()
    )
    # Then nothing heavier than botocore was imported, at the cold start or while serving
    assert loaded.isdisjoint({"pydantic", "pydantic_core", "aws_lambda_powertools", "boto3", "s3transfer"})
    assert "botocore" in loaded
