"""Token buckets: never call a carrier faster than its published limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared import clock

# Tokens that float rounding may leave missing after sleeping exactly ``wait_time()``: the
# clock's timestamps are large (seconds since boot), so ``later - earlier`` differs from the
# wait by an ulp, and ``tokens`` lands on 0.9999999… instead of 1. A millionth of a token is
# far above that error and far below anything a carrier could notice.
TOLERANCE = 1e-6


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: float  # bucket size
    now: Callable[[], float] = clock.monotonic  # the wait clock: real seconds in Lambda, simulated locally
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.tokens = self.burst
        self.updated = self.now()

    def _refill(self) -> None:
        current = self.now()
        self.tokens = min(self.burst, self.tokens + (current - self.updated) * self.rate)
        self.updated = current

    def wait_time(self) -> float:
        """Seconds until one token is available (0 when one is)."""
        self._refill()
        return 0.0 if self.tokens >= 1 - TOLERANCE else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self._refill()
        if self.tokens < 1 - TOLERANCE:
            raise RuntimeError("take() without an available token: call wait_time() first")
        self.tokens -= 1


# Published or contractual request rates (requests/second, burst). Conservative defaults;
# a merchant with a higher UPS or FedEx quota raises them with CARRIER_RATE_LIMITS.
DEFAULT_RATE_LIMITS: dict[str, tuple[float, float]] = {
    "ups": (5.0, 10.0),
    "fedex": (5.0, 10.0),
    "usps": (1.0, 5.0),
    "dhl": (1.0, 3.0),
    "seventeentrack": (3.0, 3.0),
}
