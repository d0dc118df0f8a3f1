"""Fetch a manifest URL into a temporary file, hashing while it streams.

Limits: http and https only, at most 5 redirects, `max_file_size` bytes (a body is cut off as soon
as it passes the limit, whatever Content-Length said), connect and read timeouts. Transient
failures (connection errors, timeouts, 408/429/5xx) are retried with the same policy as uploads;
401, 403, 404, 410 and other 4xx fail the row with the status in the reason. The temporary file is
removed on any failure; on success the caller owns it (`Fetched.discard()`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import aiofiles
import aiohttp

from pipeline.api import parse_retry_after
from pipeline.body import Body
from pipeline.errors import EntryError, PermanentError, TransientError
from pipeline.http import client_errors, describe
from pipeline.model import Located
from pipeline.retry import RetryPolicy, Sleep, retrying

MAX_REDIRECTS = 5
CHUNK = 1 << 16


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class HttpFetcher:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        max_size: int,
        timeout: float,
        policy: RetryPolicy,
        sleep: Sleep,
        folder: str | None = None,
    ) -> None:
        self._session = session
        self._max_size = max_size
        self._timeout = timeout
        self._policy = policy
        self._sleep = sleep
        self._folder = folder

    async def fetch(self, url: str) -> Located:
        async for attempt in retrying(self._policy, sleep=self._sleep):
            with attempt:
                return await self._once(url)
        raise AssertionError("unreachable: retrying re-raises the last error")

    async def _once(self, url: str) -> Located:
        fd, name = tempfile.mkstemp(prefix="ingest-", suffix=".part", dir=self._folder)
        os.close(fd)
        path = Path(name)
        try:
            digest, size = await self._download(url, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            raise
        return Located(digest, Body(size=size, path=str(path)), temporary=path)

    async def _download(self, url: str, path: Path) -> tuple[str, int]:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=self._timeout
        )
        try:
            with client_errors("download", timeout=self._timeout):
                async with self._session.get(
                    url, timeout=timeout, max_redirects=MAX_REDIRECTS, allow_redirects=True
                ) as resp:
                    _check_status(resp)
                    if resp.content_length is not None and resp.content_length > self._max_size:
                        raise PermanentError(
                            f"download larger than --max-file-size "
                            f"({_mb(resp.content_length)} > {_mb(self._max_size)})"
                        )
                    return await self._stream(resp, path)
        except TransientError as exc:
            raise _permanent_if_bad_url(exc) from exc.__cause__

    async def _stream(self, resp: aiohttp.ClientResponse, path: Path) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        async with aiofiles.open(path, "wb") as out:
            async for chunk in resp.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > self._max_size:
                    raise PermanentError(
                        f"download larger than --max-file-size (cut off past {_mb(self._max_size)})"
                    )
                digest.update(chunk)
                await out.write(chunk)
        return digest.hexdigest(), size


def _permanent_if_bad_url(exc: TransientError) -> EntryError:
    """Too many redirects or a bad URL (or a redirect to one) will not get better by retrying."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.TooManyRedirects):
        return PermanentError(f"download failed: more than {MAX_REDIRECTS} redirects")
    if isinstance(cause, aiohttp.InvalidURL | aiohttp.NonHttpUrlRedirectClientError):
        return PermanentError(f"download failed: bad URL or redirect: {describe(cause)}")
    return exc


def _check_status(resp: aiohttp.ClientResponse) -> None:
    status = resp.status
    if 200 <= status < 300:
        return
    if status in (408, 425, 429) or status >= 500:
        raise TransientError(
            f"download failed: HTTP {status}",
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
        )
    raise PermanentError(f"download failed: HTTP {status} {resp.reason or ''}".rstrip())
