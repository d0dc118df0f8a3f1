"""Flow control for the whole upload pool: a pace (request starts per second, `pace.py`) and a
window (requests open at once, `window.py`), both learnt from what the service answers, applied
to the pool's requests.

Each answer is one `Signal`. The window learns from CONCURRENCY refusals, and from 429s that
fall only above some number of open requests; the pace from the rate of accepted answers per
epoch, and from the slow-downs that the window does not explain: those are told from a limit on
open requests by what they correlate with (the requests open when each was sent), and only a
slow-down that falls at any count is a sign that requests go out too fast. The pace is a token
bucket `burst` seconds deep, so a start the busy event loop makes late is caught up rather than
lost; a fixed `rate` has no such slack: it is a hard ceiling (a token bucket of depth one:
starts 1/rate apart, so no second ever sees more), and the adaptive pace still applies below it.
An isolated Retry-After delays only the request that received it (the caller's backoff); the
pool never pauses for it.

A request holds a `Ticket` from `acquire()` until `release(ticket, signal)`: what was open when it
was sent, under which window, in which epoch, which is what its answer teaches.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable

from pipeline.flow import window as windows
from pipeline.flow.pace import PACE, Epoch, Meter, PaceModel, PacePolicy, above, advance, pace_of
from pipeline.flow.signals import Signal

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """A request's slot: what it was sent with, so that its answer can be learnt from."""

    sent_with: int  # requests open once it started, itself included
    sent_under: int  # the window then
    epoch: int  # the pace's measurement epoch it was sent in


class Throttle:
    """Paces request starts and bounds requests open at once, for the whole pool.

    `acquire()` waits, in arrival order, for a free slot in the window and for the pace, then
    counts the request open and hands it a ticket; `release(ticket, signal)` frees the slot once
    its outcome is recorded.
    """

    def __init__(
        self,
        rate: float | None = None,
        *,
        max_in_flight: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        policy: PacePolicy = PACE,
        window_policy: windows.WindowPolicy = windows.WINDOW_POLICY,
    ) -> None:
        self._fixed = rate
        self._clock = clock
        self._sleep = sleep
        self._policy = policy
        self._window_policy = window_policy
        # None: the caller bounds its requests itself (the runner before it calls release()).
        self._window = windows.Window.start(max_in_flight or 2**31)
        self._model = PaceModel()
        self._meter = Meter(policy, clock())
        self._in_flight = 0
        self._next_start = -math.inf
        self._turn = asyncio.Lock()  # waiters are served in arrival order
        self._freed = asyncio.Event()

    @property
    def pace(self) -> float | None:
        """Requests per second now allowed: the adaptive pace under the fixed ceiling."""
        adaptive = pace_of(self._policy, self._model)
        if adaptive is None or self._fixed is None:
            return self._fixed if adaptive is None else adaptive
        return min(adaptive, self._fixed)

    @property
    def window(self) -> int:
        """Requests that may be open at once now."""
        return self._window.size

    @property
    def in_flight(self) -> int:
        """Requests holding a ticket now."""
        return self._in_flight

    def set_rate(self, rate: float | None) -> None:
        """A new fixed ceiling (or none); waiters see it from their next start."""
        self._fixed = rate

    async def acquire(self) -> Ticket:
        """Wait for a free slot and for the pace; the request is then counted open, and holds
        the ticket until it is released."""
        async with self._turn:
            held = False
            while (delay := self._delay()) > 0:
                if math.isinf(delay):
                    self._freed.clear()
                    await self._freed.wait()
                else:
                    held = True
                    await self._sleep(delay)
            return self._start(held)

    def release(self, ticket: Ticket, signal: Signal) -> None:
        """The request ended with `signal` and its outcome is recorded: free its slot."""
        self._free(ticket, signal)

    def abandon(self, ticket: Ticket) -> None:
        """The request was given up before any answer (the run is stopping): free its slot,
        learn nothing from it."""
        self._free(ticket, None)

    def _free(self, ticket: Ticket, signal: Signal | None) -> None:
        sent_with, sent_under = ticket.sent_with, ticket.sent_under
        if signal is not None and self._learn_window(signal, sent_with, sent_under):
            signal = Signal.CONCURRENCY  # the window's refusal: not the pace's to learn from
        self._in_flight = max(0, self._in_flight - 1)
        for closed in self._meter.answered(ticket.epoch, signal, sent_with):
            self._learn_pace(self._learn_limit(closed))
        self._freed.set()

    def _delay(self) -> float:
        """Seconds until the next start may go: inf while the window is full."""
        if self._in_flight >= self._window.size:
            return math.inf
        return self._next_start - self._clock() if self.pace is not None else 0.0

    def _start(self, held: bool) -> Ticket:
        now = self._clock()
        pace = self.pace
        # A late start may catch up a little, unless the fixed ceiling is what binds.
        slack = self._policy.burst if pace is not None and pace != self._fixed else 0.0
        self._next_start = max(now - slack, self._next_start) + (1.0 / pace if pace else 0.0)
        self._in_flight += 1
        return Ticket(self._in_flight, self._window.size, self._meter.started(held, now))

    def _learn_window(self, signal: Signal, sent_with: int, sent_under: int) -> bool:
        """Learn from one answer; True when it refused the window (a 1041, or a slow-down at or
        above the in-flight limit learnt)."""
        before, now = self._window, self._clock()
        slowed, concurrency = signal is Signal.RATE, signal is Signal.CONCURRENCY
        refusal = windows.is_refusal(before, slowed, concurrency, sent_with)
        if refusal:
            self._window = windows.refused(self._window_policy, before, sent_with, sent_under, now)
        elif signal is Signal.OK:
            self._window = windows.answered(before, self._in_flight, now)
        if self._window.size < before.size:
            log.info(
                "the service refused a request sent with %d open: window %d -> %d",
                sent_with,
                before.size,
                self._window.size,
            )
        elif self._window.size > before.size:
            log.debug("window %d -> %d", before.size, self._window.size)
        return refusal

    def _learn_limit(self, epoch: Epoch) -> Epoch:
        """Slow-downs only above some number of open requests: a limit on open requests. The
        epoch comes back without those slow-downs, which say nothing of the pace: left in, a
        limit on open requests answered with 429 would engage the pace, which then held the
        pool below what the window allows."""
        limit = windows.limit_of(self._window_policy, epoch.profile)
        if limit is None:  # none seen in this epoch: the one learnt, if any, explains its own
            return above(epoch, self._window.learnt) if self._window.learnt else epoch
        explained = above(epoch, limit)
        if limit >= self._window.size:
            return explained
        before, first = self._window.size, not self._window.learnt
        self._window = windows.learn_limit(self._window_policy, self._window, limit, self._clock())
        if first:  # the slow-downs that engaged the pace were this limit's: start it afresh
            self._model = PaceModel()
        log.info(
            "slow-downs only above %d requests open at once: window %d -> %d",
            limit,
            before,
            self._window.size,
        )
        return explained

    def _learn_pace(self, epoch: Epoch) -> None:
        if not epoch.answers:
            return
        before = pace_of(self._policy, self._model)
        self._model = advance(self._policy, self._model, epoch)
        self._log_pace(before, epoch)

    def _log_pace(self, before: float | None, epoch: Epoch) -> None:
        after = pace_of(self._policy, self._model)
        share = epoch.slow / epoch.answers
        if before is None and after is not None:
            log.info(
                "%.0f%% of answers were slow-downs: pool paced at %.2f requests/s "
                "(accepted %.2f/s)",
                100 * share,
                after,
                epoch.accepted_rate,
            )
        elif before is not None and after is None:
            log.info("no slow-downs for %d epochs: no pace limit", self._policy.memory)
        elif before is not None and after is not None and abs(after - before) > 0.1 * before:
            log.debug("pace %.2f -> %.2f requests/s (%.0f%% slow-downs)", before, after, share)
