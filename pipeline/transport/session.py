"""The run's HTTP side in one place: its connection pools, timeouts, proxies and the CAs it
trusts, and the upload client and the fetcher that share them.

- **Proxies** are chosen per request (`Routes`), from the environment as curl reads it
  (`proxies.py`), and passed to aiohttp as `proxy=`. The session keeps `trust_env=False`: with
  it, aiohttp would also read `~/.netrc` and add Basic credentials for the service's host, which
  aiohttp then refuses to combine with the Bearer key, failing every upload.
- **Plain-HTTP requests through a proxy** use a pool that closes each connection after its
  answer: proxies such as tinyproxy close a client's connection after every plain-HTTP answer
  without saying so, and aiohttp would write the next request into the dead connection.
  Requests that go direct, or through a CONNECT tunnel (https), keep their connections.
- **One TLS context** for every connection (`tls.py`): the CAs of `--ca-bundle` (or
  `SSL_CERT_FILE`) only, as `curl --cacert` trusts only its file, or the system's.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from pipeline.core.errors import UsageError
from pipeline.core.secret import Secret, public_url
from pipeline.flow.backoff import RetryPolicy, Sleep
from pipeline.transport.client import UploadClient
from pipeline.transport.fetch import HttpFetcher
from pipeline.transport.proxies import Proxies, mask, unsupported
from pipeline.transport.routes import Routes
from pipeline.transport.timeouts import timeouts
from pipeline.transport.tls import tls_context


class Http:
    """The pools and how requests are routed through them; open it with `open_http`."""

    def __init__(self, routes: Routes, *, timeout: float) -> None:
        self.routes = routes
        self.timeout = timeout

    def uploader(self, *, url: str, key: Secret) -> UploadClient:
        return UploadClient(self.routes, url=url, key=key, timeout=self.timeout)

    def fetcher(
        self, *, max_size: int, policy: RetryPolicy, sleep: Sleep, max_held: int | None = None
    ) -> HttpFetcher:
        return HttpFetcher(
            self.routes,
            max_size=max_size,
            timeout=self.timeout,
            policy=policy,
            sleep=sleep,
            max_held=max_held,
        )


def upload_proxy(proxies: Proxies, url: str) -> str | None:
    """The proxy uploads to `url` go through; UsageError when it cannot be used. Asked before
    the run starts."""
    proxy = proxies.for_url(url)
    if proxy is None:
        return None
    problem = unsupported(proxy)
    if problem is not None:
        raise UsageError(f"proxy {mask(proxy)} for {public_url(url)}: {problem}")
    return proxy


@contextlib.asynccontextmanager
async def open_http(
    *,
    concurrency: int,
    timeout: float,
    proxies: Proxies | None = None,
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[Http]:
    """The run's pools, closed at the end of the block. They hold the uploads in flight and the
    downloads beside them."""
    limit = concurrency * 2 + 4
    context = tls if tls is not None else tls_context(None)
    settings: dict[str, Any] = {"timeout": timeouts(timeout), "trust_env": False}
    keep = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=context), **settings
    )

    def closing() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=limit, ssl=context, force_close=True)
        return aiohttp.ClientSession(connector=connector, **settings)

    routes = Routes(keep, closing, proxies or Proxies())
    try:
        yield Http(routes, timeout=timeout)
    finally:
        await routes.close()
