"""The circuit breaker: when the service is down, stop sending and probe it, instead of letting
every entry spend its attempts on it one after another.

    CLOSED --`trip_after` FAILUREs in a row, nothing else between--> OPEN
    OPEN --the probe interval has passed--> HALF_OPEN: one caller is let through as the probe
    HALF_OPEN --the probe (or any request) answers anything but FAILURE--> CLOSED
    HALF_OPEN --a FAILURE--> OPEN, the probe interval doubled (`first_probe` .. `max_probe`)
    OPEN / HALF_OPEN for longer than `max_outage` --> admit() raises ServiceDown
    OPEN / HALF_OPEN for longer than `max_unreached`, and no request of the run has reached the
        service yet --> admit() raises NeverReached (a wrong URL fails fast)

A FAILURE is the service not answering (connection refused, reset, dropped, timeout) or answering
HTTP 5xx; anything else, a 429 included, proves it is up. Only a run of failures trips it, not
their share: with 16% of requests failing at random, eight in a row happen once in about 2
million requests, while a dead service fails every request the pool has open at once. While
OPEN, failures of requests sent before the trip change nothing. A probe whose verdict never comes
(its caller was cancelled) is offered again after `max_probe` seconds.

A request has *reached* the service when a connection was made, whatever came of it (an answer,
a 5xx, a reset, a timeout while waiting for the answer). Until one has, every failure is a
connection that could not be made (refused, a name that does not resolve, a TLS handshake that
failed): a service that was there a moment ago is rarely gone the very moment a run starts,
while a mistyped URL never answers, so such a run stops after the shorter `max_unreached`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable

from pipeline.core.errors import NeverReached, ServiceDown
from pipeline.core.times import clock_time
from pipeline.flow.signals import Signal

log = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # requests go out
    OPEN = "open"  # nothing goes out until the next probe
    HALF_OPEN = "half-open"  # one probe is out; the others wait for its verdict


class Breaker:
    def __init__(
        self,
        *,
        max_outage: float,
        max_unreached: float | None = None,
        trip_after: int = 8,
        first_probe: float = 1.0,
        max_probe: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.max_outage = max_outage
        self.max_unreached = max_outage if max_unreached is None else max_unreached
        self.trip_after = trip_after
        self.first_probe = first_probe
        self.max_probe = max_probe
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._state = BreakerState.CLOSED
        self._failures = 0  # FAILUREs in a row
        self._first_failed = (0.0, 0.0)  # (clock, wall) of the first of them
        self._interval = first_probe
        self._next_probe = 0.0  # clock time: OPEN lets a probe out from then; HALF_OPEN re-offers
        self._changed = asyncio.Event()
        self.reached = False  # whether any request of the run has reached the service
        self.unreached_cause: str | None = None  # why the last connection could not be made

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def never_reached(self) -> str | None:
        """Why no request has reached the service, when none has and one at least failed."""
        return None if self.reached else self.unreached_cause

    async def admit(self) -> bool:
        """Wait until a request may go out; True when this caller goes as the probe."""
        while self._state is not BreakerState.CLOSED:
            now = self._clock()
            give_up = self._first_failed[0] + self._patience()
            if now >= give_up:
                self._give_up(now)
            if now >= self._next_probe:
                self._send_probe(now)
                return True
            await self._nap(min(self._next_probe, give_up) - now)
        return False

    def _patience(self) -> float:
        if self.reached:
            return self.max_outage
        return min(self.max_outage, self.max_unreached)

    def _give_up(self, now: float) -> None:
        since, outage = self._first_failed[1], now - self._first_failed[0]
        cause = self.never_reached
        if cause is not None:
            raise NeverReached(since, outage, cause)
        raise ServiceDown(since, outage)

    def record(self, signal: Signal, *, unreached: str | None = None) -> None:
        """The outcome of any request: FAILURE counts against the service, anything else for.
        `unreached`: why no connection could be made, when none was."""
        if unreached is None:
            self.reached = True
        else:
            self.unreached_cause = unreached
        if signal is Signal.FAILURE:
            self._failed()
        else:
            self._answered()

    def _failed(self) -> None:
        now = self._clock()
        if self._state is BreakerState.OPEN:
            return  # sent before the trip, or a stale probe: nothing new
        if self._state is BreakerState.HALF_OPEN:
            interval = min(self.max_probe, self._interval * 2)
            level = logging.INFO if interval > self._interval else logging.DEBUG
            self._interval = interval
            self._open(now, "probe failed: ", level)
            return
        if self._failures == 0:
            self._first_failed = (now, self._wall())
        self._failures += 1
        if self._failures >= self.trip_after:
            self._interval = self.first_probe
            self._open(now, "", logging.WARNING)

    def _answered(self) -> None:
        self._failures = 0
        if self._state is BreakerState.CLOSED:
            return
        log.info("service reachable again after %.0f s", self._clock() - self._first_failed[0])
        self._change(BreakerState.CLOSED)

    def _open(self, now: float, prefix: str, level: int) -> None:
        self._next_probe = now + self._interval
        since = clock_time(self._first_failed[1])
        log.log(
            level,
            "%sservice unreachable since %s; probing every %g s",
            prefix,
            since,
            self._interval,
        )
        self._change(BreakerState.OPEN)

    def _send_probe(self, now: float) -> None:
        self._next_probe = now + self.max_probe  # offered again if this one never reports
        if self._state is BreakerState.OPEN:
            log.debug("probing the service")
            self._change(BreakerState.HALF_OPEN)

    def _change(self, state: BreakerState) -> None:
        self._state = state
        self._changed.set()
        self._changed = asyncio.Event()

    async def _nap(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early when the state changes."""
        changed = asyncio.ensure_future(self._changed.wait())
        slept = asyncio.ensure_future(self._sleep(max(0.0, seconds)))
        try:
            await asyncio.wait({changed, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            slept.cancel()
