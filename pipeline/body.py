"""The bytes of one upload, exactly as they were hashed.

A small file is read whole while it is hashed, and those very bytes are sent (`Body.data`). A
large one is streamed from disk in big chunks; it is sent only if it is still the file that was
hashed: its size and modification time are checked when it is opened and again before the last
chunk goes out, and exactly `size` bytes are read. If the file changed (a copy still in progress,
an editor saving over it) the request is aborted before the body is complete, so the service
never receives bytes whose hash the ledger does not hold, and the entry is left for the next run
(`SourceChanged`).

Every attempt builds a fresh payload: aiohttp cannot send a request body twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import BytesPayload, Payload

from pipeline.errors import SourceChanged

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

    def payload(self, content_type: str) -> Payload:
        if self.data is not None:
            return BytesPayload(self.data, content_type=content_type)
        assert self.path is not None
        return FilePayload(self, content_type=content_type)


class FilePayload(Payload):
    """Streams `body.path`, refusing to finish if the file is not the one that was hashed."""

    _autoclose = True  # opens and closes its own file inside write()

    def __init__(self, body: Body, **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self._body = body
        self._size = body.size

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file body is not text")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        body = self._body
        assert body.path is not None
        # Opened here, not in a worker thread: if the server answers before reading the body,
        # this task is cancelled, and a file opened by a thread meanwhile would leak.
        handle = _open_unchanged(body)
        try:
            left = body.size
            while left > 0:
                chunk = await asyncio.to_thread(_read, handle, min(CHUNK, left), left, body)
                left -= len(chunk)
                await writer.write(chunk)
        finally:
            handle.close()


def _open_unchanged(body: Body) -> Any:
    assert body.path is not None
    try:
        handle = open(body.path, "rb")  # noqa: SIM115 (closed by the payload's write)
    except OSError as exc:
        raise SourceChanged(f"cannot be read any more: {exc.strerror or exc}") from exc
    try:
        _check_unchanged(handle.fileno(), body)
    except BaseException:
        handle.close()
        raise
    return handle


def _read(handle: Any, count: int, left: int, body: Body) -> bytes:
    chunk: bytes = handle.read(count)
    if len(chunk) < count:
        raise SourceChanged("changed since it was hashed (shorter now); left for the next run")
    if count == left:  # the last chunk: one more look before it leaves
        _check_unchanged(handle.fileno(), body)
    return chunk


def _check_unchanged(fd: int, body: Body) -> None:
    info = os.fstat(fd)
    if info.st_size != body.size or (
        body.mtime_ns is not None and info.st_mtime_ns != body.mtime_ns
    ):
        raise SourceChanged("changed since it was hashed; left for the next run")
