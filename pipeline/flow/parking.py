"""Jobs waiting out a backoff, parked outside the upload tasks.

A job whose attempt failed with a transient error waits (its backoff, or the service's
Retry-After) before it is sent again. Waiting inside an upload task keeps that task from sending
anything else, so with a fixed number of tasks Little's law caps the pool, whatever the service
allows: tasks / (share of attempts that fail x mean wait). With 64 tasks, 29% of attempts failing
and waits of 0.64 s on average, that is about 350 attempts a second, and it is what the pool sent
against a sandbox that could take 750. A parked job holds no task: a timer hands it back when its
wait is over, and the upload tasks take it before any new job.

At most `limit` jobs are parked at once (each holds its bytes when they are in memory); past that,
a task waits out its job's backoff itself, which slows the intake of new work instead.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=Hashable)  # a job on its way (the runner's); only held, never read


class Parking(Generic[T]):
    def __init__(self, limit: int, queue: asyncio.Queue[Any]) -> None:
        self.limit = limit
        self._queue = queue  # where a job whose wait is over goes, when it has room
        self._waiting: dict[T, asyncio.TimerHandle] = {}
        self._ready: collections.deque[T] = collections.deque()

    def __len__(self) -> int:
        return len(self._waiting) + len(self._ready)

    def park(self, upload: T, seconds: float) -> bool:
        """Hand `upload` back after `seconds`; False when the lot is full (the caller waits)."""
        if len(self._waiting) >= self.limit:
            return False
        loop = asyncio.get_running_loop()
        self._waiting[upload] = loop.call_later(seconds, self._due, upload)
        return True

    def take(self) -> T | None:
        """A job whose wait is over, if one did not fit in the queue."""
        return self._ready.popleft() if self._ready else None

    def clear(self) -> list[T]:
        """Cancel every wait (the run is stopping): the jobs that were parked."""
        for timer in self._waiting.values():
            timer.cancel()
        uploads = [*self._waiting, *self._ready]
        self._waiting.clear()
        self._ready.clear()
        return uploads

    def _due(self, upload: T) -> None:
        del self._waiting[upload]
        if self._queue.full():
            self._ready.append(upload)  # every upload task is busy; each looks here first
        else:
            self._queue.put_nowait(upload)  # wakes a task waiting for work
