"""The run's HTTP side in one place: one aiohttp session (its pool and timeouts), and the upload
client and the fetcher that share it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp

from pipeline.core.secret import Secret
from pipeline.flow.backoff import RetryPolicy, Sleep
from pipeline.transport.client import UploadClient
from pipeline.transport.fetch import HttpFetcher
from pipeline.transport.timeouts import timeouts


class Http:
    """One session, for uploads and downloads alike; open it with `open_http`."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float) -> None:
        self.session = session
        self.timeout = timeout

    def uploader(self, *, url: str, key: Secret) -> UploadClient:
        return UploadClient(self.session, url=url, key=key, timeout=self.timeout)

    def fetcher(
        self, *, max_size: int, policy: RetryPolicy, sleep: Sleep, max_held: int | None = None
    ) -> HttpFetcher:
        return HttpFetcher(
            self.session,
            max_size=max_size,
            timeout=self.timeout,
            policy=policy,
            sleep=sleep,
            max_held=max_held,
        )


@contextlib.asynccontextmanager
async def open_http(*, concurrency: int, timeout: float) -> AsyncIterator[Http]:
    """The run's session, closed at the end of the block. Its pool holds the uploads in flight
    and the downloads beside them."""
    connector = aiohttp.TCPConnector(limit=concurrency * 2 + 4)
    async with aiohttp.ClientSession(connector=connector, timeout=timeouts(timeout)) as session:
        yield Http(session, timeout=timeout)
