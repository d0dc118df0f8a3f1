"""A real HTTP file server on loopback for manifest tests, run in a thread of the test process.

Routes: /files/NAME serves tests' files; /missing 404; /forbidden 403; /gone 410; /loop
redirects to itself; /hop/N/NAME redirects N times then serves NAME; /huge streams without end
(no Content-Length); /huge-declared says a huge Content-Length; /slow/NAME waits `slow_seconds`
before the first byte; /flaky/NAME answers 503 the first time. `hits` counts requests per path.

`targets` lists every request target (path and query) exactly as it came on the wire, `%XX`
escapes and all, so tests can check that a URL went out as written. `redirects` maps a raw path
to a Location sent back verbatim with a 302 (aiohttp's own HTTPFound would normalise it).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from pathlib import Path

from aiohttp import web


class FileServer:
    def __init__(self, root: Path, *, slow_seconds: float = 30.0) -> None:
        self.root = root
        self.slow_seconds = slow_seconds
        self.hits: collections.Counter[str] = collections.Counter()
        self.targets: list[str] = []
        self.redirects: dict[str, str] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.base = ""

    def __enter__(self) -> FileServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        self.targets.append(request.raw_path)  # the request target as sent, never decoded
        location = self.redirects.get(request.raw_path.split("?", 1)[0])
        if location is not None:
            return web.Response(status=302, headers={"Location": location})
        simple = {"/missing": 404, "/forbidden": 403, "/gone": 410}
        if path in simple:
            return web.Response(status=simple[path], text="no")
        if path == "/loop":
            raise web.HTTPFound("/loop")
        if path.startswith("/hop/"):
            _, _, n, name = path.split("/", 3)
            target = f"/hop/{int(n) - 1}/{name}" if int(n) > 1 else f"/files/{name}"
            raise web.HTTPFound(target)
        if path in ("/huge", "/huge-declared"):
            return await self._huge(request, declared=path == "/huge-declared")
        if path.startswith("/slow/"):
            await asyncio.sleep(self.slow_seconds)
            return web.FileResponse(self.root / path.split("/", 2)[2])
        if path.startswith("/flaky/") and self.hits[path] == 1:
            return web.Response(status=503, text="busy", headers={"Retry-After": "0"})
        name = path.rsplit("/", 1)[-1]
        file = self.root / name
        if not file.is_file():
            return web.Response(status=404)
        return web.FileResponse(file)

    async def _huge(self, request: web.Request, *, declared: bool) -> web.StreamResponse:
        resp = web.StreamResponse()
        if declared:
            resp.content_length = 10**10
        await resp.prepare(request)
        chunk = bytes(1 << 16)
        try:
            for _ in range(20_000):  # 1.3 GB at most; the client cuts it off long before
                await resp.write(chunk)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp
