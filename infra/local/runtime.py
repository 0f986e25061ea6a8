"""The embedded local stack (DESIGN §4.3): moto server + template resources + gateway +
event sources + the clock, in one process, with no AWS account and no Docker."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto import mock_aws
from moto.moto_api._internal import mock_random
from moto.server import ThreadedMotoServer

from infra.fake_carriers import FAKE_CREDENTIALS, CarrierWorld, FakeCarrierApi
from infra.local import moto_speedups
from infra.local.functions import FunctionHost
from infra.local.gateway import LocalGateway
from infra.local.pollers import QueuePoller
from infra.local.scheduler import LocalScheduler
from infra.local.stack import DEFAULT_STACK, LocalStack, aws_client, deploy
from infra.local.template import REGION, TEMPLATE_PATH, Template
from shared import clock, ids
from shared.clock import WaitClock
from shared.dal.aws import reset_clients
from shared.dal.secrets import forget_cached_secrets

BUS_TAP_QUEUE = "shiplight-local-bus-tap"
DEFAULT_PORT = 3000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RuntimeOptions:
    port: int | None = None  # None: 3000 if free, else any free port
    moto_port: int = 0  # 0: any free port
    state_dir: Path = Path(".shiplight")
    secrets: dict[str, list[str]] | None = None  # the webhook secrets document
    retry_delay: int = 1
    echo_logs: bool = False
    clock: clock.Clock | None = None  # None: the system clock
    # The seconds a run measures and waits (token buckets, a function's time left). None: real
    # seconds; the simulator passes ``clock.FrozenWaitClock`` so waits move its simulated time.
    wait_clock: WaitClock | None = None
    # None: random ids, as in Lambda. A seed makes the ids Shiplight and moto make up repeat
    # (shipment ids spread poll times and order work, so the simulator's runs need them to).
    seed: int | str | None = None
    stack_name: str = DEFAULT_STACK
    template: Path | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    fake_carriers: bool = True  # serve the carriers' tracking APIs locally and point the poller at them
    carrier_world: CarrierWorld | None = None  # what the fake carriers know (the simulator fills it)
    carrier_rate_limits: dict[str, tuple[float, float]] | None = None  # the fake carriers' limits
    schedules: bool = True  # fire the template's schedules on the runtime's clock
    background: bool = True  # pollers and schedules in threads; False: the caller pumps (simulator)
    # Copy every bus event to a local queue for ``published_events``. Off unless asked for: nothing
    # drains it otherwise, and moto re-counts a queue's messages on every send to it.
    bus_tap: bool = False


class LocalRuntime:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        self.options = options or RuntimeOptions()
        self.moto: ThreadedMotoServer | None = None
        self.endpoint = ""
        self.stack: LocalStack | None = None
        self.host: FunctionHost | None = None
        self.gateway: LocalGateway | None = None
        self.pollers: list[QueuePoller] = []
        self.scheduler: LocalScheduler | None = None
        self.carriers: FakeCarrierApi | None = None
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._tap_url = ""

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalRuntime:
        options = self.options
        moto_port = options.moto_port or free_port()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        # The handlers reach moto in-process (mock_aws: ~1 ms a call instead of ~3.5 ms over
        # HTTP); the server on loopback shares the same backends, for the AWS CLI, SDKs and
        # anything else outside this process. Starting the mock resets every backend.
        moto_speedups.install()
        self._mock = mock_aws()
        self._mock.start()
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self.moto.start()
        self.endpoint = f"http://127.0.0.1:{moto_port}"
        self._saved_env.setdefault("AWS_ENDPOINT_URL", os.environ.pop("AWS_ENDPOINT_URL", None))
        self._set_environment(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_DEV": "false",
            }
        )
        reset_clients()
        forget_cached_secrets()
        if options.clock is not None:
            clock.install(options.clock)
        if options.wait_clock is not None:
            clock.install_wait_clock(options.wait_clock)  # before the fake carriers fill their buckets
        if options.seed is not None:
            ids.install(ids.SeededIds(options.seed))
            mock_random.seed(f"moto:{options.seed}")  # message and event ids

        parameters = dict(options.parameters)
        secret_values: dict[str, str] = {}
        if options.fake_carriers:
            self.carriers = FakeCarrierApi(
                options.carrier_world or CarrierWorld(now=clock.now),
                rate_limits=options.carrier_rate_limits,
                seed=options.seed if options.seed is not None else 0,
            ).start()
            parameters.setdefault("CarrierApiUrls", json.dumps(self.carriers.base_urls()))
            secret_values["CarrierCredentials"] = json.dumps(FAKE_CREDENTIALS)
        if options.secrets is not None:
            secret_values["WebhookSecrets"] = json.dumps(options.secrets)
        template = Template.load(options.template or TEMPLATE_PATH, parameters)
        self.stack = deploy(template, stack_name=options.stack_name, secret_values=secret_values)
        if options.bus_tap:
            self._tap_bus()
        self.host = FunctionHost(
            self.stack.functions,
            base_environment={},
            log_dir=options.state_dir / "logs",
            echo_logs=options.echo_logs,
        )
        self.gateway = self._gateway(template)
        self.gateway.start()
        self.stack.serve_http_apis_at(self.gateway.url)  # the ApiUrl output is the gateway's address
        sqs = aws_client("sqs")
        for source in template.queue_sources():
            poller = QueuePoller(
                source,
                queue_url=self.stack.ref(source.queue),
                queue_arn=self.stack.att(source.queue, "Arn"),
                sqs=sqs,
                invoke=self.host.invoke,
                retry_delay=options.retry_delay,
            )
            if options.background:
                poller.start()
            self.pollers.append(poller)
        if options.schedules:
            self.scheduler = LocalScheduler(
                template.schedules(), now=clock.now, invoke=self.host.invoke, stack_name=options.stack_name
            )
            if options.background:
                self.scheduler.start()
        return self

    def _gateway(self, template: Template) -> LocalGateway:
        host = self.require_host()

        def on(port: int) -> LocalGateway:
            return LocalGateway(
                template.http_routes(),
                host.invoke,
                now=clock.now,
                port=port,
                local_routes=self._local_routes,
                authorizers=template.http_authorizers(),
            )

        if self.options.port is not None:
            return on(self.options.port)
        try:
            return on(DEFAULT_PORT)
        except OSError:  # 3000 is taken: any free port will do, the URLs are printed
            return on(0)

    def stop(self) -> None:
        if self.scheduler:
            self.scheduler.stop()
        for poller in self.pollers:
            poller.stop()
        if self.carriers:
            self.carriers.stop()
        if self.gateway:
            self.gateway.stop()
        if self.host:
            self.host.close()
        if self.moto:
            self.moto.stop()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        clock.install(None)
        clock.install_wait_clock(None)
        ids.install(None)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_clients()
        forget_cached_secrets()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _set_environment(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    # -- observation ---------------------------------------------------------------------

    def require_stack(self) -> LocalStack:
        if self.stack is None:
            raise RuntimeError("the local runtime is not started")
        return self.stack

    def require_host(self) -> FunctionHost:
        if self.host is None:
            raise RuntimeError("the local runtime is not started")
        return self.host

    @property
    def url(self) -> str:
        return self.gateway.url if self.gateway else ""

    def client(self, service: str) -> Any:
        return aws_client(service)

    def pump(self) -> int:
        """Run everything that is due now, synchronously, until nothing is left: the schedules
        whose time has come on the runtime's clock, then the event-source queues until empty.
        Returns how many invocations ran. (The simulator drives the stack this way; ``shiplight
        serve`` runs the same pollers and schedules in background threads instead.)"""
        ran = 0
        while True:
            step = self.scheduler.tick() if self.scheduler else 0
            for poller in self.pollers:
                while poller.poll_once():
                    step += 1
            if not step:
                return ran
            ran += step

    def _tap_bus(self) -> None:
        """A local-only rule copying every Shiplight event to a queue, for the replay demo and
        the tests (EventBridge's archive is not readable in moto)."""
        stack = self.require_stack()
        sqs, events = self.client("sqs"), self.client("events")
        self._tap_url = sqs.create_queue(QueueName=BUS_TAP_QUEUE)["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=self._tap_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for logical_id, _ in stack.template.of_type("AWS::Events::EventBus"):
            bus = stack.ref(logical_id)
            events.put_rule(
                Name="shiplight-local-tap", EventBusName=bus, EventPattern=json.dumps({"source": ["shiplight"]})
            )
            events.put_targets(Rule="shiplight-local-tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": tap_arn}])

    def published_events(self) -> list[dict[str, Any]]:
        """Every event published to the bus since the last call (drains the local tap queue)."""
        if not self._tap_url:
            raise RuntimeError("published_events needs RuntimeOptions(bus_tap=True)")
        sqs = self.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self._tap_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            found.extend(json.loads(m["Body"]) for m in messages)
            sqs.delete_message_batch(
                QueueUrl=self._tap_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def queue_depth(self, logical_id: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.ref(logical_id) if self.stack else "",
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Return once every event-source queue is empty and nothing is running."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            busy = (
                (self.host is not None and self.host.busy)
                or any(p.in_flight for p in self.pollers)
                or (self.scheduler is not None and self.scheduler.in_flight)
            )
            depth = sum(self.queue_depth(p.source.queue) for p in self.pollers)
            quiet = quiet + 1 if not busy and depth == 0 else 0
            if quiet >= 3:
                return
            time.sleep(0.1)
        raise TimeoutError(f"the local stack was still busy after {timeout:.0f} s")

    def _local_routes(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes] | None:
        """``/_local/…``: what a developer needs to see inside the local stack."""
        if not path.startswith("/_local/") or method != "GET":
            return None
        if path == "/_local/health":
            body: Any = {"status": "ok", "moto": self.endpoint}
        elif path == "/_local/metrics":
            body = self.host.metrics.snapshot() if self.host else {}
        elif path == "/_local/stack":
            body = {
                "outputs": self.stack.outputs() if self.stack else {},
                "not_emulated": self.stack.not_emulated if self.stack else {},
            }
        else:
            return 404, {"content-type": "application/json"}, b'{"message":"Not Found"}'
        return 200, {"content-type": "application/json"}, json.dumps(body, indent=2).encode()
