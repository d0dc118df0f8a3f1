"""The flow-control designs the simulation compares, behind one small interface (`Flow`).

    unpaced       a semaphore of `concurrency`, deaf to every signal: what retries alone cost
    main AIMD     the pace as on main before this branch: per-signal -30% and a pool-wide pause
                  for the Retry-After (signals within 1 s count once), +5% per success
    AWS adaptive  botocore's adaptive retry mode: a token bucket whose rate follows CUBIC
                  (beta 0.7, C 0.4) on throttling answers, capped at twice the measured rate
    SRE ratio     client-side adaptive throttling (SRE book, "Handling Overload"): reject
                  locally with p = max(0, (requests - K*accepts) / (requests + 1)), K = 2, 2 min
    ours          pipeline.flow.throttle.Throttle (delivery-rate pace + learnt window)

Each is written here from its published description, not copied; all but ours keep the user's
concurrency as a plain semaphore, since none of them has a window of its own.
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
from collections.abc import Callable
from typing import Any, Protocol

from pipeline.flow.pace import PACE, PacePolicy
from pipeline.flow.signals import Signal
from pipeline.flow.throttle import Throttle

Clock = Callable[[], float]


class LocalReject(Exception):
    """The flow control refused the request without sending it (SRE ratio)."""


class Flow(Protocol):
    """A design under test: `acquire()` gives the request a token, which it hands back with its
    answer (the designs of the past need none: theirs is None)."""

    name: str

    async def acquire(self) -> Any: ...

    def release(self, token: Any, signal: Signal, retry_after: float | None) -> None: ...

    def pace(self) -> float | None: ...


class Unpaced:
    name = "unpaced"

    def __init__(self, concurrency: int, clock: Clock) -> None:
        self._slots = asyncio.Semaphore(concurrency)

    async def acquire(self) -> None:
        await self._slots.acquire()

    def release(self, token: Any, signal: Signal, retry_after: float | None) -> None:
        self._slots.release()

    def pace(self) -> float | None:
        return None


class MainAimd(Unpaced):
    """As on main: on a slow-down, pause everyone for Retry-After and cut the pace to 70% of the
    rate reached (signals within 1 s of the last count once); +5% per success; unlimited again
    once the pace is well above the rate reached. 1041 was a slow-down too."""

    name = "main AIMD"

    def __init__(self, concurrency: int, clock: Clock) -> None:
        super().__init__(concurrency, clock)
        self._clock = clock
        self.rate: float | None = None
        self._next = self._paused_until = self._calm_until = 0.0
        self._starts: collections.deque[float] = collections.deque(maxlen=512)
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        await super().acquire()
        async with self._lock:
            now = self._clock()
            slot = max(now, self._paused_until)
            if self.rate is not None:
                slot = max(slot, self._next)
                self._next = slot + 1.0 / self.rate
            if slot > now:
                await asyncio.sleep(slot - now)
            self._starts.append(max(slot, now))

    def release(self, token: Any, signal: Signal, retry_after: float | None) -> None:
        super().release(token, signal, retry_after)
        if signal in (Signal.RATE, Signal.CONCURRENCY):
            self._throttled(retry_after)
        elif signal is Signal.OK and self.rate is not None:
            self.rate *= 1.05
            if self.rate > 2 * self._recent() + 1:
                self.rate = None

    def _throttled(self, retry_after: float | None) -> None:
        now = self._clock()
        if now < self._calm_until:
            return
        pause = retry_after or 0.0
        self._paused_until = max(self._paused_until, now + pause)
        self._calm_until = now + max(pause, 1.0)
        current = self._recent() if self.rate is None else min(self.rate, self._recent())
        self.rate = max(0.2, current * 0.7)

    def _recent(self) -> float:
        now = self._clock()
        window = [t for t in self._starts if now - t <= 2.0]
        return 1.0 if len(window) < 2 else len(window) / max(now - window[0], 0.25)

    def pace(self) -> float | None:
        return self.rate


class AwsAdaptive(Unpaced):
    """botocore's ClientRateLimiter: off until the first throttle; then a token bucket (capacity
    one second of tokens, at least 0.5/s) whose rate is CUBIC's, never above twice the rate of
    answers measured in 0.5 s buckets (smoothing 0.8)."""

    name = "AWS adaptive"
    BETA, SCALE = 0.7, 0.4

    def __init__(self, concurrency: int, clock: Clock) -> None:
        super().__init__(concurrency, clock)
        self._clock = clock
        self._enabled = False
        self._w_max = 0.0
        self._k = 0.0
        self._last_fail = clock()
        self._measured = 0.0
        self._bucket_start = math.floor(clock() * 2) / 2
        self._count = 0
        self._fill = 0.5
        self._tokens = 0.0
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        await super().acquire()
        if not self._enabled:
            return
        async with self._lock:
            self._refill()
            while self._tokens < 1 - 1e-9:  # virtual time cannot sleep 1e-16 s
                await asyncio.sleep((1 - self._tokens) / self._fill)
                self._refill()
            self._tokens = max(0.0, self._tokens - 1)

    def release(self, token: Any, signal: Signal, retry_after: float | None) -> None:
        super().release(token, signal, retry_after)
        measured, now = self._clocked(), self._clock()
        if signal in (Signal.RATE, Signal.CONCURRENCY):
            current = measured if not self._enabled else min(measured, self._fill)
            self._w_max = current
            self._k = (current * (1 - self.BETA) / self.SCALE) ** (1 / 3)
            self._last_fail = now
            new = current * self.BETA
            self._enabled = True
        else:
            new = self.SCALE * (now - self._last_fail - self._k) ** 3 + self._w_max
        self._set_fill(min(new, 2 * measured))

    def _clocked(self) -> float:
        bucket = math.floor(self._clock() * 2) / 2
        self._count += 1
        if bucket > self._bucket_start:
            current = self._count / (bucket - self._bucket_start)
            self._measured = 0.8 * current + 0.2 * self._measured
            self._count, self._bucket_start = 0, bucket
        return self._measured

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(max(self._fill, 1.0), self._tokens + (now - self._stamp) * self._fill)
        self._stamp = now

    def _set_fill(self, value: float) -> None:
        self._refill()
        self._fill = max(value, 0.5)
        self._tokens = min(self._tokens, max(value, 1.0))

    def pace(self) -> float | None:
        return self._fill if self._enabled else None


class SreRatio(Unpaced):
    """Reject locally with probability max(0, (requests - K*accepts) / (requests + 1)) over the
    last two minutes; a local rejection counts as a request."""

    name = "SRE ratio"
    K, HISTORY = 2.0, 120.0

    def __init__(self, concurrency: int, clock: Clock, rng: random.Random) -> None:
        super().__init__(concurrency, clock)
        self._clock = clock
        self._rng = rng
        self._requests: collections.deque[float] = collections.deque()
        self._accepts: collections.deque[float] = collections.deque()

    async def acquire(self) -> None:
        now = self._clock()
        for times in (self._requests, self._accepts):
            while times and now - times[0] > self.HISTORY:
                times.popleft()
        self._requests.append(now)
        if self._rng.random() < self.reject_share():
            raise LocalReject()
        await super().acquire()

    def release(self, token: Any, signal: Signal, retry_after: float | None) -> None:
        super().release(token, signal, retry_after)
        if signal not in (Signal.RATE, Signal.CONCURRENCY):
            self._accepts.append(self._clock())

    def reject_share(self) -> float:
        requests = len(self._requests)
        return max(0.0, (requests - self.K * len(self._accepts)) / (requests + 1))

    def pace(self) -> float | None:
        return None


class Ours:
    """pipeline.flow.throttle.Throttle, with the pool's concurrency as its window's ceiling."""

    def __init__(self, concurrency: int, clock: Clock, policy: PacePolicy = PACE) -> None:
        self.name = "ours"
        self.throttle = Throttle(max_in_flight=concurrency, clock=clock, policy=policy)

    async def acquire(self) -> Any:
        return await self.throttle.acquire()

    def release(self, token: Any, signal: Signal, retry_after: float | None) -> None:
        self.throttle.release(token, signal)

    def pace(self) -> float | None:
        return self.throttle.pace
