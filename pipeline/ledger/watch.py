"""The ledger file's identity, looked at now and then while a run writes to it.

An SQLite file removed or replaced under a running process takes every later write into a file
nobody will open again, without an error. The writer looks at the path at most once a
`every` seconds (and at every flush, the end of a run included) and stops the run when the file
at the path is not the one it opened.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


class FileGone(Exception):
    """The ledger file at its path is not the one this run opened."""


class FileWatch:
    def __init__(
        self, path: Path, *, every: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self._every = every
        self._clock = clock
        self._identity = _identity(path)
        self._looked = 0.0

    def look(self, *, force: bool = False) -> None:
        """FileGone when the file at the path changed identity; looks at most every `every`
        seconds unless `force`."""
        now = self._clock()
        if not force and now - self._looked < self._every:
            return
        self._looked = now
        if _identity(self.path) != self._identity:
            raise FileGone("the file was removed or replaced while this run was using it")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino
