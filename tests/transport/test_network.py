"""The transport against real failures on loopback: what each one becomes in the error tree, and
uploads through a real proxy (tinyproxy) that closes every plain-HTTP connection after its
answer."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yarl
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from pipeline.content.body import Body
from pipeline.core.errors import PermanentError, RunFatal, TransientError
from pipeline.core.secret import Secret
from pipeline.sandbox.server import DEMO_KEY, UPLOAD_PATH, Faults, Sandbox
from pipeline.transport.errors import client_errors
from pipeline.transport.proxies import Proxies
from pipeline.transport.session import open_http
from pipeline.transport.tls import tls_context
from tests.netlab import free_port, make_ca, needs_tinyproxy, tinyproxy

DATA = b"RIFF" + bytes(2000)


@contextlib.asynccontextmanager
async def serving(app: web.Application, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def hello() -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", answer)
    return app


async def failure_of(url: str, *, what: str = "upload", context: ssl.SSLContext | None = None,
                     proxy: str | None = None) -> BaseException:  # fmt: skip
    async with aiohttp.ClientSession(trust_env=False) as session:
        try:
            with client_errors(what, timeout=5, proxy=proxy):
                async with session.get(url, ssl=context or True, proxy=proxy) as resp:
                    await resp.read()
        except Exception as exc:  # noqa: BLE001 (the test looks at which)
            return exc
    raise AssertionError(f"{url} answered")


async def test_connection_refused_never_reached_the_service() -> None:
    error = await failure_of(f"http://127.0.0.1:{free_port()}/")
    assert isinstance(error, TransientError) and error.unreachable
    assert error.connect_failed == "connection refused"
    assert error.reason == "upload failed: connection refused"


async def test_a_certificate_from_an_unknown_ca_is_final(tmp_path: Path) -> None:
    files = make_ca(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(files.cert, files.key)
    async with serving(hello(), server) as port:
        url = f"https://127.0.0.1:{port}/"
        upload = await failure_of(url, context=tls_context(None))
        download = await failure_of(url, what="download", context=tls_context(None))
        trusted = tls_context(str(files.ca))  # and with the CA's bundle, it is trusted
        async with aiohttp.ClientSession() as session, session.get(url, ssl=trusted) as resp:
            assert resp.status == 200
    assert isinstance(upload, RunFatal)
    assert str(upload).startswith("the TLS certificate of 127.0.0.1 was refused: unable to get")
    assert "--ca-bundle" in str(upload)
    assert isinstance(download, PermanentError)


async def test_https_to_a_plain_http_port_is_a_handshake_that_never_reached_it() -> None:
    async with serving(hello()) as port:
        error = await failure_of(f"https://127.0.0.1:{port}/")
    assert isinstance(error, TransientError)
    assert str(error.connect_failed).startswith("TLS handshake with 127.0.0.1 failed: ")


def test_a_proxy_error_never_shows_the_proxy_password() -> None:
    proxy = "http://ingest:pa55word@127.0.0.1:3128"
    info = aiohttp.RequestInfo(yarl.URL(proxy), "CONNECT", CIMultiDictProxy(CIMultiDict()))
    for status, kind in ((500, TransientError), (407, RunFatal), (401, RunFatal)):
        raised = aiohttp.ClientHttpProxyError(info, (), status=status, message="No")
        assert "pa55word" in str(raised)  # aiohttp's own message holds it
        with pytest.raises(kind) as caught, client_errors("upload", timeout=5, proxy=proxy):
            raise raised
        assert "pa55word" not in str(caught.value)
        assert "http://***:***@127.0.0.1:3128" in str(caught.value)


@needs_tinyproxy
async def test_plain_http_through_tinyproxy_loses_no_request(tmp_path: Path) -> None:
    """tinyproxy closes each plain-HTTP connection after its answer, unannounced: a pool that
    reused them would write the next upload into a closed connection (`Can not write request
    body`). One upload after another, as a pool of one sends them, meets that most often."""
    sandbox = Sandbox(key=DEMO_KEY, faults=Faults())
    on_disk = tmp_path / "a.wav"
    on_disk.write_bytes(DATA)
    info = on_disk.stat()
    bodies = [  # in memory, and streamed from disk (whose write meets a closed one soonest)
        Body(size=len(DATA), data=DATA),
        Body(size=len(DATA), path=str(on_disk), mtime_ns=info.st_mtime_ns),
    ]
    with tinyproxy(tmp_path / "proxy") as proxy:
        async with serving(sandbox.app()) as port:
            url = f"http://127.0.0.1:{port}{UPLOAD_PATH}"
            proxies = Proxies({"http_proxy": proxy.url})
            async with open_http(concurrency=1, timeout=10, proxies=proxies) as http:
                client = http.uploader(url=url, key=Secret(DEMO_KEY))

                async def one(i: int) -> BaseException | None:
                    try:
                        await client.upload(bodies[i % 2], purpose="song", filename=f"{i}.wav",
                                            content_type="audio/wav")  # fmt: skip
                    except TransientError as exc:
                        return exc
                    except PermanentError:  # base_resp 2013: the sandbox read this fake audio
                        return None
                    return None

                errors = [e for e in [await one(i) for i in range(100)] if e]
        lines = proxy.requests()
    assert errors == []
    assert len(sandbox.requests) == 100
    assert lines == [f"POST {url}"] * 100
