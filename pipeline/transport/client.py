"""The upload client: one multipart POST per attempt, the answer judged by `replies.py`.

The connection pools are passed in (`Routes`, one for the run, owned by the caller), with the
proxy the upload URL goes through. Each attempt builds a fresh body (`multipart.py`): aiohttp
cannot send a request body twice. The key is sent in the Authorization header and never appears
in a log line or an error. At debug level each request and each answer is one log line.
"""

from __future__ import annotations

import logging
import time

import aiohttp

from pipeline.content.body import Body
from pipeline.core.names import shown
from pipeline.core.records import UploadResult
from pipeline.core.secret import Secret, public_url
from pipeline.transport.errors import client_errors
from pipeline.transport.multipart import build_form, multipart_bytes
from pipeline.transport.proxies import mask
from pipeline.transport.replies import (
    MAX_REPLY_BYTES,
    Reply,
    classify_base_resp,
    classify_http,
    parse_retry_after,
    result_from,
)
from pipeline.transport.routes import Routes
from pipeline.transport.timeouts import timeouts

log = logging.getLogger(__name__)


class UploadClient:
    """Uploads one body per call. Raises TransientError, PermanentError, SourceChanged or
    RunFatal."""

    def __init__(self, routes: Routes, *, url: str, key: Secret, timeout: float) -> None:
        self._session, self._proxy = routes.route(url)
        self._url = url
        self._shown = public_url(url)
        self._key = key
        self._timeout = timeout

    async def upload(
        self, body: Body, *, purpose: str, filename: str, content_type: str
    ) -> UploadResult:
        headers = {"Authorization": f"Bearer {self._key.reveal()}", "Accept": "application/json"}
        data: bytes | aiohttp.MultipartWriter
        if body.data is not None:
            data, headers["Content-Type"] = multipart_bytes(
                purpose, body.data, filename, content_type
            )
        else:
            data = build_form(purpose, body, filename, content_type)
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:
            self._said_request(filename, purpose, body.size)
        started = time.monotonic()
        try:
            reply = await self._post(data, headers)
        except Exception as exc:
            if debug:
                log.debug("<- POST %s: %s after %.3f s", self._shown, exc, _since(started))
            raise
        if debug:
            said_answer("POST", self._shown, reply, started)
        error = classify_http(reply, size=body.size) or classify_base_resp(reply)
        if error is not None:
            raise error
        return result_from(reply.json, purpose)

    async def _post(self, data: bytes | aiohttp.MultipartWriter, headers: dict[str, str]) -> Reply:
        with client_errors("upload", timeout=self._timeout, proxy=self._proxy):
            async with self._session.post(
                self._url,
                data=data,
                headers=headers,
                timeout=timeouts(self._timeout),
                proxy=self._proxy,
            ) as resp:
                return await read_reply(resp)

    def _said_request(self, filename: str, purpose: str, size: int) -> None:
        via = f" via proxy {mask(self._proxy)}" if self._proxy else ""
        log.debug(
            "-> POST %s purpose=%s filename=%s (%d bytes of file)%s",
            self._shown,
            purpose,
            shown(filename),
            size,
            via,
        )


def said_answer(method: str, url: str, reply: Reply, started: float) -> None:
    """The debug line for an answer: status, base_resp, trace_id, bytes, time."""
    log.debug(
        "<- %s %s: HTTP %d, base_resp %s, trace_id %s, %d bytes in %.3f s",
        method,
        url,
        reply.status,
        reply.base_resp_code,
        reply.trace_id or "-",
        len(reply.raw),
        _since(started),
    )


def _since(started: float) -> float:
    return time.monotonic() - started


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
