"""The upload client: one multipart POST per attempt, the answer turned into ids or a typed error.

Both failure channels are checked: the HTTP status, and `base_resp.status_code` inside an HTTP 200.
`classify_http` and `classify_base_resp` are pure, so every kind of answer is unit-tested without a
network. The aiohttp session is passed in (one per run, owned by the caller). Each attempt builds a
fresh form and reopens the file: aiohttp cannot resend a body (see shared/LIBRARY-NOTES.md). The
key is sent in the Authorization header and never appears in a log line or an error.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from pipeline.config import Secret
from pipeline.errors import PermanentError, RunFatal, TransientError

MAX_REPLY_BYTES = 1 << 20

# base_resp codes, as documented by MiniMax.
TRANSIENT_CODES = {
    1000: "unknown error",
    1001: "timeout",
    1002: "rate limited",
    1024: "internal error",
    1033: "system busy",
    1039: "token limit",
    1041: "connection limit",
    2045: "rate growth limited",
}
THROTTLE_CODES = frozenset({1002, 1039, 1041, 2045})
FATAL_CODES = {
    1004: "the API key was refused (1004): check AIMLAPI_API_KEY",
    1008: "the account has no balance left (1008): top up the account",
    2049: "the API key is invalid (2049): check AIMLAPI_API_KEY",
    2056: "the account's usage limit is reached (2056): raise the limit or wait",
}
FATAL_HTTP = {
    401: "the API key was refused (HTTP 401): check AIMLAPI_API_KEY",
    403: "the account is out of credits or not allowed (HTTP 403): check the account",
}
TRANSIENT_HTTP = frozenset({408, 425, 429})


@dataclasses.dataclass(frozen=True)
class UploadResult:
    voice_id: str | None
    instrumental_id: str | None
    trace_id: str | None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds)


def _message(body: Any) -> str:
    if isinstance(body, dict):
        base = body.get("base_resp")
        if isinstance(base, dict) and base.get("status_msg"):
            return str(base["status_msg"])
        for key in ("message", "error", "detail", "status_msg"):
            if body.get(key):
                value = body[key]
                return str(value.get("message", value) if isinstance(value, dict) else value)
    return ""


def classify_http(status: int, body: Any, retry_after: float | None) -> Exception | None:
    """The error an HTTP status means, or None for 2xx (then base_resp decides)."""
    if 200 <= status < 300:
        return None
    detail = _message(body)
    said = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status in FATAL_HTTP:
        return RunFatal(FATAL_HTTP[status] + (f" ({detail})" if detail else ""))
    if status in TRANSIENT_HTTP or status >= 500:
        return TransientError(said, retry_after=retry_after, throttled=status == 429)
    return PermanentError(said)


def classify_base_resp(body: Any, retry_after: float | None) -> Exception | None:
    """The error a 2xx reply's base_resp carries, or None when status_code is 0."""
    if not isinstance(body, dict):
        return TransientError("unexpected reply: not a JSON object")
    base = body.get("base_resp")
    if not isinstance(base, dict):
        if body.get("voice_id") or body.get("instrumental_id"):
            return None  # ids without base_resp: the ids are what counts (result_from checks)
        return TransientError("unexpected reply: no base_resp")
    try:
        code = int(base.get("status_code", -1))
    except (TypeError, ValueError):
        shown = base.get("status_code")
        return TransientError(f"unexpected reply: base_resp status_code {shown!r}")
    if code == 0:
        return None
    msg = str(base.get("status_msg") or "")
    said = f"base_resp {code}" + (f": {msg}" if msg else "")
    if code in FATAL_CODES:
        return RunFatal(FATAL_CODES[code] + (f" ({msg})" if msg else ""))
    if code in TRANSIENT_CODES:
        return TransientError(said, retry_after=retry_after, throttled=code in THROTTLE_CODES)
    return PermanentError(said)


def result_from(body: dict[str, Any], purpose: str) -> UploadResult:
    """Ids from a successful reply; a reply without the ids its purpose promises is an error."""
    voice_id = body.get("voice_id") or None
    instrumental_id = body.get("instrumental_id") or None
    trace_id = body.get("trace_id") or None
    need_voice = purpose in ("song", "voice")
    need_instrumental = purpose in ("song", "instrumental")
    if (need_voice and not voice_id) or (need_instrumental and not instrumental_id):
        raise TransientError(f"reply without the ids a {purpose} upload returns")
    return UploadResult(
        voice_id=str(voice_id) if voice_id else None,
        instrumental_id=str(instrumental_id) if instrumental_id else None,
        trace_id=str(trace_id) if trace_id else None,
    )


class UploadClient:
    """Uploads one file per call. Raises TransientError, PermanentError or RunFatal."""

    def __init__(
        self, session: aiohttp.ClientSession, *, url: str, key: Secret, timeout: float
    ) -> None:
        self._session = session
        self._url = url
        self._key = key
        self._timeout = timeout

    async def upload(
        self, path: Path, *, purpose: str, filename: str, content_type: str
    ) -> UploadResult:
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise PermanentError(f"cannot read file: {exc.strerror or exc}") from exc
        with handle:
            form = aiohttp.FormData()
            form.add_field("purpose", purpose)
            form.add_field("file", handle, filename=filename, content_type=content_type)
            return await self._post(form, purpose)

    async def _post(self, form: aiohttp.FormData, purpose: str) -> UploadResult:
        # No total timeout: a large body may take long to send. sock_read cuts a silent server.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=self._timeout
        )
        headers = {"Authorization": f"Bearer {self._key.reveal()}", "Accept": "application/json"}
        try:
            async with self._session.post(
                self._url, data=form, headers=headers, timeout=timeout
            ) as resp:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                body = await _read_json(resp)
                error = classify_http(resp.status, body, retry_after) or classify_base_resp(
                    body, retry_after
                )
        except TimeoutError as exc:  # before ClientConnectionError: socket timeouts are both
            raise TransientError(f"timed out after {self._timeout:g} s without an answer") from exc
        except aiohttp.ClientError as exc:  # dropped, reset, refused, malformed answer
            raise TransientError(f"connection failed: {_describe(exc)}") from exc
        if error is not None:
            raise error
        assert isinstance(body, dict)  # classify_base_resp accepted it
        return result_from(body, purpose)


async def _read_json(resp: aiohttp.ClientResponse) -> Any:
    """The reply as JSON, None if it is not JSON. Stops reading past MAX_REPLY_BYTES."""
    if resp.content_length is not None and resp.content_length > MAX_REPLY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            return None
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


__all__ = ["UploadClient", "UploadResult", "classify_base_resp", "classify_http"]
