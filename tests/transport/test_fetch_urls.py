"""Manifest URLs go out exactly as written: signed URLs (S3, GCS, Azure SAS, CDN tokens) sign
their exact text, so `%2F` must stay `%2F` and `%41` must not become `A`. Checked against a real
file server that records each request target as it came on the wire."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from pipeline.core.errors import PermanentError
from pipeline.flow.backoff import RetryPolicy
from pipeline.transport.fetch import HttpFetcher, wire_url
from pipeline.transport.routes import Routes
from tests.fileserver import FileServer

SIGNED_QUERY = "?sig=a%2Fb%3D%3D&X-Amz-Credential=AKIA%2F20261126%2Fus-east-1"
CONTENT = b"RIFF" + bytes(range(256)) * 16


@pytest.fixture
def served(tmp_path: Path) -> Path:
    folder = tmp_path / "served"
    folder.mkdir()
    for name in ("a.wav", "Abc.wav", "my song.wav", "Café 1.wav"):
        (folder / name).write_bytes(CONTENT)
    return folder


@pytest.fixture
async def fetcher() -> AsyncIterator[HttpFetcher]:
    async def no_wait(seconds: float) -> None:
        pass

    async with aiohttp.ClientSession() as session:
        yield HttpFetcher(
            Routes.direct(session),
            max_size=1 << 20,
            timeout=5,
            policy=RetryPolicy(max_attempts=1),
            sleep=no_wait,
        )


async def fetched_target(fetcher: HttpFetcher, server: FileServer, url: str) -> list[str]:
    located = await fetcher.fetch(url)
    located.discard()
    assert located.sha256 == hashlib.sha256(CONTENT).hexdigest()
    return server.targets


@pytest.mark.parametrize(
    "target",
    [
        "/files/a.wav" + SIGNED_QUERY,  # %2F in query values stays %2F
        "/files/%41bc.wav",  # an escaped unreserved character is not decoded
        "/files/my%20song.wav",
        "/files/a.wav?X-Goog-Signature=ab%2Bcd%3D&token=x~y+z&empty=&flag",
        "/files/a.wav?se=2026-11-26T10%3A00%3A00Z&sp=r&sv=2022-11-02&sig=Zm9v%2Bbg%3D%3D",
        "/files/a.wav?hdnts=exp%3D1764151200~acl%3D%2F*~hmac%3Dab12",
        "/files/a.wav?bad=%zz&semi=1;2",  # not valid escapes: sent as written, as curl does
    ],
)
async def test_a_url_goes_out_byte_for_byte_as_written(
    served: Path, fetcher: HttpFetcher, target: str
) -> None:
    with FileServer(served) as server:
        assert await fetched_target(fetcher, server, server.url(target)) == [target]


async def test_spaces_and_non_ascii_are_escaped_as_utf8_and_nothing_else_is(
    served: Path, fetcher: HttpFetcher
) -> None:
    with FileServer(served) as server:
        targets = await fetched_target(fetcher, server, server.url("/files/Café 1.wav?k=%2F é"))
    assert targets == ["/files/Caf%C3%A9%201.wav?k=%2F%20%C3%A9"]


@pytest.mark.parametrize("absolute", [True, False])
async def test_a_redirect_is_followed_to_the_location_exactly_as_the_server_wrote_it(
    served: Path, fetcher: HttpFetcher, absolute: bool
) -> None:
    location = "/files/%41bc.wav" + SIGNED_QUERY
    with FileServer(served) as server:
        server.redirects["/get/abc"] = server.url(location) if absolute else location
        targets = await fetched_target(fetcher, server, server.url("/get/abc?t=%2F"))
    assert targets == ["/get/abc?t=%2F", location]


async def test_a_relative_redirect_resolves_against_the_url_as_written(
    served: Path, fetcher: HttpFetcher
) -> None:
    with FileServer(served) as server:
        server.redirects["/dir/%7Eme/get"] = "../files/%41bc.wav?s=%2F"
        targets = await fetched_target(fetcher, server, server.url("/dir/%7Eme/get"))
    assert targets == ["/dir/%7Eme/get", "/dir/files/%41bc.wav?s=%2F"]  # RFC 3986 5.2


async def test_five_redirects_are_followed_and_a_sixth_is_refused(
    served: Path, fetcher: HttpFetcher
) -> None:
    with FileServer(served) as server:
        await fetched_target(fetcher, server, server.url("/hop/5/a.wav"))
        with pytest.raises(PermanentError, match="more than 5 redirects"):
            await fetcher.fetch(server.url("/hop/6/a.wav"))


async def test_a_redirect_to_another_scheme_fails_the_row_for_good(
    served: Path, fetcher: HttpFetcher
) -> None:
    with FileServer(served) as server:
        server.redirects["/away"] = "ftp://example.invalid/a.wav"
        with pytest.raises(PermanentError, match="bad URL or redirect"):
            await fetcher.fetch(server.url("/away"))


async def test_the_file_server_records_the_target_exactly_as_the_socket_carried_it(
    served: Path,
) -> None:
    target = "/files/%41bc.wav?sig=a%2Fb%3D&x=%7e"
    with FileServer(served) as server:
        host, port = server.base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()
        assert server.targets == [target]


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("https://b.s3.amazonaws.com/k%2Fx.wav" + SIGNED_QUERY,
         "https://b.s3.amazonaws.com/k%2Fx.wav" + SIGNED_QUERY),
        ("http://h/a/../b/./%41", "http://h/a/../b/./%41"),  # dot segments are the signer's
        ("http://h/x y.wav?q=a b", "http://h/x%20y.wav?q=a%20b"),
        ("http://bücher.example/é.wav", "http://xn--bcher-kva.example/%C3%A9.wav"),
        ("http://h:8080/p?q=%E9", "http://h:8080/p?q=%E9"),
    ],
)  # fmt: skip
def test_wire_url_keeps_the_text_and_escapes_only_what_http_cannot_carry(
    written: str, sent: str
) -> None:
    assert str(wire_url(written)) == sent


async def test_downloads_on_disk_at_once_are_bounded_until_discarded(served: Path) -> None:
    """Jobs waiting out a backoff keep their downloaded file: `max_held` of them at most."""

    async def no_wait(seconds: float) -> None:
        pass

    async with aiohttp.ClientSession() as session:
        fetcher = HttpFetcher(
            Routes.direct(session), max_size=1 << 20, timeout=5, policy=RetryPolicy(max_attempts=1),
            sleep=no_wait, max_held=2,
        )  # fmt: skip
        with FileServer(served) as server:
            url = server.url("/files/a.wav")
            first, second = await fetcher.fetch(url), await fetcher.fetch(url)
            third = asyncio.create_task(fetcher.fetch(url))
            await asyncio.sleep(0.3)
            assert not third.done()  # two on disk: the third waits
            first.discard()
            first.discard()  # a second discard frees nothing more
            located = await asyncio.wait_for(third, timeout=5)
            fourth = asyncio.create_task(fetcher.fetch(url))
            await asyncio.sleep(0.3)
            assert not fourth.done()
            second.discard()
            (await asyncio.wait_for(fourth, timeout=5)).discard()
            located.discard()
    assert first.temporary is not None and not first.temporary.exists()
