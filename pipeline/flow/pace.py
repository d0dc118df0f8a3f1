"""The pace of the upload pool (request starts per second) as a model of the service's answers,
with no clock and no loop: `advance` and `pace_of` are pure functions of frozen values, and
`Meter` counts each answer into the epoch its request was sent in.

The pace learns, as BBR models a path by its delivery rate rather than by its losses, from the rate
of *accepted* answers per epoch (at least `epoch` seconds and `min_starts` starts; each answer
counts for the epoch its request was sent in, so an epoch measures what its own pace brought):

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

The `Throttle` (`throttle.py`) applies it, with the window, to the pool's requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pipeline.flow.signals import Signal


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


def above(epoch: Epoch, limit: int) -> Epoch:
    """`epoch` without the slow-downs of requests sent with more than `limit` open: a limit on
    open requests explains them (the window's business), not the pace."""
    slowed = sum(slow for open_, (_, slow) in epoch.profile.items() if open_ > limit)
    profile = {n: (a - s, 0) if n > limit else (a, s) for n, (a, s) in epoch.profile.items()}
    return dataclasses.replace(
        epoch, answers=epoch.answers - slowed, slow=epoch.slow - slowed, profile=profile
    )


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


@dataclasses.dataclass
class _EpochCount:
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
        self._open = {0: _EpochCount(now)}

    def started(self, held: bool, now: float) -> int:
        """Count a start; the number of its epoch."""
        number, tally = self._current, self._open[self._current]
        tally.starts += 1
        tally.held += held
        if now - tally.started >= self._policy.epoch and tally.starts >= self._policy.min_starts:
            tally.sealed = now
            self._current += 1
            self._open[self._current] = _EpochCount(now)
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
