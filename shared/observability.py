"""Structured logs and CloudWatch metrics without Powertools, for the webhook receiver.

The receiver must import only the standard library and botocore (docs/architecture.md), so it
cannot use Powertools' Logger and Metrics. This module writes the same shapes they do:
one JSON object per log line, and metrics in the CloudWatch Embedded Metric Format
(EMF), using the same ``POWERTOOLS_SERVICE_NAME`` / ``POWERTOOLS_METRICS_NAMESPACE``
variables so dashboards treat every function alike. Never log a body or a header:
payloads carry customer names and addresses, headers carry credentials.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "message": record.getMessage(),
            "timestamp": int(record.created * 1000),
            "service": os.environ.get("POWERTOOLS_SERVICE_NAME", "shiplight"),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is when a record is emitted (Lambda's log capture)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def get_logger(name: str) -> logging.Logger:
    """A JSON logger writing to stdout (CloudWatch Logs in Lambda)."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    return logger


class MetricsBatch:
    """Counts for one invocation, flushed as one EMF line (like Powertools ``log_metrics``)."""

    def __init__(self) -> None:
        self._counts: dict[str, float] = {}
        self._dimensions: dict[str, str] = {}

    def add(self, name: str, value: float = 1) -> None:
        self._counts[name] = self._counts.get(name, 0.0) + value

    def dimension(self, name: str, value: str) -> None:
        self._dimensions[name] = value

    def flush(self) -> None:
        if not self._counts:
            return
        namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Shiplight")
        dimensions = {"service": os.environ.get("POWERTOOLS_SERVICE_NAME", "shiplight"), **self._dimensions}
        blob: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [sorted(dimensions)],
                        "Metrics": [{"Name": name, "Unit": "Count"} for name in sorted(self._counts)],
                    }
                ],
            },
            **dimensions,
            **{name: float(value) for name, value in self._counts.items()},
        }
        print(json.dumps(blob, separators=(",", ":")))
        self._counts.clear()
        self._dimensions.clear()
