from __future__ import annotations

import pytest

from pipeline.throttle import MIN_RATE, Throttle


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def starts(throttle: Throttle, fake: FakeTime, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await throttle.acquire()
        times.append(fake.now)
    return times


async def test_fixed_rate_spaces_every_start() -> None:
    fake = FakeTime()
    throttle = Throttle(4.0, clock=fake.clock, sleep=fake.sleep)
    times = await starts(throttle, fake, 9)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap == pytest.approx(0.25) for gap in gaps)
    # never more than the rate in any one-second window
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= 4


async def test_throttled_pauses_the_whole_pool_for_retry_after() -> None:
    fake = FakeTime()
    throttle = Throttle(None, clock=fake.clock, sleep=fake.sleep)
    await starts(throttle, fake, 3)
    assert fake.slept == []  # unlimited until told otherwise
    throttle.on_throttled(2.0)
    before = fake.now
    await throttle.acquire()
    assert fake.now - before >= 2.0


async def test_adaptive_pace_drops_once_per_burst_then_recovers() -> None:
    fake = FakeTime()
    throttle = Throttle(None, clock=fake.clock, sleep=fake.sleep)
    for _ in range(20):  # 10 starts per second
        await throttle.acquire()
        fake.now += 0.1
    throttle.on_throttled(None)
    assert throttle.rate == pytest.approx(7.0)  # 70% of the pace reached
    throttle.on_throttled(None)  # the same burst: inside the pause, not counted again
    assert throttle.rate == pytest.approx(7.0)
    fake.now += 1.5
    throttle.on_throttled(0.5)  # a new overload, after the pause: lower again
    assert throttle.rate is not None and MIN_RATE <= throttle.rate < 7.0
    for _ in range(200):  # successes raise the pace until it no longer limits anything
        await throttle.acquire()
        throttle.on_success()
        if throttle.rate is None:
            break
    assert throttle.rate is None


async def test_adaptive_pace_spaces_starts_while_limited() -> None:
    fake = FakeTime()
    throttle = Throttle(None, clock=fake.clock, sleep=fake.sleep)
    for _ in range(10):
        await throttle.acquire()
        fake.now += 0.05
    throttle.on_throttled(0.0)
    pace = throttle.rate
    assert pace is not None
    first = fake.now
    await throttle.acquire()
    await throttle.acquire()
    assert fake.now - first >= 1 / pace * 0.99


async def test_fixed_rate_is_never_raised_by_successes() -> None:
    throttle = Throttle(3.0)
    throttle.on_throttled(0.0)
    for _ in range(100):
        throttle.on_success()
    assert throttle.rate == 3.0
