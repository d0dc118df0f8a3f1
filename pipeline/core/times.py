"""How a moment is shown to a person: in the host's local time, to the second."""

from __future__ import annotations

import time


def local_time(epoch: float) -> str:
    """`2026-12-04 14:08:49` for an epoch in seconds."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def clock_time(epoch: float) -> str:
    """`14:08:49`: the time of day alone, for moments of the run in progress."""
    return time.strftime("%H:%M:%S", time.localtime(epoch))
