"""How a request goes out: which proxy (if any) and which connection pool.

A plain-HTTP request through a proxy goes by a pool that never reuses a connection: proxies such
as tinyproxy close the client's connection after each plain-HTTP answer without a
`Connection: close`, and aiohttp, which cannot tell, would write the next request into the
closed connection (`Cannot write to closing transport`). That pool is made the first time it is
needed. Everything else (direct, or https through a CONNECT tunnel) keeps its connections.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import yarl

from pipeline.transport.proxies import Proxies


class Routes:
    def __init__(
        self,
        keep: aiohttp.ClientSession,
        closing: Callable[[], aiohttp.ClientSession],
        proxies: Proxies,
    ) -> None:
        self.proxies = proxies
        self._keep = keep
        self._make_closing = closing
        self._closing: aiohttp.ClientSession | None = None

    @classmethod
    def direct(cls, session: aiohttp.ClientSession) -> Routes:
        """Every request straight through `session`, no proxy (tests and tools own it)."""
        return cls(session, lambda: session, Proxies())

    def route(self, url: str | yarl.URL) -> tuple[aiohttp.ClientSession, str | None]:
        """The session to send a request to `url` with, and its proxy (None: direct)."""
        proxy = self.proxies.for_url(str(url))
        if proxy is None or str(url).lower().startswith("https:"):
            return self._keep, proxy
        if self._closing is None:
            self._closing = self._make_closing()
        return self._closing, proxy

    async def close(self) -> None:
        await self._keep.close()
        if self._closing is not None:
            await self._closing.close()
