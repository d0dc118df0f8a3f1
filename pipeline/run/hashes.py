"""Hashing and probing a run's local files: each file once per run, and no more large files
at once than the CPUs the process may run on.

- **Once**: a manifest may name one file on many rows. The newest `KEPT` answers are kept by
  (path, size, mtime); a row met while the same file is being hashed waits for that answer
  rather than read the file again.
- **Cores**: hashing a large file is CPU work (sha256 at about 1.7 GB/s a core) done in a
  worker thread without the GIL. With more large files in hand than cores, hashing them all at
  once only makes each finish later: four 53 MB files on two cores all finished after 76 ms,
  where two at a time finish the first pair after about 38 ms, so the first upload starts that
  much sooner. Small files are read more than hashed, and go through unbounded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from pipeline.content.body import Body
from pipeline.content.hashing import read_and_hash
from pipeline.content.located import Located
from pipeline.content.probe import AudioInfo, probe, probe_bytes
from pipeline.core.errors import PermanentError

KEPT = 4096  # files whose answer a run remembers (for manifests naming one file often)
LARGE = 8 << 20  # bytes from which hashing a file is CPU work worth queueing for a core

Answer = tuple[Located, AudioInfo | PermanentError]
Known = tuple[str, AudioInfo | PermanentError]  # what is kept of an answer: the hash, the verdict


def cores() -> int:
    """The CPUs this process may run on (a container's or taskset's limit, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class FileHashes:
    """`located(path, size, mtime_ns)`: a local file's hash, body and what its bytes are."""

    def __init__(
        self,
        *,
        at_once: int | None = None,  # large files hashed at once; None: one per core
        work: Callable[[str], Answer] | None = None,  # the blocking step; tests watch it
    ) -> None:
        self._cores = asyncio.Semaphore(at_once or cores())
        self._work = work or hashed_and_probed
        self._known: collections.OrderedDict[tuple[str, int, int | None], asyncio.Future[Known]] = (
            collections.OrderedDict()
        )

    async def located(self, path: str, size: int, mtime_ns: int | None) -> Answer:
        key = (path, size, mtime_ns)
        known = self._known.get(key)
        if known is not None:
            sha256, audio = await asyncio.shield(known)
            return Located(sha256, Body(size=size, path=path, mtime_ns=mtime_ns)), audio
        future: asyncio.Future[Known] = asyncio.get_running_loop().create_future()
        self._known[key] = future
        if len(self._known) > KEPT:
            self._known.popitem(last=False)
        try:
            async with self._cores if size >= LARGE else contextlib.nullcontext():
                located, audio = await asyncio.to_thread(self._work, path)
        except BaseException as exc:
            if self._known.get(key) is future:  # (it may have been pushed out meanwhile)
                del self._known[key]  # not known after all: the next row tries for itself
            future.set_exception(exc)
            future.exception()  # retrieved: nobody may be waiting
            raise
        future.set_result((located.sha256, audio))
        return located, audio


def hashed_and_probed(path: str) -> Answer:
    """Blocking: hash the file, then probe the same bytes."""
    hashed = read_and_hash(path)
    return probed(Located(hashed.sha256, hashed.body))


def probed(located: Located) -> Answer:
    """Blocking: what the located bytes are; a refusal is returned, not raised, so the caller
    still records the hash of a bad file."""
    body = located.body
    try:
        if body.data is not None:
            return located, probe_bytes(body.data)  # the bytes read while hashing
        if located.temporary is not None:
            return located, probe(located.temporary)
        assert body.path is not None
        return located, probe(Path(body.path))
    except PermanentError as exc:
        return located, exc
