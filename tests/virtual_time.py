"""An asyncio event loop on virtual time: whenever nothing is ready to run, the clock jumps to the
next timer instead of waiting for it. `asyncio.sleep`, `loop.time()` and timeouts all follow it,
so the real Throttle and Breaker run unchanged (clock=loop.time, sleep=asyncio.sleep), a
simulated hour takes milliseconds, and a run is deterministic: the same seeds, the same events.

Real file descriptors are still polled (without blocking), so the loop's own wake-up pipe works;
there must be no other real I/O, or virtual time would run past it.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Selector(selectors.DefaultSelector):  # type: ignore[misc, valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        events: list[tuple[Any, int]] = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError("deadlock: every task waits and no timer is set")
        self.now += timeout
        return events


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _Selector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main()` to completion on a fresh virtual-time loop."""
    with asyncio.Runner(loop_factory=VirtualLoop) as runner:
        return runner.run(_call(main))


async def _call(main: Callable[[], Awaitable[T]]) -> T:
    return await main()
