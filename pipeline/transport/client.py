"""The upload client: one multipart POST per attempt, the answer judged by `replies.py`.

The aiohttp session is passed in (one per run, owned by the caller). Each attempt builds a fresh
body (`multipart.py`): aiohttp cannot send a request body twice. The key is sent in the
Authorization header and never appears in a log line or an error.
"""

from __future__ import annotations

import aiohttp

from pipeline.content.body import Body
from pipeline.core.records import UploadResult
from pipeline.core.secret import Secret
from pipeline.transport.errors import client_errors
from pipeline.transport.multipart import build_form, multipart_bytes
from pipeline.transport.replies import (
    MAX_REPLY_BYTES,
    Reply,
    classify_base_resp,
    classify_http,
    parse_retry_after,
    result_from,
)
from pipeline.transport.timeouts import timeouts


class UploadClient:
    """Uploads one body per call. Raises TransientError, PermanentError, SourceChanged or
    RunFatal."""

    def __init__(
        self, session: aiohttp.ClientSession, *, url: str, key: Secret, timeout: float
    ) -> None:
        self._session = session
        self._url = url
        self._key = key
        self._timeout = timeout

    async def upload(
        self, body: Body, *, purpose: str, filename: str, content_type: str
    ) -> UploadResult:
        headers = {"Authorization": f"Bearer {self._key.reveal()}", "Accept": "application/json"}
        data: bytes | aiohttp.FormData
        if body.data is not None:
            data, headers["Content-Type"] = multipart_bytes(
                purpose, body.data, filename, content_type
            )
        else:
            data = build_form(purpose, body, filename, content_type)
        timeout = timeouts(self._timeout)
        with client_errors("upload", timeout=self._timeout):
            async with self._session.post(
                self._url, data=data, headers=headers, timeout=timeout
            ) as resp:
                reply = await read_reply(resp)
        error = classify_http(reply, size=body.size) or classify_base_resp(reply)
        if error is not None:
            raise error
        return result_from(reply.json, purpose)


async def read_reply(resp: aiohttp.ClientResponse) -> Reply:
    """The answer's status, type and body; a body past MAX_REPLY_BYTES is cut there."""
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_REPLY_BYTES:
            break
    return Reply(
        status=resp.status,
        content_type=resp.content_type or "unknown",
        raw=b"".join(chunks)[:MAX_REPLY_BYTES],
        retry_after=parse_retry_after(resp.headers.get("Retry-After")),
    )
