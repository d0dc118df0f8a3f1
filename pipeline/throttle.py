"""Pacing of request starts for the whole pool.

With a fixed `rate` (requests per second) it is a token bucket of depth one: starts are spaced
1/rate apart, so no window of one second ever sees more than the rate allows. Without one it adapts
(AIMD): unlimited until the service says "slow down" (429, 1002, ...); then every worker pauses for
Retry-After (or a short backoff) and the pool runs at half the rate it was running at, growing back
by a little on each success until it is unlimited again.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable

MIN_RATE = 0.2  # requests per second; the adaptive rate never drops below this
RECOVERY_STEP = 0.25  # requests per second added per success while adapting
UNLIMITED_ABOVE = 1000.0


class Throttle:
    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.fixed = rate
        self.rate = rate  # current pace; None means unlimited
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._starts: collections.deque[float] = collections.deque(maxlen=512)
        self._lock = asyncio.Lock()
        self.throttled = 0  # how often the service told us to slow down

    async def acquire(self) -> None:
        """Wait until this request may start."""
        async with self._lock:
            now = self._clock()
            slot = max(now, self._paused_until)
            if self.rate is not None:
                slot = max(slot, self._next_slot)
                self._next_slot = slot + 1.0 / self.rate
            if slot > now:
                await self._sleep(slot - now)
            self._starts.append(max(slot, now))

    def on_throttled(self, retry_after: float | None) -> None:
        """The service said slow down: pause everyone, and (adaptive) halve the pace."""
        self.throttled += 1
        now = self._clock()
        self._paused_until = max(self._paused_until, now + (retry_after or 1.0))
        if self.fixed is not None:
            return
        recent = self._recent_rate(now)
        current = self.rate if self.rate is not None else recent
        self.rate = max(MIN_RATE, min(current, recent or current) / 2.0)

    def on_success(self) -> None:
        if self.fixed is not None or self.rate is None:
            return
        self.rate += RECOVERY_STEP
        if self.rate > UNLIMITED_ABOVE:
            self.rate = None

    def _recent_rate(self, now: float) -> float:
        window = [t for t in self._starts if now - t <= 2.0]
        return len(window) / 2.0 if window else MIN_RATE * 2
