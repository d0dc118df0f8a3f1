"""A file on disk sent as an upload body over real sockets: by sendfile(2) on plain TCP, read
and written over TLS; in both, byte for byte what the server reads."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from pipeline.content.body import CHUNK, Body
from pipeline.core.errors import PermanentError, SourceChanged
from pipeline.core.secret import Secret
from pipeline.transport.client import UploadClient
from pipeline.transport.proxies import Proxies
from pipeline.transport.routes import Routes
from pipeline.transport.session import open_http
from pipeline.transport.tls import tls_context
from tests.conftest import wait_until
from tests.content.test_body import big_file
from tests.netlab import make_ca, needs_tinyproxy, tinyproxy
from tests.thirdparty import DEMO_KEY, running
from tests.transport.test_network import serving

SIZE = 3 * CHUNK + 12_345


@pytest.fixture
def sendfile_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The bytes each os.sendfile call carried (the real call is made)."""
    carried: list[int] = []
    real = os.sendfile

    def counted(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent = real(out_fd, in_fd, offset, count)
        carried.append(sent)
        return sent

    monkeypatch.setattr(os, "sendfile", counted)
    yield carried


def file_body(tmp_path: Path, size: int = SIZE) -> tuple[Path, Body]:
    """A file of random bytes, and the body that sends it as hashed."""
    path = big_file(tmp_path, size)
    info = path.stat()
    return path, Body(size=info.st_size, path=str(path), mtime_ns=info.st_mtime_ns)


async def send(url: str, body: Body, tls: Path | None = None) -> None:
    context = tls_context(str(tls)) if tls else None
    connector = aiohttp.TCPConnector(ssl=context) if context else aiohttp.TCPConnector()
    async with aiohttp.ClientSession(connector=connector) as session:
        client = UploadClient(Routes.direct(session), url=url, key=Secret(DEMO_KEY), timeout=30)
        await client.upload(body, purpose="song", filename="big.wav", content_type="audio/wav")


async def test_on_plain_tcp_the_file_goes_by_sendfile_and_another_stack_reads_it_whole(
    tmp_path: Path, sendfile_calls: list[int]
) -> None:
    path, body = file_body(tmp_path)
    with running() as service:  # Werkzeug, three multipart readers
        await send(service.url, body)
        (upload,) = service.uploads()
    assert upload["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert upload["size"] == SIZE and upload["bytes_agree"]
    # All but the last chunk, which is read and checked against the hashed file first.
    assert sum(sendfile_calls) == SIZE - CHUNK


@needs_tinyproxy
async def test_through_a_real_proxy_the_file_goes_by_sendfile_and_arrives_whole(
    tmp_path: Path, sendfile_calls: list[int]
) -> None:
    path, body = file_body(tmp_path)
    with running() as service, tinyproxy(tmp_path / "proxy") as proxy:
        proxies = Proxies({"http_proxy": proxy.url})
        async with open_http(concurrency=1, timeout=30, proxies=proxies) as http:
            client = http.uploader(url=service.url, key=Secret(DEMO_KEY))
            await client.upload(body, purpose="song", filename="big.wav", content_type="audio/wav")
        (upload,) = service.uploads()
        through = proxy.requests()
    assert through == [f"POST {service.url}"]
    assert upload["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert upload["size"] == SIZE and upload["bytes_agree"]
    assert sum(sendfile_calls) == SIZE - CHUNK


async def test_a_file_rewritten_while_it_goes_by_sendfile_is_cut_before_its_last_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, body = file_body(tmp_path)
    real = os.sendfile

    def then_rewritten(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent = real(out_fd, in_fd, offset, count)
        os.utime(path, ns=(1, 1))  # an editor saved over it meanwhile: same size
        return sent

    monkeypatch.setattr(os, "sendfile", then_rewritten)
    with running() as service:
        with pytest.raises(SourceChanged, match="changed since it was hashed"):
            await send(service.url, body)
        # It notes a cut-off body once its reading thread finds the connection gone.
        wait_until(lambda: bool(service.requests()), timeout=10)
        (request,) = service.requests()
    assert request["outcome"].startswith("incomplete")
    assert request["received"] < request["content_length"]


async def test_an_early_answer_to_a_file_going_by_sendfile_is_still_read(
    tmp_path: Path, sendfile_calls: list[int]
) -> None:
    _, body = file_body(tmp_path, 40_000_000)  # far more than the socket buffers hold
    # nginx's 413 from the Content-Length alone, the body never read, the connection closed;
    # held back until the file is surely going by sendfile
    with running(mode="nginx-413", hold=True) as proxy:
        sending = asyncio.ensure_future(send(proxy.url, body))
        deadline = time.monotonic() + 10
        while not (sendfile_calls and await asyncio.to_thread(proxy.held) == 1):
            assert time.monotonic() < deadline and not sending.done(), "never held"
            await asyncio.sleep(0.02)
        await asyncio.to_thread(proxy.release)
        with pytest.raises(PermanentError, match="HTTP 413.*refused the upload of 40.0 MB"):
            await sending
    assert 0 < sum(sendfile_calls) < body.size  # cut off while going by sendfile


async def test_over_tls_the_file_is_read_and_written_and_arrives_whole(
    tmp_path: Path, sendfile_calls: list[int]
) -> None:
    path, body = file_body(tmp_path)
    files = make_ca(tmp_path / "tls")
    received: list[str] = []

    async def upload(request: web.Request) -> web.Response:
        form = await request.post()
        received.append(hashlib.sha256(form["file"].file.read()).hexdigest())  # type: ignore[union-attr]
        ids = {"voice_id": "v", "instrumental_id": "i", "trace_id": "t"}
        return web.json_response({**ids, "base_resp": {"status_code": 0, "status_msg": "ok"}})

    app = web.Application(client_max_size=2 * SIZE)
    app.router.add_post("/upload", upload)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(files.cert, files.key)
    async with serving(app, server_tls) as port:
        await send(f"https://127.0.0.1:{port}/upload", body, tls=files.ca)
    assert received == [hashlib.sha256(path.read_bytes()).hexdigest()]
    assert sendfile_calls == []  # the kernel cannot encrypt: no sendfile over TLS
