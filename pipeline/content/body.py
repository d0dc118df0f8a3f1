"""The bytes of one upload, exactly as they were hashed.

A small file is read whole while it is hashed, and those very bytes are sent (`Body.data`). A
large one is streamed from disk in big chunks; it is sent only if it is still the file that was
hashed: its size and modification time are checked when it is opened and again before the last
chunk goes out, and exactly `size` bytes are read. If the file changed (a copy still in progress,
an editor saving over it) the request is aborted before the body is complete, so the service
never receives bytes whose hash the ledger does not hold, and the entry is left for the next run
(`SourceChanged`).

How it is sent (and checked while it is sent) is `pipeline.transport.multipart`'s business.
"""

from __future__ import annotations

import dataclasses

CHUNK = 1 << 20  # bytes per read while streaming: few thread hops, flat memory
IN_MEMORY = 1 << 18  # files up to this size are read whole while hashed, and sent from memory


@dataclasses.dataclass(frozen=True)
class Body:
    """What to send: `data` when the bytes are in memory, else the file at `path` as it was
    when hashed (`size`, `mtime_ns`; `mtime_ns` is None for a private temporary copy)."""

    size: int
    path: str | None = None
    mtime_ns: int | None = None
    data: bytes | None = None
