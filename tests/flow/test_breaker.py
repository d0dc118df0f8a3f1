"""The circuit breaker on virtual time: every state change, probing, giving up, recovering."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from pipeline.core.errors import NeverReached, ServiceDown
from pipeline.core.times import clock_time
from pipeline.flow.breaker import Breaker, BreakerState
from pipeline.flow.signals import Signal
from tests import sim_flow, virtual_time

T = TypeVar("T")
WALL = 1_800_000_000.0


def run(main: Callable[[], Awaitable[T]]) -> T:
    return virtual_time.run(main)


def now() -> float:
    return asyncio.get_running_loop().time()


def breaker(**kwargs: float) -> Breaker:
    settings = {"max_outage": 600.0, "trip_after": 8, **kwargs}
    return Breaker(
        max_outage=settings["max_outage"],
        trip_after=int(settings["trip_after"]),
        clock=now,
        wall=lambda: WALL + now(),
        sleep=asyncio.sleep,
    )


def fail(guard: Breaker, times: int) -> None:
    for _ in range(times):
        guard.record(Signal.FAILURE)


async def probe_fails(guard: Breaker) -> float:
    """Wait for the next probe, fail it; the time it went."""
    assert await guard.admit() is True
    sent = now()
    guard.record(Signal.FAILURE)
    return sent


def test_closed_admits_at_once_and_not_as_a_probe() -> None:
    async def main() -> tuple[bool, float]:
        return await breaker().admit(), now()

    assert run(main) == (False, 0.0)


def test_a_run_of_failures_trips_it_and_says_since_when(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> BreakerState:
        guard = breaker()
        await asyncio.sleep(5.0)
        guard.record(Signal.FAILURE)
        await asyncio.sleep(1.0)
        fail(guard, 6)
        assert guard.state is BreakerState.CLOSED
        guard.record(Signal.FAILURE)  # the 8th in a row
        return guard.state

    with caplog.at_level(logging.INFO, logger="pipeline.flow.breaker"):
        state = run(main)
    assert state is BreakerState.OPEN
    since = clock_time(WALL + 5.0)  # the first failure of the run
    assert f"service unreachable since {since}; probing every 1 s" in caplog.text


def still() -> float:
    return 0.0


@pytest.mark.parametrize("other", [Signal.OK, Signal.RATE, Signal.CONCURRENCY])
def test_any_answer_between_failures_resets_the_run(other: Signal) -> None:
    guard = Breaker(max_outage=600.0, clock=still)
    for _ in range(10):
        fail(guard, 7)
        guard.record(other)
    assert guard.state is BreakerState.CLOSED


def test_sixteen_percent_random_failures_do_not_trip_it() -> None:
    rng = random.Random(16)
    guard = Breaker(max_outage=600.0, clock=still)
    for _ in range(20_000):
        guard.record(Signal.FAILURE if rng.random() < 0.16 else Signal.OK)
        assert guard.state is BreakerState.CLOSED


def test_random_faults_never_trip_it_in_the_simulated_run() -> None:
    scenario = sim_flow.DEAD["random+breaker"]
    ours = sim_flow.designs()["ours"]
    runs = [sim_flow.simulate(scenario, ours, seed, breaker=True) for seed in range(1, 21)]
    assert sum(out.tripped for out in runs) == 0


def test_open_waits_then_lets_exactly_one_probe_through() -> None:
    async def main() -> tuple[list[bool], list[float], BreakerState]:
        guard = breaker()
        fail(guard, 8)
        gate = [asyncio.create_task(guard.admit()) for _ in range(5)]
        await asyncio.sleep(1.5)
        done = [task for task in gate if task.done()]
        state = guard.state
        for task in gate:
            task.cancel()
        await asyncio.gather(*gate, return_exceptions=True)
        return [task.result() for task in done], [now()], state

    probes, _, state = run(main)
    assert probes == [True]  # one went, after the first interval; four still wait
    assert state is BreakerState.HALF_OPEN


def test_the_probe_interval_doubles_up_to_max_probe(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[float]:
        guard = breaker()
        fail(guard, 8)
        return [await probe_fails(guard) for _ in range(8)]

    with caplog.at_level(logging.INFO, logger="pipeline.flow.breaker"):
        sent = run(main)
    gaps = [round(b - a, 6) for a, b in zip([0.0, *sent], sent, strict=False)]
    assert gaps == [1, 2, 4, 8, 16, 30, 30, 30]
    assert "probe failed: service unreachable since" in caplog.text
    assert "probing every 4 s" in caplog.text


def test_service_down_past_max_outage_says_since_when() -> None:
    async def main() -> tuple[float, float]:
        guard = breaker(max_outage=120.0)
        await asyncio.sleep(3.0)
        fail(guard, 8)
        with pytest.raises(ServiceDown) as caught:
            while True:
                await probe_fails(guard)
        return caught.value.since, now()

    since, when = run(main)
    assert since == WALL + 3.0
    assert when == pytest.approx(123.0)


def test_waiters_give_up_with_service_down_too() -> None:
    async def main() -> list[BaseException | bool]:
        guard = breaker(max_outage=10.0)
        fail(guard, 8)
        gate = [asyncio.create_task(guard.admit()) for _ in range(3)]
        results = await asyncio.gather(*gate, return_exceptions=True)
        return list(results)

    results = run(main)
    assert results[0] is True  # the probe; nobody records it, so the others wait
    assert all(isinstance(r, ServiceDown) for r in results[1:])


def test_a_successful_probe_closes_it_and_releases_every_waiter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> tuple[BreakerState, list[bool], float]:
        guard = breaker()
        fail(guard, 8)
        await probe_fails(guard)  # at 1 s
        waiting = [asyncio.create_task(guard.admit()) for _ in range(4)]
        assert await guard.admit() is True  # at 3 s
        await asyncio.sleep(0.5)
        guard.record(Signal.OK)
        released = await asyncio.gather(*waiting)
        return guard.state, released, now()

    with caplog.at_level(logging.INFO, logger="pipeline.flow.breaker"):
        state, released, when = run(main)
    assert state is BreakerState.CLOSED
    assert released == [False] * 4 and when == pytest.approx(3.5)
    assert "service reachable again after 4 s" in caplog.text


def test_failures_of_requests_sent_before_the_trip_change_nothing_while_open() -> None:
    async def main() -> tuple[float, BreakerState]:
        guard = breaker()
        fail(guard, 8)
        fail(guard, 8)  # the rest of the requests that were open at the trip
        assert await guard.admit() is True
        return now(), guard.state

    assert run(main) == (1.0, BreakerState.HALF_OPEN)


def test_a_probe_that_never_reports_is_offered_again() -> None:
    async def main() -> list[float]:
        guard = breaker()
        fail(guard, 8)
        sent = []
        for _ in range(3):
            assert await guard.admit() is True  # its caller was cancelled: no record()
            sent.append(now())
        return sent

    assert run(main) == [1.0, 31.0, 61.0]


def test_a_cancelled_waiter_leaves_it_unchanged() -> None:
    async def main() -> tuple[BreakerState, bool]:
        guard = breaker()
        fail(guard, 8)
        waiter = asyncio.create_task(guard.admit())
        await asyncio.sleep(0.5)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return guard.state, await guard.admit()

    assert run(main) == (BreakerState.OPEN, True)


def test_a_dead_service_costs_no_attempts_and_stops_the_run() -> None:
    scenario = sim_flow.DEAD["dead"]
    out = sim_flow.simulate(scenario, sim_flow.designs()["ours"], 1, breaker=True)
    assert out.stopped.startswith("the service has been unreachable since")
    assert out.elapsed == pytest.approx(scenario.max_outage, abs=1.0)
    assert out.attempts_spent < 8 and out.left == 0  # the entries keep their attempts


def test_after_an_outage_every_entry_is_done() -> None:
    scenario = sim_flow.DEAD["outage"]
    out = sim_flow.simulate(scenario, sim_flow.designs()["ours"], 1, breaker=True)
    assert len(out.finished) == scenario.files and out.left == 0


def unreached(guard: Breaker, times: int, cause: str = "connection refused") -> None:
    for _ in range(times):
        guard.record(Signal.FAILURE, unreached=cause)


async def probes_until_it_gives_up(guard: Breaker) -> None:
    while True:
        await guard.admit()
        guard.record(Signal.FAILURE, unreached="connection refused")


def test_a_service_never_reached_is_given_up_after_max_unreached() -> None:
    async def main() -> tuple[float, NeverReached]:
        guard = Breaker(max_outage=600.0, max_unreached=30.0, clock=now, sleep=asyncio.sleep)
        unreached(guard, 8)
        with pytest.raises(NeverReached) as caught:
            await probes_until_it_gives_up(guard)
        return now(), caught.value

    ended, error = run(main)
    assert ended == 30.0
    assert error.cause == "connection refused" and error.exit_code == 6
    assert str(error) == "no request reached the service in 30 s: connection refused"


def test_once_reached_an_outage_is_bounded_by_max_outage_only() -> None:
    async def main() -> tuple[float, ServiceDown]:
        guard = Breaker(max_outage=120.0, max_unreached=30.0, clock=now, sleep=asyncio.sleep)
        guard.record(Signal.FAILURE)  # connected, then failed (a 5xx, a reset): it is there
        unreached(guard, 8)
        with pytest.raises(ServiceDown) as caught:
            await probes_until_it_gives_up(guard)
        return now(), caught.value

    ended, error = run(main)
    assert ended == 120.0 and not isinstance(error, NeverReached)


def test_never_reached_names_the_last_cause_until_a_request_reaches_it() -> None:
    guard = Breaker(max_outage=600.0, max_unreached=30.0)
    assert guard.never_reached is None  # nothing sent yet
    unreached(guard, 1, "name does not resolve (x.invalid: name or service not known)")
    assert guard.never_reached == "name does not resolve (x.invalid: name or service not known)"
    guard.record(Signal.OK)
    assert guard.never_reached is None
