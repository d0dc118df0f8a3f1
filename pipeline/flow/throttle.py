"""Flow control for the whole upload pool: a pace (request starts per second) and a window
(requests open at once), both learnt from what the service answers.

Each answer is one `Signal`. The window (`pipeline/flow/window.py`) learns from CONCURRENCY
refusals, and from 429s that fall only above some number of open requests. The pace learns, as BBR
models a path by its delivery rate rather than by its losses, from the rate of *accepted* answers
per epoch (at least `epoch` seconds and `min_starts` starts; each answer counts for the epoch its
request was sent in, so an epoch measures what its own pace brought):

    accepted rate of an epoch = its requests that were not slowed down / its seconds
    estimate = the highest accepted rate of the last `memory` epochs in which the pace held
               requests back (epochs where the pool was slower anyway only count if higher)
    sending  = estimate / (1 - the steady share): the requests a second that bring the
               estimate, when some share of the answers are slow-downs whatever the pace (a
               shared key). The steady share is the lowest share of slow-downs among the last
               `memory` epochs paced, once there are `SETTLED` of them: 0 under a real limit,
               since the epochs that cruise below it are (nearly) free of slow-downs

    UNLIMITED --an epoch with >= 2 slow-downs and >= `engage` of its answers--> PACED
              (the estimate starts from that epoch's accepted rate)
    PACED: pace = `cruise` x sending; one epoch in `cycle` probes at `probe` x sending, and
           while probes raise the estimate (by `found`) every other epoch does; an epoch with
           `reset` of its answers slowed down drops the estimate to its accepted rate (and
           probing starts again every other epoch)
    PACED --`memory` epochs without that many slow-downs, in which the pace held nothing
            back (the pool no longer sends faster than it)--> UNLIMITED

Why this design: with a real limit, sending faster does not raise the accepted rate, so the
estimate settles on the limit; random slow-downs cost about nothing, as the pace sends that much
more, and nothing is cut per signal, so they cannot ratchet the pace down. (Pacing at the
accepted rate itself did ratchet, slowly: with 13% random slow-downs a cruise accepted 0.83 of
the estimate and a probe 0.96, never the `found` more, so each `memory` epochs the estimate lost
4%; a pool able to send 1,000 a second fell from 578 to 112 in 300 epochs.) The pace is a token
bucket `burst` seconds deep, so a start the busy event loop makes late is caught up rather than
lost; a fixed `rate` has no such slack. In `tests/sim_flow.py` (9 seeds), per-signal cuts
collapsed under random slow-downs (the AIMD this replaces to 0.4 req/s, AWS's CUBIC limiter
to 3.6 req/s: 18x a fault-free run), SRE accept-ratio throttling let twice the accepted rate
through and spent entries' attempts; this one kept that run at 1.8x fault-free and held a
10 req/s limit at 0.90 of it with 1.8% refused. A probe gain of 1.1 rather than BBR's 1.25 halved
those refusals (1.25: 3.2%, and 5.7% on the worst seed of a 429 in-flight limit).

A fixed `rate` is a hard ceiling (a token bucket of depth one: starts 1/rate apart, so no second
ever sees more); the adaptive pace still applies below it. An isolated Retry-After delays only
the request that received it (the caller's backoff); the pool never pauses for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from pipeline.flow import window as windows
from pipeline.flow.signals import Signal

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PacePolicy:
    epoch: float = 1.0  # shortest measurement epoch, seconds
    min_starts: int = 20  # starts an epoch needs before its sending ends
    memory: int = 10  # epochs the estimate remembers, and that PACED lasts after slow-downs
    cycle: int = 8  # epochs per probing cycle: one probes, the others cruise
    found: float = 0.05  # a probe that raised the estimate by this much is followed by another
    probe: float = 1.1  # pace of the probing epoch, times the estimate
    cruise: float = 0.95  # pace of the other epochs, times the estimate
    engage: float = 0.05  # share of slow-downs in an epoch that engages (or keeps) the pace
    reset: float = 0.5  # share of slow-downs in an epoch that drops the estimate to its rate
    floor: float = 0.2  # the slowest pace, requests per second
    burst: float = 0.05  # seconds of the adaptive pace's starts a late start may catch up on


PACE = PacePolicy()
SETTLED = 3  # paced epochs before their share of slow-downs is taken as steady
WINDOW = windows.WindowPolicy()


@dataclasses.dataclass(frozen=True)
class Epoch:
    """What one measurement epoch saw."""

    seconds: float
    answers: int  # OK, RATE and FAILURE answers (CONCURRENCY is the window's business)
    slow: int  # RATE answers among them
    starts: int
    held: int  # starts that waited for the pace
    # requests open when sent (itself included) -> (answers, slow-downs) of those requests
    profile: Mapping[int, tuple[int, int]] = dataclasses.field(default_factory=dict)

    @property
    def accepted_rate(self) -> float:
        return (self.answers - self.slow) / self.seconds

    @property
    def bound(self) -> bool:
        """Whether the pace held back most starts: the pool would have sent faster."""
        return self.held * 2 >= self.starts > 0


@dataclasses.dataclass(frozen=True)
class PaceModel:
    samples: tuple[float, ...] = ()  # accepted rates of the epochs the estimate remembers
    shares: tuple[float, ...] = ()  # shares of slow-downs of the last epochs paced
    engaged: int = 0  # epochs left PACED; 0 is UNLIMITED
    until_probe: int = 0  # epochs before the next probe; 0: this one probes

    @property
    def estimate(self) -> float | None:
        return max(self.samples) if self.samples else None

    @property
    def sending(self) -> float | None:
        """Requests per second that bring the estimate, given the slow-downs that come anyway."""
        estimate = self.estimate
        if estimate is None:
            return None
        return estimate / (1 - self.steady_share)

    @property
    def steady_share(self) -> float:
        """The share of slow-downs that comes whatever the pace: the lowest of the paced epochs
        remembered, once there are `SETTLED` of them (until then 0: the first paced epochs may
        still hold requests sent before the pace began, refused for going too fast)."""
        return min(self.shares) if len(self.shares) >= SETTLED else 0.0


def advance(policy: PacePolicy, model: PaceModel, epoch: Epoch) -> PaceModel:
    """The model after one more epoch."""
    slowed = epoch.slow >= 2 and epoch.slow >= policy.engage * epoch.answers
    if slowed:
        engaged = policy.memory
    else:  # a pace that keeps slow-downs away is still needed while it holds requests back
        engaged = model.engaged if epoch.bound else max(0, model.engaged - 1)
    fresh = slowed and (not model.engaged or epoch.slow >= policy.reset * epoch.answers)
    samples = _samples(policy, model, epoch, fresh)
    if fresh:
        shares: tuple[float, ...] = ()
    elif model.engaged:
        shares = (*model.shares, min(policy.reset, epoch.slow / epoch.answers))[-policy.memory :]
    else:
        shares = model.shares
    until = _until_probe(policy, model, samples, fresh) if engaged else 0
    return PaceModel(samples, shares, engaged, until)


def _until_probe(
    policy: PacePolicy, model: PaceModel, samples: tuple[float, ...], fresh: bool
) -> int:
    """Probe again after one cruising epoch while probes pay off (and when the estimate starts
    afresh), else after a whole cycle."""
    if fresh or model.estimate is None:
        return 1
    if model.until_probe:
        return model.until_probe - 1
    grew = max(samples) >= model.estimate * (1 + policy.found)
    return 1 if grew else policy.cycle - 1


def _samples(policy: PacePolicy, model: PaceModel, epoch: Epoch, fresh: bool) -> tuple[float, ...]:
    rate = epoch.accepted_rate
    if fresh:
        return (rate,)  # newly limited, or the limit fell: start from what was accepted
    if epoch.bound or model.estimate is None or rate > model.estimate:
        return (*model.samples, rate)[-policy.memory :]
    return model.samples  # the pool was slower than the pace: says nothing about the service


def pace_of(policy: PacePolicy, model: PaceModel) -> float | None:
    """Requests per second the model allows; None when it does not limit."""
    sending = model.sending
    if not model.engaged or sending is None:
        return None
    gain = policy.probe if model.until_probe == 0 else policy.cruise
    return max(policy.floor, gain * sending)


@dataclasses.dataclass(frozen=True)
class ThrottleState:
    """A snapshot for logs and the live display."""

    pace: float | None  # requests per second, None when nothing limits the pace
    window: int  # requests that may be open at once
    in_flight: int


@dataclasses.dataclass
class _Tally:
    started: float
    sealed: float | None = None  # when its sending period ended
    starts: int = 0
    held: int = 0
    done: int = 0  # requests of this epoch released, whatever their signal
    answers: int = 0
    slow: int = 0
    profile: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)

    def count(self, signal: Signal | None, sent_with: int) -> None:
        self.done += 1
        if signal is None or signal is Signal.CONCURRENCY:
            return
        slow = signal is Signal.RATE
        self.answers += 1
        self.slow += slow
        answers, slowed = self.profile.get(sent_with, (0, 0))
        self.profile[sent_with] = (answers + 1, slowed + slow)

    def epoch(self) -> Epoch:
        assert self.sealed is not None
        seconds = self.sealed - self.started
        return Epoch(seconds, self.answers, self.slow, self.starts, self.held, self.profile)


class Meter:
    """Counts each answer against the epoch its request was *sent* in, so an epoch measures
    what its own pace brought (answers arriving during a probe still belong to the cruise
    before it). An epoch's sending ends after `epoch` seconds and `min_starts` starts; it is
    closed once all its requests are answered, or once the next one's sending has ended too."""

    def __init__(self, policy: PacePolicy, now: float) -> None:
        self._policy = policy
        self._current = 0
        self._open = {0: _Tally(now)}

    def started(self, held: bool, now: float) -> int:
        """Count a start; the number of its epoch."""
        number, tally = self._current, self._open[self._current]
        tally.starts += 1
        tally.held += held
        if now - tally.started >= self._policy.epoch and tally.starts >= self._policy.min_starts:
            tally.sealed = now
            self._current += 1
            self._open[self._current] = _Tally(now)
        return number

    def answered(self, number: int, signal: Signal | None, sent_with: int) -> list[Epoch]:
        """Count an answer to a request of epoch `number` (None: it got none); the epochs this
        closes."""
        tally = self._open.get(number)
        if tally is not None:
            tally.count(signal, sent_with)
        closed = []
        while (first := min(self._open)) != self._current:
            tally, later = self._open[first], self._open[first + 1]
            if tally.done < tally.starts and later.sealed is None:
                break
            closed.append(self._open.pop(first).epoch())
        return closed


class Throttle:
    """Paces request starts and bounds requests open at once, for the whole pool.

    `acquire()` waits, in arrival order, for a free slot in the window and for the pace, then
    counts the request open; `release(signal)` frees the slot once its outcome is recorded.
    """

    def __init__(
        self,
        rate: float | None = None,
        *,
        max_in_flight: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        policy: PacePolicy = PACE,
        window_policy: windows.WindowPolicy = WINDOW,
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
        # per task holding a slot: requests open once it started (itself included), the window
        # then, and its epoch
        self._sent: dict[asyncio.Task[object] | None, tuple[int, int, int]] = {}
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

    def snapshot(self) -> ThrottleState:
        return ThrottleState(self.pace, self._window.size, self._in_flight)

    def set_rate(self, rate: float | None) -> None:
        """A new fixed ceiling (or none); waiters see it from their next start."""
        self._fixed = rate

    async def acquire(self) -> None:
        """Wait for a free slot and for the pace; the request is then counted open."""
        async with self._turn:
            held = False
            while (delay := self._delay()) > 0:
                if math.isinf(delay):
                    self._freed.clear()
                    await self._freed.wait()
                else:
                    held = True
                    await self._sleep(delay)
            self._start(held)

    def release(self, signal: Signal) -> None:
        """The request ended with `signal` and its outcome is recorded: free its slot."""
        self._free(signal)

    def abandon(self) -> None:
        """The request was given up before any answer (the run is stopping): free its slot,
        learn nothing from it."""
        self._free(None)

    def _free(self, signal: Signal | None) -> None:
        fallback = (self._in_flight, self._window.size, -1)
        sent_with, sent_under, epoch = self._sent.pop(asyncio.current_task(), fallback)
        if signal is not None:
            self._learn_window(signal, sent_with, sent_under)
        self._in_flight = max(0, self._in_flight - 1)
        for closed in self._meter.answered(epoch, signal, sent_with):
            self._learn_pace(closed)
            self._learn_limit(closed)
        self._freed.set()

    def _delay(self) -> float:
        """Seconds until the next start may go: inf while the window is full."""
        if self._in_flight >= self._window.size:
            return math.inf
        return self._next_start - self._clock() if self.pace is not None else 0.0

    def _start(self, held: bool) -> None:
        now = self._clock()
        pace = self.pace
        # A late start may catch up a little, unless the fixed ceiling is what binds.
        slack = self._policy.burst if pace is not None and pace != self._fixed else 0.0
        self._next_start = max(now - slack, self._next_start) + (1.0 / pace if pace else 0.0)
        self._in_flight += 1
        epoch = self._meter.started(held, now)
        self._sent[asyncio.current_task()] = (self._in_flight, self._window.size, epoch)

    def _learn_window(self, signal: Signal, sent_with: int, sent_under: int) -> None:
        before, now = self._window, self._clock()
        slowed, concurrency = signal is Signal.RATE, signal is Signal.CONCURRENCY
        if windows.is_refusal(before, slowed, concurrency, sent_with):
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

    def _learn_limit(self, epoch: Epoch) -> None:
        """Slow-downs only above some number of open requests: a limit on open requests."""
        limit = windows.limit_of(self._window_policy, epoch.profile)
        if limit is None or limit >= self._window.size:
            return
        before = self._window.size
        self._window = windows.learn_limit(self._window_policy, self._window, limit, self._clock())
        log.info(
            "slow-downs only above %d requests open at once: window %d -> %d",
            limit,
            before,
            self._window.size,
        )

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
