"""Discrete-event simulation of the upload pool's flow control: `python -m tests.sim_flow`.

The evidence behind `pipeline/flow/throttle.py`, `window.py` and `breaker.py`. The real classes run
on a virtual-time asyncio loop (`tests/virtual_time.py`): seconds of traffic in milliseconds, and
the same seeds give the same events. The pool is the runner's loop as it was when these designs were
chosen: `4 x concurrency` tasks, each entry up to `max_attempts` attempts with the runner's backoff
(full jitter, Retry-After wins), waited out in its task (the runner now parks such a job outside its
tasks, `pipeline/flow/parking.py`; at the simulated client's 50 attempts a second the tasks are
never what limits the pool, so the comparisons stand); per attempt `admit()` (breaker), `acquire()`
(flow), the request, `record()`, `release()`; recording an outcome takes 20 ms of the client's one
thread (50 attempts per second at most, as the ledger writes cap the real runner). The service
follows the sandbox: refusals for a limit are answered at once, a request-per-second limit is a
sliding one-second window that counts only accepted requests, random faults are drawn per request;
it adds what the sandbox lacks: latency varies +-20% and the network 0-1 ms each way.

    python -m tests.sim_flow              the scenarios x the designs of tests/sim_rivals.py
    python -m tests.sim_flow --seeds 9    more seeds (the table shows medians)
    python -m tests.sim_flow --real       the same scenarios against a real sandbox subprocess
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import logging
import random
import statistics
import sys
from collections.abc import Awaitable, Callable, Sequence

from pipeline.core.errors import ServiceDown, TransientError
from pipeline.flow.backoff import RetryPolicy, backoff
from pipeline.flow.breaker import Breaker
from pipeline.flow.pace import PACE, PacePolicy
from pipeline.flow.signals import Signal
from tests import virtual_time
from tests.sim_rivals import (
    AwsAdaptive,
    Flow,
    LocalReject,
    MainAimd,
    Ours,
    SreRatio,
    Unpaced,
)

EPOCH = 1_800_000_000.0  # the simulated wall clock starts here
CLIENT_COST = 0.02  # seconds of the client's one thread per attempt (hash, probe, ledger)
# The end-to-end tests' backoff (INGEST_BACKOFF_BASE=0.05, INGEST_BACKOFF_MAX=0.5), so that
# retries alone do not hide what flow control costs; the dead service uses the defaults.
QUICK = RetryPolicy(base=0.05, cap=0.5)


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    latency: float = 0.01  # seconds to answer an accepted request, on average
    spread: float = 0.2  # each answer takes latency x (1 +- spread), at random
    net: float = 0.001  # up to this much each way, at random
    throttle: float = 0.0  # share answered 429 with Retry-After
    busy: float = 0.0  # share answered base_resp 1002 (no Retry-After)
    error: float = 0.0  # share answered 503
    drop: float = 0.0  # share dropped without an answer
    hang: float = 0.0  # share never answered (the client times out)
    retry_after: float = 1.0
    timeout: float = 2.0  # the client's timeout: what a hang costs
    max_rps: float | None = None  # sliding one-second window of accepted requests
    max_in_flight: int | None = None  # requests open at once beyond which it refuses
    in_flight_answer: int = 1041  # 1041 (CONCURRENCY) or 429 (RATE, with Retry-After)
    down: tuple[float, float] = (0.0, 0.0)  # [from, until): connections refused


@dataclasses.dataclass(frozen=True)
class Answer:
    signal: Signal
    retry_after: float | None
    kind: str  # ok | limit (refused for a limit) | fault (random) | down | local


@dataclasses.dataclass(frozen=True)
class Sent:
    at: float
    kind: str
    took: float = 0.0  # seconds until its answer


class SimService:
    def __init__(self, spec: ServiceSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.open = 0
        self.window: collections.deque[float] = collections.deque()

    async def request(self) -> Answer:
        await asyncio.sleep(self.rng.uniform(0, self.spec.net))
        now = asyncio.get_running_loop().time()
        if self.spec.down[0] <= now < self.spec.down[1]:
            return Answer(Signal.FAILURE, None, "down")
        self.open += 1
        try:
            answer = await self._serve(now)
        finally:
            self.open -= 1
        await asyncio.sleep(self.rng.uniform(0, self.spec.net))
        return answer

    async def _serve(self, now: float) -> Answer:
        spec = self.spec
        if spec.max_in_flight is not None and self.open > spec.max_in_flight:
            if spec.in_flight_answer == 429:
                return Answer(Signal.RATE, spec.retry_after, "limit")
            return Answer(Signal.CONCURRENCY, None, "limit")
        if self._over_rate(now):
            return Answer(Signal.RATE, spec.retry_after, "limit")
        fault = self._fault()
        if fault is not None:
            if fault.kind == "hang":
                await asyncio.sleep(self.spec.timeout)
            return Answer(fault.signal, fault.retry_after, "fault")
        await asyncio.sleep(spec.latency * self.rng.uniform(1 - spec.spread, 1 + spec.spread))
        return Answer(Signal.OK, None, "ok")

    def _fault(self) -> Answer | None:
        s, roll = self.spec, self.rng.random()
        for share, answer in (
            (s.throttle, Answer(Signal.RATE, s.retry_after, "429")),
            (s.busy, Answer(Signal.RATE, None, "1002")),
            (s.error, Answer(Signal.FAILURE, None, "503")),
            (s.drop, Answer(Signal.FAILURE, None, "drop")),
            (s.hang, Answer(Signal.FAILURE, None, "hang")),
        ):
            if roll < share:
                return answer
            roll -= share
        return None

    def _over_rate(self, now: float) -> bool:
        if self.spec.max_rps is None:
            return False
        while self.window and now - self.window[0] >= 1.0:
            self.window.popleft()
        if len(self.window) >= self.spec.max_rps:
            return True
        self.window.append(now)
        return False


@dataclasses.dataclass
class Outcome:
    """One run: when each request went out and how it ended, when each entry finished."""

    sent: list[Sent] = dataclasses.field(default_factory=list)
    finished: list[float] = dataclasses.field(default_factory=list)
    left: int = 0
    attempts_spent: int = 0
    stopped: str = ""
    tripped: int = 0  # times the breaker opened
    elapsed: float = 0.0
    paces: list[tuple[float, float | None]] = dataclasses.field(default_factory=list)


class Pool:
    """The runner's upload step as the lead will write it, reduced to flow control."""

    def __init__(
        self,
        flow: Flow,
        request: Callable[[], Awaitable[Answer]],
        *,
        files: int,
        concurrency: int,
        rng: random.Random,
        breaker: Breaker | None = None,
        policy: RetryPolicy = QUICK,
        client_cost: float = CLIENT_COST,
    ) -> None:
        self.flow = flow
        self.request = request
        self.files = files
        self.concurrency = concurrency
        self.rng = rng
        self.breaker = breaker
        self.policy = policy
        self.client_cost = client_cost
        self.started = 0.0
        self.out = Outcome()
        self.cpu = asyncio.Lock()  # the client's one thread
        self.todo = collections.deque(range(files))
        self.stop = asyncio.Event()

    def now(self) -> float:
        """Seconds since the run started."""
        return asyncio.get_running_loop().time() - self.started

    async def run(self) -> Outcome:
        self.started = asyncio.get_running_loop().time()
        workers = [asyncio.create_task(self._worker()) for _ in range(4 * self.concurrency)]
        sampler = asyncio.create_task(self._sample_pace())
        await asyncio.gather(*workers)
        sampler.cancel()
        self.out.elapsed = self.now()
        return self.out

    async def _sample_pace(self) -> None:
        while True:
            self.out.paces.append((self.now(), self.flow.pace()))
            await asyncio.sleep(0.5)

    async def _worker(self) -> None:
        while self.todo and not self.stop.is_set():
            self.todo.popleft()
            try:
                await self._entry()
            except ServiceDown as exc:
                self.out.stopped = str(exc)
                self.stop.set()

    async def _entry(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            answer, counted = await self._attempt()
            if answer.signal is Signal.OK:
                self.out.finished.append(self.now())
                return
            attempt += counted
            self.out.attempts_spent += counted
            if attempt >= self.policy.max_attempts:
                self.out.left += 1
                return
            error = TransientError(answer.kind, retry_after=answer.retry_after)
            await asyncio.sleep(backoff(self.policy, max(attempt, 1), error, self.rng.random))

    async def _attempt(self) -> tuple[Answer, bool]:
        """One attempt; whether it counts against the entry (not while the service is down)."""
        probe = await self.breaker.admit() if self.breaker is not None else False
        try:
            token = await self.flow.acquire()
        except LocalReject:
            self.out.sent.append(Sent(self.now(), "local"))
            return Answer(Signal.RATE, None, "local"), True
        sent = self.now()
        answer = await self.request()
        if self.client_cost:
            async with self.cpu:  # recording the outcome, holding the slot
                await asyncio.sleep(self.client_cost)
        if self.breaker is not None:
            was = self.breaker.state
            self.breaker.record(answer.signal)
            self.out.tripped += was == "closed" and self.breaker.state == "open"
        self.flow.release(token, answer.signal, answer.retry_after)
        self.out.sent.append(Sent(sent, answer.kind, self.now() - sent))
        down = self.breaker is not None and self.breaker.state != "closed"
        return answer, not (probe or down)


# --- scenarios ------------------------------------------------------------------------------

RANDOM = ServiceSpec(throttle=0.08, busy=0.05, error=0.08, drop=0.05, hang=0.03)


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    spec: ServiceSpec
    files: int = 200
    concurrency: int = 16
    settle: float = 5.0  # seconds before "settled"
    allowed: float | None = None  # accepted requests per second the limit allows
    breaker: bool = False
    max_outage: float = 600.0
    policy: RetryPolicy = QUICK


SCENARIOS = {
    "random": Scenario(
        "random slow-downs: 8% 429 + 5% 1002 + 16% faults, no limit; timeout 2 s", RANDOM
    ),
    "random-defaults": Scenario(
        "the same with the CLI's defaults: timeout 60 s, backoff 1 s doubling to 60 s",
        dataclasses.replace(RANDOM, timeout=60.0),
        policy=RetryPolicy(),
    ),
    "rate": Scenario(
        "a real limit: 10 requests/s (sliding 1 s window)",
        ServiceSpec(max_rps=10),
        files=400,
        allowed=10.0,
    ),
    "inflight": Scenario(
        "4 requests open at most (1041), 200 ms latency",
        ServiceSpec(latency=0.2, max_in_flight=4),
        settle=3.0,
        allowed=20.0,
    ),
    "inflight429": Scenario(
        "4 requests open at most (429, Retry-After 1), 200 ms latency",
        ServiceSpec(latency=0.2, max_in_flight=4, in_flight_answer=429),
        settle=3.0,
        allowed=20.0,
    ),
}
DEAD = {
    "dead": Scenario(
        "dead service: connections refused throughout, 600 files",
        ServiceSpec(down=(0.0, 1e9)),
        files=600,
        breaker=True,
        policy=RetryPolicy(),
    ),
    "outage": Scenario(
        "outage: connections refused for the first 90 s, 600 files",
        ServiceSpec(down=(0.0, 90.0)),
        files=600,
        breaker=True,
        policy=RetryPolicy(),
    ),
    "random+breaker": Scenario(
        "random slow-downs (16% failures among them), with the breaker; 10x the seeds",
        RANDOM,
        breaker=True,
    ),
}


def designs(variants: Sequence[str] = ()) -> dict[str, Callable[[int, random.Random], Flow]]:
    def clock() -> float:
        return asyncio.get_running_loop().time()

    made: dict[str, Callable[[int, random.Random], Flow]] = {
        "unpaced": lambda c, _: Unpaced(c, clock),
        "main AIMD": lambda c, _: MainAimd(c, clock),
        "AWS adaptive": lambda c, _: AwsAdaptive(c, clock),
        "SRE ratio": lambda c, rng: SreRatio(c, clock, rng),
        "ours": lambda c, _: Ours(c, clock),
    }
    for variant in variants:
        settings = dict(pair.split("=") for pair in variant.split(","))
        policy = PacePolicy(**{k: type(getattr(PACE, k))(v) for k, v in settings.items()})
        made[f"ours {variant}"] = lambda c, _, p=policy: Ours(c, clock, p)
    return made


def simulate(
    scenario: Scenario, make: Callable[[int, random.Random], Flow], seed: int, *, breaker: bool
) -> Outcome:
    async def main() -> Outcome:
        rng = random.Random(seed)
        service = SimService(scenario.spec, random.Random(seed + 1000))
        clock = asyncio.get_running_loop().time
        guard = (
            Breaker(max_outage=scenario.max_outage, clock=clock, wall=lambda: EPOCH + clock())
            if breaker
            else None
        )
        pool = Pool(
            make(scenario.concurrency, rng),
            service.request,
            files=scenario.files,
            concurrency=scenario.concurrency,
            rng=rng,
            breaker=guard,
            policy=scenario.policy,
        )
        return await pool.run()

    return virtual_time.run(main)


# --- measures -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Measures:
    elapsed: float
    left: int
    requests: int
    settled_rate: float  # accepted requests per second, settled part
    settled_refusals: float  # share of requests refused for a limit, settled part
    refusals: int  # all refusals for a limit (or local rejections)
    pace: float | None  # median pace over the settled part (None: mostly unlimited)
    low: float | None  # the lowest pace of the run


def measure(out: Outcome, scenario: Scenario) -> Measures:
    """Settled: from `scenario.settle` until fewer entries are left than the pool's slots."""
    finished = sorted(out.finished)
    last = scenario.files - scenario.concurrency - 1
    drain = finished[last] if len(finished) > last else out.elapsed
    start, end = scenario.settle, max(scenario.settle + 1e-9, drain)
    inside = [s for s in out.sent if start <= s.at < end]
    paces = [p for t, p in out.paces if start <= t < end]
    known = [p for p in paces if p is not None]
    everywhere = [p for _, p in out.paces if p is not None]
    return Measures(
        elapsed=out.elapsed,
        left=out.left,
        requests=len(out.sent),
        settled_rate=sum(1 for s in inside if s.kind == "ok") / (end - start),
        settled_refusals=_refused(inside) / len(inside) if inside else 0.0,
        refusals=_refused(out.sent),
        pace=statistics.median(known) if len(known) * 2 > len(paces) else None,
        low=min(everywhere, default=None),
    )


def _refused(sent: list[Sent]) -> int:
    return sum(1 for s in sent if s.kind in ("limit", "local"))


def _med(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _row(name: str, runs: list[Measures], scenario: Scenario, calm: float | None) -> str:
    """Medians over the seeds, and the worst seed for the settled rate and refusals."""
    elapsed = _med([m.elapsed for m in runs])
    times = f"{elapsed / calm:.1f}x" if calm else "-"
    if scenario.allowed:
        shares = [m.settled_rate / scenario.allowed for m in runs]
        of_limit = f"{_med(shares):.2f} {min(shares):.2f}"
    else:
        of_limit = "-"
    refused = [m.settled_refusals for m in runs]
    paces = [m.pace for m in runs if m.pace is not None]
    pace = f"{_med(paces):.1f}" if len(paces) * 2 > len(runs) else "none"
    lows = [m.low for m in runs if m.low is not None]
    low = f"{min(lows):.2f}" if lows else "none"
    return (
        f"{name:<14}{elapsed:>7.1f}{times:>7}{_med([m.left for m in runs]):>5.0f}"
        f"{_med([m.requests for m in runs]):>6.0f}{of_limit:>11}"
        f"{_med(refused):>8.1%}{max(refused):>7.1%}{_med([m.refusals for m in runs]):>6.0f}"
        f"{pace:>7}{low:>7}"
    )


HEADER = (
    f"{'design':<14}{'time s':>7}{'x calm':>7}{'left':>5}{'reqs':>6}{'of limit':>11}"
    f"{'refused':>8}{'worst':>7}{'(all)':>6}{'pace':>7}{'low':>7}"
)


# --- the tables -----------------------------------------------------------------------------


def calm_time(scenario: Scenario, seeds: Sequence[int]) -> float:
    """Median seconds for the same catalogue with no faults at all."""
    clean = dataclasses.replace(scenario, spec=ServiceSpec(latency=scenario.spec.latency))
    return _med([simulate(clean, designs()["unpaced"], s, breaker=False).elapsed for s in seeds])


def table(
    key: str, scenario: Scenario, seeds: Sequence[int], made: dict[str, Callable[..., Flow]]
) -> list[str]:
    lines = [f"\n## {key}: {scenario.name}; {scenario.files} files, c={scenario.concurrency}"]
    calm = calm_time(scenario, seeds) if scenario.allowed is None else None
    if calm is not None:
        lines.append(f"the same catalogue with no faults: {calm:.2f} s")
    lines.append(HEADER)
    for name, make in made.items():
        runs = [measure(simulate(scenario, make, s, breaker=False), scenario) for s in seeds]
        lines.append(_row(name, runs, scenario, calm))
    return lines


def dead_tables(seeds: Sequence[int]) -> list[str]:
    lines = []
    ours = designs()["ours"]
    for key, scenario in DEAD.items():
        lines.append(f"\n## {key}: {scenario.name}; c={scenario.concurrency}")
        lines.append(
            f"{'':<14}{'time s':>7}{'done':>6}{'left':>6}{'reqs':>7}{'attempts':>10}{'trips':>7}"
        )
        many = range(1, 10 * len(seeds) + 1)  # false trips are rare: look harder
        runs = many if scenario.spec == RANDOM else seeds
        for label, guarded in (("no breaker", False), ("breaker", True)):
            outs = [simulate(scenario, ours, s, breaker=guarded) for s in runs]
            lines.append(_dead_row(label, outs))
        stopped = next((o.stopped for o in outs if o.stopped), "")
        if stopped:
            lines.append(f"breaker: {stopped}")
    return lines


def _dead_row(label: str, outs: list[Outcome]) -> str:
    return (
        f"{label:<14}{_med([o.elapsed for o in outs]):>7.1f}"
        f"{_med([len(o.finished) for o in outs]):>6.0f}{_med([o.left for o in outs]):>6.0f}"
        f"{_med([len(o.sent) for o in outs]):>7.0f}{_med([o.attempts_spent for o in outs]):>10.0f}"
        f"{sum(o.tripped for o in outs):>7}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim_flow", description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--only", choices=[*SCENARIOS, "dead", "calm", "outage"], default=None, metavar="SCENARIO"
    )
    parser.add_argument(
        "--variant", nargs="*", default=[], help="ours with other PacePolicy values: probe=1.1,..."
    )
    parser.add_argument("--real", action="store_true", help="against a real sandbox")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the components")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    if args.real:
        from tests.sim_real import main as real_main

        return real_main(args.only)
    seeds = list(range(1, args.seeds + 1))
    made = designs(args.variant)
    for key, scenario in SCENARIOS.items():
        if args.only in (None, key):
            print("\n".join(table(key, scenario, seeds, made)), flush=True)
    if args.only in (None, "dead"):
        print("\n".join(dead_tables(seeds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
