"""The multipart form of one upload, as aiohttp sends it.

A file already in memory is put together as bytes directly (`multipart_bytes`); a file on disk
is streamed by `FilePayload`, which refuses to finish if the file is not the one that was
hashed. Every attempt builds a fresh body: aiohttp cannot send a request body twice.

On a plain TCP connection (no TLS of ours) a file's bytes go from the page cache to the socket
by `sendfile(2)` (`loop.sendfile`): no read into Python, no copy through aiohttp's writer. The
last chunk is still read and checked by hand, so the guard holds: the file's size and
modification time are looked at once more before that chunk leaves, and a file that changed
is cut off before the body is whole. Over TLS the kernel cannot encrypt, so the file is read
and written a chunk at a time. While the kernel sends, asyncio pauses reading the connection: an
early answer (a proxy's 413 from the Content-Length alone) is read once the send ends, whole or
cut off by the server closing the connection, as nginx and aiohttp's server do after answering.

The parts' `Content-Disposition` headers are written here, not by aiohttp's `FormData`, which
either percent-encodes the whole name (`Café` as `Caf%C3%A9`, kept as such by servers) or
backslash-escapes `"` and `\\`, where browsers send `%22` and a bare backslash (see
`pipeline.core.names.wire_filename`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

import aiohttp
from aiohttp import hdrs
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import BytesPayload, Payload, StringPayload

from pipeline.content.body import CHUNK, Body
from pipeline.core.errors import SourceChanged
from pipeline.core.names import wire_filename


def payload_of(body: Body, content_type: str) -> Payload:
    """What aiohttp sends for `body`: its bytes, or the file streamed as hashed."""
    if body.data is not None:
        return BytesPayload(body.data, content_type=content_type)
    assert body.path is not None
    return FilePayload(body, content_type=content_type)


def file_disposition(filename: str) -> str:
    """The file part's Content-Disposition, the name as browsers send it."""
    return f'form-data; name="file"; filename="{wire_filename(filename)}"'


def build_form(
    purpose: str, body: Body, filename: str, content_type: str
) -> aiohttp.MultipartWriter:
    """The multipart form of one upload: `purpose`, then `file` with its name as browsers send
    it (raw UTF-8, `"` as `%22`, CR and LF as `%0D` and `%0A`)."""
    form = aiohttp.MultipartWriter("form-data")
    field = StringPayload(purpose, content_type="text/plain; charset=utf-8")
    field.headers[hdrs.CONTENT_DISPOSITION] = 'form-data; name="purpose"'
    form.append_payload(field)
    part = payload_of(body, content_type)
    part.headers[hdrs.CONTENT_DISPOSITION] = file_disposition(filename)
    form.append_payload(part)
    return form


def multipart_bytes(
    purpose: str, data: bytes, filename: str, content_type: str
) -> tuple[bytes, str]:
    """(body, Content-Type) of the same form `build_form` makes, for a file already in memory,
    put together directly: the bytes aiohttp writes, at a fraction of the cost per upload.
    A test holds the two byte for byte."""
    boundary = secrets.token_hex(16)
    head = (
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f'Content-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
        f"--{boundary}\r\nContent-Type: {content_type}\r\n"
        f"Content-Disposition: {file_disposition(filename)}\r\n\r\n"
    )
    tail = f"\r\n--{boundary}--\r\n"
    body = b"".join((head.encode("utf-8"), data, tail.encode("ascii")))
    return body, f"multipart/form-data; boundary={boundary}"


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
            sent = await _send_head(writer, handle, body.size - min(CHUNK, body.size))
            left = body.size - sent
            while left > 0:
                chunk = await asyncio.to_thread(_read, handle, min(CHUNK, left), left, body)
                left -= len(chunk)
                await writer.write(chunk)
        finally:
            handle.close()


async def _send_head(writer: AbstractStreamWriter, handle: Any, count: int) -> int:
    """Send the first `count` bytes of the file by sendfile(2) where the connection allows it,
    and say how many went (0 where it does not: TLS, a writer with no socket, a chunked or
    compressed body). Fewer than `count` means the file shrank: `SourceChanged`."""
    transport = getattr(writer, "transport", None)  # None: a writer with no socket
    plain = getattr(writer, "chunked", True) is False and not getattr(writer, "_compress", None)
    send_headers = getattr(writer, "send_headers", None)
    if count <= 0 or transport is None or not plain or send_headers is None:
        return 0
    send_headers()  # aiohttp may still hold them, to go out with the first chunk
    try:
        sent: int = await asyncio.get_running_loop().sendfile(
            transport, handle, 0, count, fallback=False
        )
    except (RuntimeError, asyncio.SendfileNotAvailableError):  # raised before a byte is sent
        handle.seek(0)
        return 0
    # Keep aiohttp's account of the body as if the bytes had gone through `writer.write`.
    writer.output_size += sent
    if writer.length is not None:
        writer.length -= sent
    if writer.on_body_write is not None:
        writer.on_body_write(sent, writer.output_size)
    if sent < count:
        raise SourceChanged("changed since it was hashed (shorter now); left for the next run")
    return sent


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
