"""The throttle: pace and window, as pure policy and as the real class on virtual time.

Behaviour tests run the real Throttle on `tests/virtual_time.py` (clock=loop.time,
sleep=asyncio.sleep): no real waiting, exact timings. The acceptance criteria of the flow-control
work are checked on the simulation of `tests/sim_flow.py`, with the same seeds as its table.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from pipeline.content.body import Body
from pipeline.core.errors import TransientError
from pipeline.core.secret import Secret
from pipeline.flow import window as windows
from pipeline.flow.pace import PACE, SETTLED, Epoch, PaceModel, above, advance, pace_of
from pipeline.flow.signals import Signal, signal_of
from pipeline.flow.throttle import Throttle
from pipeline.sandbox.samples import write_wav
from pipeline.sandbox.server import DEMO_KEY, UPLOAD_PATH, Faults, Sandbox
from pipeline.transport.client import UploadClient
from pipeline.transport.replies import Reply, classify_base_resp, classify_http
from pipeline.transport.routes import Routes
from tests import sim_flow, virtual_time

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    return virtual_time.run(main)


def now() -> float:
    return asyncio.get_running_loop().time()


def throttle(rate: float | None = None, window: int | None = 16) -> Throttle:
    return Throttle(rate, max_in_flight=window, clock=now, sleep=asyncio.sleep)


def epoch(answers: int, slow: int, *, seconds: float = 1.0, held: bool = True) -> Epoch:
    return Epoch(seconds, answers, slow, starts=answers, held=answers if held else 0)


# --- signals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "signal"),
    [
        (Reply(429, "application/json", b"{}"), Signal.RATE),
        (Reply(200, "application/json", b'{"base_resp": {"status_code": 1002}}'), Signal.RATE),
        (Reply(200, "application/json", b'{"base_resp": {"status_code": 1039}}'), Signal.RATE),
        (Reply(200, "application/json", b'{"base_resp": {"status_code": 2045}}'), Signal.RATE),
        (
            Reply(200, "application/json", b'{"base_resp": {"status_code": 1041}}'),
            Signal.CONCURRENCY,
        ),
        (Reply(503, "text/html", b"<title>down</title>"), Signal.FAILURE),
        (Reply(500, "application/json", b"{}"), Signal.FAILURE),
        (Reply(200, "application/json", b'{"base_resp": {"status_code": 1000}}'), Signal.OK),
        (Reply(200, "application/json", b'{"base_resp": {"status_code": 2013}}'), Signal.OK),
        (Reply(400, "application/json", b"{}"), Signal.OK),
    ],
)
def test_signal_of_an_answer(reply: Reply, signal: Signal) -> None:
    assert signal_of(classify_http(reply) or classify_base_resp(reply)) is signal


def test_a_request_that_got_no_answer_is_a_failure() -> None:
    assert signal_of(TransientError("upload failed: refused", unreachable=True)) is Signal.FAILURE
    assert signal_of(None) is Signal.OK


# --- the pace as pure policy ----------------------------------------------------------------


def test_an_isolated_slow_down_does_not_engage_the_pace() -> None:
    model = advance(PACE, PaceModel(), epoch(100, 1))
    assert pace_of(PACE, model) is None


def test_a_share_of_slow_downs_engages_the_pace_at_the_accepted_rate() -> None:
    model = advance(PACE, PaceModel(), epoch(100, 10, seconds=2.0))
    assert model.estimate == pytest.approx(45.0)  # 90 accepted in 2 s
    assert pace_of(PACE, model) == pytest.approx(PACE.cruise * 45.0)


def test_slow_downs_at_a_steady_share_do_not_ratchet_the_pace_down() -> None:
    # The pool could send 1,000 a second; the pace holds it, and 13% of what it sends is slowed
    # down whatever the pace (a shared key). Pacing at the accepted rate itself fell to 112 a
    # second in 300 epochs here: each cruise accepted 0.83 of the estimate and each probe 0.96.
    pool = 1000
    model = advance(PACE, PaceModel(), epoch(700, 91))
    first = pace_of(PACE, model)
    paces = []
    for _ in range(300):
        pace = pace_of(PACE, model)
        sent = int(min(pace or pool, pool))
        model = advance(PACE, model, epoch(sent, round(0.13 * sent), held=sent < pool))
        paces.append(pace_of(PACE, model))
    assert first is not None and min(p or 0.0 for p in paces) >= first
    assert paces[-1] is not None and paces[-1] >= 0.85 * pool


def test_a_steady_share_of_slow_downs_is_sent_on_top_of_the_estimate() -> None:
    model = advance(PACE, PaceModel(), epoch(100, 13))  # engaged: 87 accepted a second
    assert pace_of(PACE, model) == pytest.approx(PACE.cruise * 87)
    for _ in range(SETTLED):  # paced, and still 13% slowed down
        model = advance(PACE, model, epoch(100, 13))
    # 100 a second bring the 87 accepted: the slow-downs come whatever the pace.
    assert model.sending == pytest.approx(100.0)


def test_slow_downs_of_the_first_paced_epochs_are_not_taken_as_steady() -> None:
    model = advance(PACE, PaceModel(), epoch(100, 90))  # unpaced into a limit of 10 a second
    for _ in range(SETTLED - 1):  # still refused often: sent before the pace began, or retried
        model = advance(PACE, model, epoch(20, 8, seconds=2.0))
    assert model.sending == pytest.approx(model.estimate)


def test_a_real_limit_cruised_below_is_paced_at_its_accepted_rate() -> None:
    model = advance(PACE, PaceModel(), epoch(20, 4))  # engaged at 16/s
    model = advance(PACE, model, epoch(20, 8, seconds=20 / 17.6))  # refused above 16
    for _ in range(SETTLED):  # cruising below the limit: none refused
        model = advance(PACE, model, epoch(20, 0, seconds=20 / 15.2))
    assert model.sending == pytest.approx(16.0)  # the estimate, nothing on top


def test_a_probe_that_raises_the_accepted_rate_raises_the_estimate_and_probes_again() -> None:
    model = advance(PACE, PaceModel(), epoch(20, 4))  # engaged at 16/s
    model = advance(PACE, model, epoch(20, 0, seconds=20 / 15.2))  # cruise
    assert model.until_probe == 0
    model = advance(PACE, model, epoch(20, 0, seconds=20 / 17.6))  # probe: 17.6/s accepted
    assert model.estimate == pytest.approx(17.6)
    assert model.until_probe == 1  # it paid off: probe again after one cruising epoch


def test_a_probe_that_finds_nothing_waits_a_whole_cycle() -> None:
    model = advance(PACE, PaceModel(), epoch(20, 4))
    model = advance(PACE, model, epoch(20, 0, seconds=20 / 15.2))
    model = advance(PACE, model, epoch(20, 2, seconds=20 / 17.6))  # 10% more sent, none accepted
    assert model.estimate == pytest.approx(16.0)
    assert model.until_probe == PACE.cycle - 1


def test_epochs_where_the_pool_was_slower_than_the_pace_do_not_lower_the_estimate() -> None:
    model = advance(PACE, PaceModel(), epoch(100, 10))
    for _ in range(3 * PACE.memory):
        model = advance(PACE, model, epoch(40, 4, held=False))  # the pool had less to send
    assert model.estimate == pytest.approx(90.0)


def test_a_limit_that_fell_resets_the_estimate_at_once() -> None:
    model = advance(PACE, PaceModel(), epoch(100, 10))
    model = advance(PACE, model, epoch(100, 60))  # most refused now
    assert model.estimate == pytest.approx(40.0)


def test_a_pace_that_keeps_slow_downs_away_stays() -> None:
    model = advance(PACE, PaceModel(), epoch(100, 10))
    for _ in range(10 * PACE.memory):
        model = advance(PACE, model, epoch(100, 1))  # held back, and hardly a slow-down
    assert pace_of(PACE, model) is not None


def test_the_pace_is_released_once_it_holds_nothing_back_for_memory_epochs() -> None:
    model = advance(PACE, PaceModel(), epoch(100, 10))
    for _ in range(PACE.memory - 1):
        model = advance(PACE, model, epoch(100, 0, held=False))
    assert pace_of(PACE, model) is not None
    model = advance(PACE, model, epoch(100, 0, held=False))
    assert pace_of(PACE, model) is None


# --- the window as pure policy --------------------------------------------------------------

POLICY = windows.WindowPolicy(first_gap=2.0, max_gap=8.0)


def full_rounds(window: windows.Window, rounds: int, now: float) -> windows.Window:
    for _ in range(rounds * (window.size + 1)):
        window = windows.answered(window, window.size, now)
    return window


def test_a_concurrency_refusal_shrinks_the_window_to_what_it_measured() -> None:
    window = windows.refused(POLICY, windows.Window.start(16), 5, 16, now=0.0)
    assert window.size == 4


def test_refusals_of_requests_sent_under_a_larger_window_do_not_stack() -> None:
    window = windows.refused(POLICY, windows.Window.start(16), 5, 16, now=0.0)
    for sent_with in range(6, 17):
        window = windows.refused(POLICY, window, sent_with, 16, now=0.0)
    assert window.size == 4


def test_the_window_regrows_one_per_round_but_retries_a_refused_size_after_its_gap() -> None:
    window = windows.refused(POLICY, windows.Window.start(16), 3, 6, now=0.0)  # down to 2
    window = full_rounds(window, 3, now=0.5)
    assert window.size == 5  # 3, 4, 5: below the size refused, one per round
    window = full_rounds(window, 3, now=1.0)
    assert window.size == 5  # 6 was refused: not before the gap
    window = full_rounds(window, 1, now=2.0)
    assert window.size == 6


def test_the_gap_doubles_while_the_same_size_keeps_being_refused() -> None:
    window = windows.refused(POLICY, windows.Window.start(5), 5, 5, now=0.0)
    gaps = [window.gap]
    for moment in (10.0, 20.0, 30.0, 40.0):
        window = full_rounds(window, 1, now=moment)  # back to 5 ...
        window = windows.refused(POLICY, window, 5, 5, now=moment)  # ... refused again
        gaps.append(window.gap)
    assert gaps == [2.0, 4.0, 8.0, 8.0, 8.0]


def test_the_window_does_not_grow_while_it_is_not_full() -> None:
    window = windows.refused(POLICY, windows.Window.start(16), 5, 16, now=0.0)
    for _ in range(100):
        window = windows.answered(window, 2, now=100.0)
    assert window.size == 4


def test_a_429_limit_on_open_requests_is_told_from_where_slow_downs_fall() -> None:
    limited = {3: (20, 0), 4: (30, 1), 5: (10, 9), 6: (4, 4)}
    assert windows.limit_of(POLICY, limited) == 4
    spread = {k: (30, 4) for k in range(1, 17)}  # 13% at every count: random slow-downs
    assert windows.limit_of(POLICY, spread) is None
    isolated = {4: (30, 0), 5: (30, 1)}
    assert windows.limit_of(POLICY, isolated) is None


# --- the Throttle on virtual time -----------------------------------------------------------


def test_fixed_rate_spaces_every_start() -> None:
    async def main() -> list[float]:
        flow, times = throttle(4.0), []
        for _ in range(9):
            ticket = await flow.acquire()
            times.append(now())
            flow.release(ticket, Signal.OK)
        return times

    times = run(main)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap == pytest.approx(0.25) for gap in gaps)
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= 4


async def starts_after_a_late_wake_up(flow: Throttle) -> list[float]:
    """One start, a wait of four starts' worth at about 100 a second, then four more."""
    times = []
    for wait in (0.0, 0.04, 0.0, 0.0, 0.0):
        await asyncio.sleep(wait)
        ticket = await flow.acquire()
        times.append(now())
        flow.release(ticket, Signal.OK)
    return times


def test_an_adaptive_pace_lets_a_late_start_catch_up_and_a_fixed_rate_does_not() -> None:
    async def adaptive() -> list[float]:
        flow = throttle()
        flow._model = PaceModel(samples=(100.0,), engaged=10, until_probe=1)  # 95 a second
        return await starts_after_a_late_wake_up(flow)

    caught_up = run(adaptive)
    assert caught_up[1:] == [pytest.approx(caught_up[1])] * 4  # late: the four go at once
    fixed = run(lambda: starts_after_a_late_wake_up(throttle(95.0)))
    gaps = [b - a for a, b in zip(fixed[1:], fixed[2:], strict=False)]
    assert gaps == [pytest.approx(1 / 95)] * 3  # a ceiling: never closer than 1/rate


def test_set_rate_changes_the_ceiling_at_run_time() -> None:
    async def main() -> float:
        flow = throttle(2.0)
        flow.release(await flow.acquire(), Signal.OK)
        flow.set_rate(10.0)
        # still 1/2 s after the first: that slot was taken at 2/s
        flow.release(await flow.acquire(), Signal.OK)
        start = now()
        await flow.acquire()
        return now() - start

    assert run(main) == pytest.approx(0.1)


def test_acquire_waits_for_a_free_slot_in_the_window() -> None:
    async def main() -> tuple[bool, float]:
        flow = throttle(window=2)
        first = await flow.acquire()
        await flow.acquire()
        third = asyncio.create_task(flow.acquire())
        await asyncio.sleep(5.0)
        blocked = not third.done()
        flow.release(first, Signal.OK)
        await third
        return blocked, now()

    blocked, when = run(main)
    assert blocked and when == pytest.approx(5.0)


def test_waiters_get_slots_in_arrival_order() -> None:
    async def main() -> list[int]:
        flow, order = throttle(window=1), []

        async def one(i: int) -> None:
            ticket = await flow.acquire()
            order.append(i)
            await asyncio.sleep(1.0)
            flow.release(ticket, Signal.OK)

        await asyncio.gather(*(one(i) for i in range(6)))
        return order

    assert run(main) == [0, 1, 2, 3, 4, 5]


def test_a_cancelled_waiter_holds_no_slot() -> None:
    async def main() -> tuple[int, float]:
        flow = throttle(window=1)
        held = await flow.acquire()
        waiter = asyncio.create_task(flow.acquire())
        await asyncio.sleep(1.0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        flow.release(held, Signal.OK)
        start = now()
        await flow.acquire()  # the only slot is free again, at once
        return flow.in_flight, now() - start

    assert run(main) == (1, 0.0)


def test_a_waiter_cancelled_during_its_pace_wait_holds_no_slot() -> None:
    async def main() -> int:
        flow = throttle(rate=0.5)
        flow.release(await flow.acquire(), Signal.OK)
        waiter = asyncio.create_task(flow.acquire())  # must wait 2 s for the pace
        await asyncio.sleep(1.0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return flow.in_flight

    assert run(main) == 0


def test_an_isolated_429_does_not_pause_the_pool() -> None:
    async def main() -> tuple[float, float | None]:
        flow = throttle()
        for _ in range(30):
            flow.release(await flow.acquire(), Signal.OK)
            await asyncio.sleep(0.05)
        flow.release(await flow.acquire(), Signal.RATE)  # Retry-After: 1 for this one only
        start = now()
        for _ in range(10):
            flow.release(await flow.acquire(), Signal.OK)
        return now() - start, flow.pace

    waited, pace = run(main)
    assert waited == 0.0 and pace is None


def test_a_concurrency_refusal_shrinks_the_window_and_successes_regrow_it() -> None:
    async def main() -> tuple[int, int]:
        flow = throttle(window=8)
        held = collections.deque(await asyncio.gather(*(flow.acquire() for _ in range(5))))
        flow.release(await flow.acquire(), Signal.CONCURRENCY)  # the 6th open request
        shrunk = flow.window
        for _ in range(200):  # keep the window full while the service accepts
            await asyncio.sleep(0.1)
            flow.release(held.popleft(), Signal.OK)
            while flow.in_flight < flow.window:
                held.append(await flow.acquire())
        return shrunk, flow.window

    shrunk, regrown = run(main)
    assert shrunk == 5
    assert regrown == 8


def test_an_abandoned_request_frees_its_slot_and_teaches_nothing() -> None:
    async def main() -> tuple[int, int, float | None]:
        flow = throttle(window=2)
        for _ in range(200):
            ticket = await flow.acquire()
            await asyncio.sleep(0.01)
            flow.abandon(ticket)
        return flow.in_flight, flow.window, flow.pace

    assert run(main) == (0, 2, None)


def test_pace_window_and_requests_open_can_be_read() -> None:
    async def main() -> tuple[float | None, int, int]:
        flow = throttle(rate=3.0, window=4)
        await flow.acquire()
        return flow.pace, flow.window, flow.in_flight

    assert run(main) == (3.0, 4, 1)


# --- the acceptance criteria, on the simulation ---------------------------------------------

SEEDS = range(1, 6)


def settled(key: str) -> list[sim_flow.Measures]:
    scenario = sim_flow.SCENARIOS[key]
    ours = sim_flow.designs()["ours"]
    return [
        sim_flow.measure(sim_flow.simulate(scenario, ours, seed, breaker=False), scenario)
        for seed in SEEDS
    ]


def test_random_slow_downs_keep_the_run_within_3x_of_a_run_without_faults() -> None:
    scenario = sim_flow.SCENARIOS["random"]
    calm = sim_flow.calm_time(scenario, SEEDS)
    runs = settled("random")
    assert all(m.left == 0 and m.elapsed <= 3 * calm for m in runs)
    assert all(m.low is None or m.low > 20 for m in runs)  # no collapse towards the floor


def test_a_real_rate_limit_is_found_and_held() -> None:
    for m in settled("rate"):
        assert m.settled_rate >= 0.85 * 10
        assert m.settled_refusals < 0.05


@pytest.mark.parametrize("key", ["inflight", "inflight429"])
def test_a_limit_on_requests_open_is_found_and_held(key: str) -> None:
    for m in settled(key):
        assert m.settled_rate >= 0.8 * 20
        assert m.settled_refusals < 0.05
        assert m.left == 0


def test_429s_that_fall_only_above_a_count_of_open_requests_leave_the_pace_alone() -> None:
    """They are the window's: a pace engaged on them took its estimate from the first epoch's
    accepted rate, which a loaded machine makes low, and held the pool below the window."""
    assert all(m.pace is None for m in settled("inflight429"))


def test_an_epoch_without_the_slow_downs_a_limit_on_open_requests_explains() -> None:
    epoch = Epoch(1.0, answers=20, slow=8, starts=20, held=0,
                  profile={3: (4, 0), 4: (6, 1), 5: (4, 3), 9: (6, 4)})  # fmt: skip
    explained = above(epoch, 4)
    assert (explained.answers, explained.slow) == (13, 1)
    assert explained.accepted_rate == epoch.accepted_rate
    assert explained.profile == {3: (4, 0), 4: (6, 1), 5: (1, 0), 9: (2, 0)}


# --- against a real sandbox over loopback ---------------------------------------------------


async def test_the_window_learns_a_real_sandbox_limit_on_open_requests(tmp_path: Path) -> None:
    sandbox = Sandbox(key=DEMO_KEY, faults=Faults(latency=0.05, max_in_flight=3))
    server = TestServer(sandbox.app())
    await server.start_server()
    path = write_wav(tmp_path / "a.wav", 10.5, rate=2000)
    body = Body(size=path.stat().st_size, data=path.read_bytes())
    flow = Throttle(max_in_flight=8)
    try:
        async with aiohttp.ClientSession() as session:
            url = str(server.make_url(UPLOAD_PATH))
            client = UploadClient(Routes.direct(session), url=url, key=Secret(DEMO_KEY), timeout=5)

            async def one() -> None:
                for _ in range(6):
                    ticket = await flow.acquire()
                    signal = Signal.OK
                    try:
                        await client.upload(
                            body, purpose="song", filename="a.wav", content_type="audio/wav"
                        )
                    except TransientError as exc:
                        assert "base_resp 1041" in exc.reason
                        signal = Signal.CONCURRENCY
                    flow.release(ticket, signal)
                    if signal is Signal.OK:
                        return

            await asyncio.gather(*(one() for _ in range(24)))
    finally:
        await server.close()
    refused = [r for r in sandbox.requests if r["outcome"] == "base_resp 1041"]
    assert refused and all(r["open"] > 3 for r in refused)
    assert flow.window <= 3
    assert len(refused) < 12  # the window stopped the refusals early
