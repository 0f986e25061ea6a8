"""Running the template's Lambda handlers in-process, as Lambda would.

Each function's module is loaded from its ``CodeUri`` under a name of its own (every
handler file is ``app.py``), with that function's environment in place. Invocations
are serialised — one at a time, like a function with reserved concurrency 1 — because
they share one process environment. Whatever a handler prints goes to its own log file
(``<state>/logs/<function>.log``, the local CloudWatch Logs), and the Embedded Metric
Format lines among them are added up, as CloudWatch would, into ``LocalMetrics``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import threading
import traceback
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from infra.local.stack import DeployedFunction
from infra.local.template import ACCOUNT_ID, REGION
from shared import clock


class LocalMetrics:
    """CloudWatch metrics from EMF log lines: (function, metric) → sum."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[tuple[str, str], float] = {}

    def record_line(self, function: str, line: str) -> None:
        if not line.startswith('{"_aws"'):
            return
        try:
            blob = json.loads(line)
            directives = blob["_aws"]["CloudWatchMetrics"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return
        with self._lock:
            for directive in directives:
                for metric in directive.get("Metrics", []):
                    value = blob.get(metric["Name"])
                    values = value if isinstance(value, list) else [value]
                    key = (function, metric["Name"])
                    self._sums[key] = self._sums.get(key, 0.0) + sum(float(v) for v in values if v is not None)

    def get(self, metric: str, function: str | None = None) -> float:
        with self._lock:
            return sum(v for (fn, name), v in self._sums.items() if name == metric and (function in (None, fn)))

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            result: dict[str, dict[str, float]] = {}
            for (fn, name), value in sorted(self._sums.items()):
                result.setdefault(fn, {})[name] = value
            return result


class _LogSink(io.TextIOBase):
    """One function's stdout: lines go to its log file and through the EMF reader."""

    def __init__(self, function: str, path: Path | None, metrics: LocalMetrics, echo: TextIO | None) -> None:
        self.function = function
        self.metrics = metrics
        self.echo = echo
        self._buffer = ""
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - lives with the runtime

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self.metrics.record_line(self.function, line)
            if self._file:
                self._file.write(line + "\n")
                self._file.flush()
            if self.echo:
                self.echo.write(f"[{self.function}] {line}\n")
        return len(text)

    def close(self) -> None:
        if self._file:
            self._file.close()
        super().close()


class _RoutedStdout(io.TextIOBase):
    """``sys.stdout`` during invocations: a thread's writes go to the log sink of the
    function it runs, everything else to the stdout that was there before. One instance
    per process, so a logger that captured ``sys.stdout`` at import keeps routing."""

    def __init__(self) -> None:
        self.default: TextIO = sys.stdout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._depth = 0

    @contextmanager
    def route(self, sink: _LogSink) -> Iterator[None]:
        with self._lock:
            if sys.stdout is not self:
                self.default = sys.stdout
                sys.stdout = self
            self._depth += 1
        previous = getattr(self._local, "sink", None)
        self._local.sink = sink
        try:
            yield
        finally:
            self._local.sink = previous
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and sys.stdout is self:
                    sys.stdout = self.default

    def write(self, text: str) -> int:
        sink = getattr(self._local, "sink", None)
        return (sink or self.default).write(text)

    def flush(self) -> None:
        (getattr(self._local, "sink", None) or self.default).flush()


_ROUTER = _RoutedStdout()


@dataclass
class LambdaContext:
    """The attributes Powertools and our handlers read from Lambda's context object."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    started: float = field(default_factory=clock.monotonic)  # the wait clock: simulated seconds in the simulator

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (clock.monotonic() - self.started)) * 1000))


class InvocationError(RuntimeError):
    """The handler raised: Lambda would report ``FunctionError: Unhandled``."""


class FunctionHost:
    """Loads and invokes the deployed functions of a local stack."""

    def __init__(
        self,
        functions: dict[str, DeployedFunction],
        *,
        base_environment: dict[str, str],
        log_dir: Path | None,
        echo_logs: bool = False,
    ) -> None:
        self.functions = functions
        self.base_environment = base_environment
        self.metrics = LocalMetrics()
        self._lock = threading.RLock()
        self._modules: dict[str, ModuleType] = {}
        self.invocations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._busy = 0
        # Powertools warns (a UserWarning on stderr) when a handler publishes no metric, as the
        # merchant API's reads do by design. In Lambda that line lands in the function's log; here it
        # would reach the terminal of `shiplight serve`. Exactly that warning is filtered, no other.
        warnings.filterwarnings(
            "ignore",
            message="No application metrics to publish",
            category=UserWarning,
            module=r"aws_lambda_powertools\.",
        )
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)
        echo = sys.stderr if echo_logs else None
        self.log_dir = log_dir
        self._sinks = {
            name: _LogSink(name, log_dir / f"{name}.log" if log_dir else None, self.metrics, echo) for name in functions
        }

    def log_path(self, logical_id: str) -> Path | None:
        """The file holding a function's log lines (its local CloudWatch log group)."""
        return self.log_dir / f"{logical_id}.log" if self.log_dir else None

    @property
    def busy(self) -> bool:
        return self._busy > 0

    @contextmanager
    def _environment(self, function: DeployedFunction) -> Iterator[None]:
        wanted = {
            **self.base_environment,
            **function.environment,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.spec.memory),
        }
        saved = {key: os.environ.get(key) for key in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _module(self, logical_id: str) -> ModuleType:
        module = self._modules.get(logical_id)
        if module is None:
            spec = self.functions[logical_id].spec
            name = f"shiplight_local_{logical_id}"
            loader_spec = importlib.util.spec_from_file_location(name, spec.module_path)
            if loader_spec is None or loader_spec.loader is None:
                raise InvocationError(f"{logical_id}: cannot load {spec.module_path}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
            self._modules[logical_id] = module
        return module

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """Run a handler with ``event`` and return what it returned (``InvocationError`` if it raised)."""
        function = self.functions[logical_id]
        with self._lock:
            self._busy += 1
            try:
                with self._environment(function), _ROUTER.route(self._sinks[logical_id]):
                    handler = getattr(self._module(logical_id), function.spec.handler_attr)
                    context = LambdaContext(function.name, function.spec.memory, function.spec.timeout)
                    self.invocations[logical_id] += 1
                    try:
                        return handler(event, context)
                    except Exception as error:
                        self.errors[logical_id] += 1
                        print(json.dumps({"level": "ERROR", "message": "unhandled", "trace": traceback.format_exc()}))
                        raise InvocationError(f"{logical_id} failed: {type(error).__name__}: {error}") from error
            finally:
                self._busy -= 1

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()
