"""Fetch a manifest URL into a temporary file, hashing while it streams.

A URL goes out byte for byte as the manifest wrote it, as curl sends it: signed URLs (S3, GCS,
Azure SAS, CDN tokens) sign their exact text, and yarl, left to itself, rewrites it (`%2F` in a
query becomes `/`, `%41` becomes `A`, `%zz` becomes `%25zz`). Only what cannot go on the wire as
it is changes: spaces, control and non-ASCII characters are percent-encoded as UTF-8, and a
non-ASCII host name is IDNA-encoded (`wire_url`). Redirects are followed here rather than by
aiohttp, which would normalise the Location the same way: the next request goes to the Location
exactly as the server wrote it, resolved against the URL it answered.

Limits: http and https only, at most 5 redirects, `max_file_size` bytes (a body is cut off as soon
as it passes the limit, whatever Content-Length said), connect and read timeouts. Transient
failures (connection errors, timeouts, 408/429/5xx) are retried with the same policy as uploads;
401, 403, 404, 410 and other 4xx fail the row with the status in the reason. The temporary file is
removed on any failure; on success the caller owns it (`Fetched.discard()`).

Each request goes by its own route (`routes.py`): the proxy for its URL, redirects included. At
debug level each request and each answer is one log line, the URL shown without its query's
values (a signature, a token).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import tempfile
import time
import urllib.parse
from pathlib import Path

import aiofiles
import aiohttp
import yarl

from pipeline.content.body import Body
from pipeline.content.located import Located
from pipeline.core.errors import EntryError, PermanentError, TransientError
from pipeline.core.secret import public_url
from pipeline.flow.backoff import RetryPolicy, Sleep, retrying
from pipeline.transport.errors import client_errors, describe
from pipeline.transport.proxies import mask, unsupported
from pipeline.transport.replies import parse_retry_after, transient_status
from pipeline.transport.routes import Routes
from pipeline.transport.timeouts import timeouts

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 1 << 16
_UNSAFE = re.compile(r"[^\x21-\x7e]+")  # what HTTP cannot carry in a request target as it is
_PARTS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:)?(//[^/?#]*)?(.*)", re.DOTALL)


def wire_url(text: str) -> yarl.URL:
    """The URL to request for `text`, kept as written: spaces, controls and non-ASCII characters
    percent-encoded as UTF-8, a non-ASCII host IDNA-encoded, nothing else touched. ValueError
    when it is no URL at all."""
    match = _PARTS.fullmatch(text)
    assert match is not None  # every part is optional: any text matches
    scheme, authority, rest = match.group(1) or "", match.group(2) or "", match.group(3)
    if not authority.isascii():
        authority = "//" + yarl.URL(f"http:{authority}").raw_authority
    quoted = _UNSAFE.sub(lambda m: urllib.parse.quote(m.group(), safe=""), rest)
    return yarl.URL(scheme + authority + quoted, encoded=True)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class HttpFetcher:
    def __init__(
        self,
        routes: Routes,
        *,
        max_size: int,
        timeout: float,
        policy: RetryPolicy,
        sleep: Sleep,
        folder: str | None = None,
        max_held: int | None = None,
    ) -> None:
        self._routes = routes
        # Downloads on disk at once (fetched, not yet discarded): jobs waiting out a backoff
        # keep theirs, and there are several of those per request slot.
        self._held = asyncio.Semaphore(max_held) if max_held else None
        self._max_size = max_size
        self._timeout = timeout
        self._policy = policy
        self._sleep = sleep
        self._folder = folder

    async def fetch(self, url: str) -> Located:
        """Download `url` into a temporary file; the caller discards it (`Located.discard`),
        which also lets the next download start when `max_held` of them are on disk."""
        if self._held is None:
            return await self._fetch(url)
        await self._held.acquire()
        try:
            located = await self._fetch(url)
        except BaseException:
            self._held.release()
            raise
        return dataclasses.replace(located, on_discard=self._held.release)

    async def _fetch(self, url: str) -> Located:
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
        target = _target(url)
        for _ in range(MAX_REDIRECTS + 1):
            done, location = await self._get(target, path)
            if done is not None:
                return done
            assert location is not None
            target = _redirected(target, location)
        raise PermanentError(f"download failed: more than {MAX_REDIRECTS} redirects")

    async def _get(self, target: yarl.URL, path: Path) -> tuple[tuple[str, int] | None, str | None]:
        """One GET: (digest, size) when it brought the file, else the Location it points to."""
        session, proxy = self._routes.route(target)
        if proxy is not None and (problem := unsupported(proxy)) is not None:
            raise PermanentError(f"download failed: proxy {mask(proxy)}: {problem}")
        shown = public_url(str(target))
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:
            via = f" via proxy {mask(proxy)}" if proxy else ""
            log.debug("-> GET %s%s", shown, via)
        started = time.monotonic()
        try:
            with client_errors("download", timeout=self._timeout, proxy=proxy):
                async with session.get(
                    target,
                    timeout=timeouts(self._timeout),
                    allow_redirects=False,
                    proxy=proxy,
                ) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in REDIRECTS and location is not None:
                        _said(debug, shown, resp.status, 0, started)
                        return None, location
                    try:
                        done = await self._take(resp, path)
                    except PermanentError:
                        _said(debug, shown, resp.status, None, started)
                        raise
                    _said(debug, shown, resp.status, done[1], started)
                    return done, None
        except TransientError as exc:
            if debug:
                log.debug("<- GET %s: %s after %.3f s", shown, exc, time.monotonic() - started)
            raise _permanent_if_bad_url(exc) from exc.__cause__

    async def _take(self, resp: aiohttp.ClientResponse, path: Path) -> tuple[str, int]:
        _check_status(resp)
        if resp.content_length is not None and resp.content_length > self._max_size:
            raise PermanentError(
                f"download larger than --max-file-size "
                f"({_mb(resp.content_length)} > {_mb(self._max_size)})"
            )
        return await self._stream(resp, path)

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


def _said(debug: bool, shown: str, status: int, size: int | None, started: float) -> None:
    """The debug line for an answer: status, bytes of body taken, time."""
    if debug:
        taken = "body not taken" if size is None else f"{size} bytes"
        seconds = time.monotonic() - started
        log.debug("<- GET %s: HTTP %d, %s in %.3f s", shown, status, taken, seconds)


def _target(text: str) -> yarl.URL:
    """`wire_url(text)`, which must be an http or https URL with a host."""
    try:
        url = wire_url(text)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL with a host: {text}")
    except ValueError as exc:
        raise PermanentError(f"download failed: bad URL or redirect: {describe(exc)}") from exc
    return url


def _redirected(current: yarl.URL, location: str) -> yarl.URL:
    """Where a redirect leads: the Location as the server wrote it, resolved against `current`."""
    try:
        joined = current.join(wire_url(location))
    except ValueError as exc:
        raise PermanentError(f"download failed: bad URL or redirect: {describe(exc)}") from exc
    return _target(str(joined))


def _permanent_if_bad_url(exc: TransientError) -> EntryError:
    """A bad URL will not get better by retrying."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.InvalidURL):
        return PermanentError(f"download failed: bad URL or redirect: {describe(cause)}")
    return exc


def _check_status(resp: aiohttp.ClientResponse) -> None:
    status = resp.status
    if 200 <= status < 300:
        return
    if transient_status(status):
        raise TransientError(
            f"download failed: HTTP {status}",
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            slowdown="rate" if status == 429 else None,
        )
    raise PermanentError(f"download failed: HTTP {status} {resp.reason or ''}".rstrip())
