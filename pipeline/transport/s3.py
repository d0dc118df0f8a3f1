"""Objects in S3 and S3-compatible stores, for a run: a prefix listed page by page, an object
fetched into a temporary file while it is hashed, and the run's downloads routed by scheme.

    S3Store      one aiobotocore client, made when the run first needs it (a run with no
                 `s3://` source never loads aiobotocore), closed with the run; listing pages
                 with retries and one page read ahead;
    S3Fetcher    an `s3://bucket/key` into a temporary file (`Located`), with retries, cut off
                 past `--max-file-size`, `If-Match` on the listed ETag;
    Downloads    the run's fetcher: `s3://` to the S3Fetcher, http(s) to the HttpFetcher, and
                 one bound on the temporary files held at once for both.

What botocore raises is judged in `s3client.judged`: a missing bucket or refused credentials
are `RunFatal` (the run stops, exit 5, nothing recorded failed); a listing that keeps failing on
connections or 5xx is `StoreUnreachable` (exit 6); an object deleted or written again since it
was listed fails (or is left for the next run) alone, and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.content.body import Body
from pipeline.content.located import Located
from pipeline.core.aws import AwsAccess
from pipeline.core.errors import PermanentError, RunFatal, StoreUnreachable, TransientError
from pipeline.core.objects import StoredObject, is_s3_url, split_s3_url
from pipeline.flow.backoff import RetryPolicy, Sleep, retrying
from pipeline.transport.fetch import HttpFetcher
from pipeline.transport.proxies import Proxies

if TYPE_CHECKING:
    from pipeline.transport.s3client import ClientSettings

PAGE_SIZE = 1000  # keys per listing page: S3's largest


class S3Store:
    def __init__(
        self,
        access: AwsAccess,
        *,
        timeout: float,
        max_connections: int,
        policy: RetryPolicy,
        sleep: Sleep,
        page_size: int = PAGE_SIZE,
        proxies: Proxies | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.access = access
        # The proxy to the store, chosen for its endpoint as for any URL (NO_PROXY included).
        endpoint = access.endpoint_url or "https://s3.amazonaws.com"
        self.proxy = proxies.for_url(endpoint) if proxies is not None else None
        self.ca_file = ca_file
        self.timeout = timeout
        self.max_connections = max_connections
        self.policy = policy
        self.sleep = sleep
        self.page_size = page_size
        self._client: Any = None
        self._opening = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def client(self, bucket: str) -> Any:
        """The client, made on first use; `bucket` names the source in a configuration error."""
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    from pipeline.transport import s3client  # aiobotocore: only when needed

                    settings = s3client.ClientSettings(
                        self.timeout, self.max_connections, self.proxy, self.ca_file
                    )
                    self._client = await self._open(s3client, settings, bucket)
        return self._client

    async def _open(self, s3client: Any, settings: ClientSettings, bucket: str) -> Any:
        try:
            return await self._stack.enter_async_context(
                s3client.open_client(self.access, settings)
            )
        except RunFatal as exc:
            raise RunFatal(f"s3://{bucket}: {exc}") from exc

    async def pages(self, bucket: str, prefix: str) -> AsyncIterator[list[StoredObject]]:
        """The objects under `prefix`, a listing page at a time; the next page is asked for
        while this one is used (pages come one request after another: the read-ahead hides
        the round trip)."""
        ahead = asyncio.ensure_future(self._page(bucket, prefix, None))
        try:
            while True:
                objects, token = await ahead
                if token is not None:
                    ahead = asyncio.ensure_future(self._page(bucket, prefix, token))
                if objects:
                    yield objects
                if token is None:
                    return
        finally:
            if not ahead.done():
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ahead

    async def _page(
        self, bucket: str, prefix: str, token: str | None
    ) -> tuple[list[StoredObject], str | None]:
        from pipeline.transport import s3client

        client = await self.client(bucket)
        attempts = 0
        try:
            async for attempt in retrying(self.policy, sleep=self.sleep):
                with attempt:
                    attempts += 1
                    return await s3client.list_page(client, bucket, prefix, token, self.page_size)
        except TransientError as exc:
            raise StoreUnreachable(
                f"s3://{bucket}: listing failed after {attempts} attempt(s): {exc.reason}"
            ) from exc
        raise AssertionError("unreachable: retrying re-raises the last error")

    async def get_into(
        self, bucket: str, key: str, path: Path, *, etag: str | None, max_size: int
    ) -> tuple[str, int, str]:
        """(sha256, size, etag) of the object, streamed into `path`."""
        from pipeline.transport import s3client

        client = await self.client(bucket)
        got = await s3client.get_into(client, bucket, key, path, etag=etag, max_size=max_size)
        return got.sha256, got.size, got.etag


class S3Fetcher:
    """An object into a temporary file, hashed as it streams; retried under the run's policy."""

    def __init__(
        self,
        store: S3Store,
        *,
        max_size: int,
        policy: RetryPolicy,
        sleep: Sleep,
        folder: str | None = None,
    ) -> None:
        self.store = store
        self.max_size = max_size
        self.policy = policy
        self.sleep = sleep
        self.folder = folder

    async def fetch(self, url: str, *, etag: str | None = None) -> Located:
        try:
            bucket, key = split_s3_url(url)
        except ValueError as exc:
            raise PermanentError(f"download failed: {exc}") from exc
        if not key or key.endswith("/"):
            raise PermanentError(f"download failed: {url} names no object (s3://BUCKET/KEY)")
        async for attempt in retrying(self.policy, sleep=self.sleep):
            with attempt:
                return await self._once(bucket, key, etag)
        raise AssertionError("unreachable: retrying re-raises the last error")

    async def _once(self, bucket: str, key: str, etag: str | None) -> Located:
        fd, name = tempfile.mkstemp(prefix="ingest-", suffix=".part", dir=self.folder)
        os.close(fd)
        path = Path(name)
        try:
            sha256, size, got = await self.store.get_into(
                bucket, key, path, etag=etag, max_size=self.max_size
            )
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            raise
        return Located(sha256, Body(size=size, path=name), temporary=path, etag=got or etag)


class Downloads:
    """The run's fetcher: each URL to the fetcher of its scheme, with at most `max_held`
    downloads on disk at once between them (fetched, not yet discarded)."""

    def __init__(self, http: HttpFetcher, s3: S3Fetcher, *, max_held: int) -> None:
        self.http = http
        self.s3 = s3
        self._held = asyncio.Semaphore(max_held)

    async def fetch(self, url: str, *, etag: str | None = None) -> Located:
        await self._held.acquire()
        try:
            if is_s3_url(url):
                located = await self.s3.fetch(url, etag=etag)
            else:
                located = await self.http.fetch(url)
        except BaseException:
            self._held.release()
            raise
        return dataclasses.replace(located, on_discard=self._held.release)
