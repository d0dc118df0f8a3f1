"""Pacing of request starts for the whole pool.

With a fixed `rate` (requests per second) it is a token bucket of depth one: starts are spaced
1/rate apart, so no window of one second ever sees more than the rate allows. Without one it adapts
(AIMD on the pace): unlimited until the service says "slow down" (429, 1002, ...); then every
worker pauses for the Retry-After it sent, and the pool's pace drops to 70% of what it was just
running at. Signals within a second of the last one are the same burst and count once (each
entry still waits its own backoff), so one overload never stacks pause upon pause. Each success
raises the pace by 5%; once the pace is well above what the pool actually reaches, it is
unlimited again. Random, isolated 429s therefore cost little, and a server at its limit is
approached from below instead of hammered.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable

MIN_RATE = 0.2  # requests per second; the adaptive pace never drops below this
DECREASE = 0.7  # pace kept after the service throttles us
INCREASE = 1.05  # pace gained per success
WINDOW = 2.0  # seconds of recent starts used to measure the pace actually reached
CALM = 1.0  # seconds after a slow-down signal during which further signals count as the same

log = logging.getLogger(__name__)


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
        self._calm_until = 0.0
        self._starts: collections.deque[float] = collections.deque(maxlen=512)
        self._lock = asyncio.Lock()

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
        """The service said slow down: pause everyone, and (adaptive) slow the pace."""
        now = self._clock()
        if now < self._calm_until:
            return  # the same burst as the last signal: counted once
        pause = retry_after or 0.0
        self._paused_until = max(self._paused_until, now + pause)
        self._calm_until = now + max(pause, CALM)
        if self.fixed is not None:
            return
        reached = self._recent_rate(now)
        current = reached if self.rate is None else min(self.rate, reached)
        self.rate = max(MIN_RATE, current * DECREASE)
        after = f" after a {pause:g} s pause" if pause else ""
        log.info(
            "the service asked to slow down: pool paced at %.2f requests/s%s", self.rate, after
        )

    def on_success(self) -> None:
        if self.fixed is not None or self.rate is None:
            return
        self.rate *= INCREASE
        if self.rate > 2 * self._recent_rate(self._clock()) + 1:
            self.rate = None  # no longer what limits the pool
            log.info("requests succeed again: no pace limit")

    def _recent_rate(self, now: float) -> float:
        """Starts per second over the last WINDOW seconds (or since the first start)."""
        window = [t for t in self._starts if now - t <= WINDOW]
        if len(window) < 2:
            return MIN_RATE * 5
        return len(window) / max(now - window[0], 0.25)
