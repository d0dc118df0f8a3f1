"""Content fingerprints: the sha256 of a file, taken so that it is known what it fingerprints.

`read_and_hash` notes the file's size and modification time when it opens it and again when it
has read it; if they differ, the file was being written meanwhile and the hash stands for nothing
(`SourceChanged`: left for the next run). A small file is kept in memory as it is read, so the
bytes uploaded are the very bytes hashed; a large one is hashed in chunks, memory staying flat,
and is checked again when it is sent (see `pipeline.content.body`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import BinaryIO

from pipeline.content.body import IN_MEMORY, Body
from pipeline.core.errors import PermanentError, SourceChanged

CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class Hashed:
    sha256: str
    body: Body


def read_and_hash(path: str | os.PathLike[str]) -> Hashed:
    """Blocking: call it in a worker thread. Raises PermanentError when the file cannot be read,
    SourceChanged when it changed while it was read."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below; `with` would hide the fstat)
    except OSError as exc:
        raise PermanentError(f"cannot read file: {exc.strerror or exc}") from exc
    with handle:
        before = os.fstat(handle.fileno())
        digest, data, size = _digest(handle, before.st_size)
        after = os.fstat(handle.fileno())
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or (
        size != before.st_size
    ):
        raise SourceChanged(
            "still being written (it changed while it was hashed); left for the next run"
        )
    body = Body(size=size, path=str(path), mtime_ns=before.st_mtime_ns, data=data)
    return Hashed(digest, body)


def _digest(handle: BinaryIO, size: int) -> tuple[str, bytes | None, int]:
    read = handle.read
    if size <= IN_MEMORY:
        data: bytes = read(IN_MEMORY + 1)
        return hashlib.sha256(data).hexdigest(), data, len(data)
    digest, total = hashlib.sha256(), 0
    while chunk := read(CHUNK):
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), None, total
