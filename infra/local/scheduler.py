"""EventBridge schedules, fired locally on the runtime's clock (moto never fires them).

Each ``Schedule`` event of a function in the template fires at its ``rate(…)`` in the
runtime's time: with the accelerated clock, a 5-minute schedule fires every 5 simulated
minutes. When the clock jumps ahead, missed firings are caught up one by one (up to a
bound), as a scheduler that had been running would have fired them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from infra.local.functions import InvocationError
from infra.local.template import ACCOUNT_ID, REGION, ScheduleSource
from shared.clock import isoformat_z

MAX_CATCH_UP = 12


def scheduled_event(schedule: ScheduleSource, stack_name: str, at: datetime) -> dict[str, Any]:
    """The event EventBridge sends a Lambda target of a scheduled rule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": isoformat_z(at.replace(microsecond=0)),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{stack_name}-{schedule.function}{schedule.name}"],
        "detail": {},
    }


class LocalScheduler:
    def __init__(
        self,
        schedules: list[ScheduleSource],
        *,
        now: Callable[[], datetime],
        invoke: Callable[[str, dict[str, Any]], Any],
        stack_name: str,
        tick_seconds: float = 0.2,
    ) -> None:
        self.schedules = schedules
        self.now = now
        self.invoke = invoke
        self.stack_name = stack_name
        self.tick_seconds = tick_seconds
        start = now()
        self.next_fire = {schedule: start + schedule.period for schedule in schedules}
        self.fired: dict[str, int] = {schedule.function: 0 for schedule in schedules}
        self.failures = 0
        self._stop = threading.Event()
        self._tick_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.in_flight = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="local-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self.tick()

    def tick(self) -> int:
        """Fire every schedule whose time has come; returns how many firings happened."""
        with self._tick_lock:  # the thread and a caller (the demo, after a clock jump) may both tick
            return self._tick()

    def _tick(self) -> int:
        fired = 0
        for schedule in self.schedules:
            for _ in range(MAX_CATCH_UP):
                now = self.now()
                if self.next_fire[schedule] > now:
                    break
                self.in_flight = True
                try:
                    self.invoke(schedule.function, scheduled_event(schedule, self.stack_name, now))
                except InvocationError:
                    self.failures += 1  # like EventBridge: logged by the function, next firing goes on
                finally:
                    self.in_flight = False
                self.fired[schedule.function] += 1
                fired += 1
                self.next_fire[schedule] += schedule.period
            else:
                self.next_fire[schedule] = self.now() + schedule.period  # too far behind: skip ahead
        return fired
