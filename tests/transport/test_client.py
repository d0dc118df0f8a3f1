"""The upload client: pure classification of every answer, then the client over aioresponses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aioresponses import aioresponses
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.content.body import Body
from pipeline.core.errors import PermanentError, RunFatal, TransientError
from pipeline.core.secret import Secret
from pipeline.sandbox.samples import write_wav
from pipeline.transport.client import UploadClient
from pipeline.transport.multipart import build_form, multipart_bytes
from pipeline.transport.replies import Reply, classify_base_resp, classify_http, parse_retry_after
from pipeline.transport.routes import Routes

URL = "http://api.test/v2/generate/audio/minimax/upload"
KEY = "sk-test-key-123"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentError),
        (401, RunFatal),
        (403, RunFatal),
        (404, PermanentError),
        (408, TransientError),
        (413, PermanentError),
        (429, TransientError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (504, TransientError),
    ],
)
def test_http_status_classes(status: int, kind: type[Exception]) -> None:
    assert isinstance(classify_http(reply({"message": "m"}, status)), kind)


def reply(body: object, status: int = 200, retry_after: float | None = None) -> Reply:
    return Reply(status, "application/json", json.dumps(body).encode(), retry_after)


def page(status: int, html: bytes, content_type: str = "text/html") -> Reply:
    return Reply(status, content_type, html)


def test_http_2xx_leaves_it_to_base_resp() -> None:
    assert classify_http(reply({})) is None


def test_a_proxy_403_page_is_named_and_still_stops_the_run() -> None:
    html = b"<html><head><title>Attention Required! | Cloudflare</title></head><body>..."
    error = classify_http(page(403, html))
    assert isinstance(error, RunFatal)
    assert "in front of the service" in str(error) and "out of credits" not in str(error)
    assert 'text/html page titled "Attention Required! | Cloudflare"' in str(error)
    plain = classify_http(page(403, b"Forbidden by policy\n", "text/plain"))
    assert 'text/plain body starting "Forbidden by policy"' in str(plain)
    assert "out of credits" in str(classify_http(reply({"message": "no credits"}, 403)))


def test_413_names_the_size_sent_and_who_may_have_refused_it() -> None:
    error = classify_http(
        page(413, b"<title>413 Request Entity Too Large</title>"), size=53_200_000
    )
    assert isinstance(error, PermanentError)
    assert "53.2 MB" in error.reason and "service or a proxy" in error.reason


def test_a_5xx_page_from_a_gateway_is_transient_and_says_what_answered() -> None:
    error = classify_http(page(502, b"<html><title>502 Bad Gateway</title>"))
    assert isinstance(error, TransientError)
    assert error.reason == 'HTTP 502: answered by a text/html page titled "502 Bad Gateway"'


def test_failures_keep_the_trace_id() -> None:
    said = {"trace_id": "tr-1", "base_resp": {"status_code": 2013, "status_msg": "bad"}}
    assert classify_base_resp(reply(said)).trace_id == "tr-1"  # type: ignore[union-attr]
    busy = {"trace_id": "tr-2", "base_resp": {"status_code": 1002}}
    assert classify_base_resp(reply(busy)).trace_id == "tr-2"  # type: ignore[union-attr]
    assert classify_http(reply({"trace_id": "tr-3"}, 500)).trace_id == "tr-3"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (1000, TransientError),
        (1001, TransientError),
        (1002, TransientError),
        (1024, TransientError),
        (1033, TransientError),
        (1039, TransientError),
        (1041, TransientError),
        (2045, TransientError),
        (1004, RunFatal),
        (1008, RunFatal),
        (2049, RunFatal),
        (2056, RunFatal),
        (1026, PermanentError),
        (1027, PermanentError),
        (2013, PermanentError),
        (2044, PermanentError),
        (9999, PermanentError),
    ],
)
def test_base_resp_codes(code: int, kind: type[Exception]) -> None:
    error = classify_base_resp(reply({"base_resp": {"status_code": code, "status_msg": "said"}}))
    assert isinstance(error, kind)


def test_ids_without_base_resp_are_accepted_but_nothing_else_is() -> None:
    assert classify_base_resp(reply({"voice_id": "v", "instrumental_id": "i"})) is None
    assert isinstance(classify_base_resp(reply({"trace_id": "t"})), TransientError)
    odd = reply({"base_resp": {"status_code": "x"}})
    assert isinstance(classify_base_resp(odd), TransientError)


def test_slowdown_codes_say_what_to_slow() -> None:
    for code in (1002, 2045, 1039):
        error = classify_base_resp(reply({"base_resp": {"status_code": code}}, retry_after=2.0))
        assert isinstance(error, TransientError) and error.retry_after == 2.0
        assert error.slowdown == "rate"
    error = classify_base_resp(reply({"base_resp": {"status_code": 1041}}))
    assert isinstance(error, TransientError) and error.slowdown == "concurrency"
    error = classify_http(reply(None, 429, 3.0))
    assert isinstance(error, TransientError) and error.slowdown == "rate"
    error = classify_http(reply(None, 503))
    assert isinstance(error, TransientError) and error.slowdown is None


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.fixture
async def client() -> AsyncIterator[UploadClient]:
    async with aiohttp.ClientSession() as session:
        yield UploadClient(Routes.direct(session), url=URL, key=Secret(KEY), timeout=5)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "a.wav", 11.0)


async def upload(client: UploadClient, wav: Path, purpose: str = "song") -> object:
    body = Body(size=wav.stat().st_size, path=str(wav), mtime_ns=wav.stat().st_mtime_ns)
    return await client.upload(body, purpose=purpose, filename="a.wav", content_type="audio/wav")


async def test_success_returns_ids_and_sends_the_key(client: UploadClient, wav: Path) -> None:
    with aioresponses() as mocked:
        mocked.post(
            URL,
            payload={
                "voice_id": "vocal-1",
                "instrumental_id": "instrumental-1",
                "trace_id": "t1",
                "base_resp": {"status_code": 0, "status_msg": "success"},
            },
        )
        result = await upload(client, wav)
        (call,) = next(iter(mocked.requests.values()))
    assert (result.voice_id, result.instrumental_id, result.trace_id) == (
        "vocal-1",
        "instrumental-1",
        "t1",
    )
    assert call.kwargs["headers"]["Authorization"] == f"Bearer {KEY}"


async def test_http_200_with_error_code_is_not_success(client: UploadClient, wav: Path) -> None:
    with aioresponses() as mocked:
        mocked.post(URL, payload={"base_resp": {"status_code": 2013, "status_msg": "invalid"}})
        with pytest.raises(PermanentError, match="base_resp 2013: invalid"):
            await upload(client, wav)


async def test_429_carries_retry_after(client: UploadClient, wav: Path) -> None:
    with aioresponses() as mocked:
        mocked.post(URL, status=429, headers={"Retry-After": "4"}, payload={})
        with pytest.raises(TransientError) as caught:
            await upload(client, wav)
    assert caught.value.retry_after == 4.0 and caught.value.slowdown is not None


async def test_refused_key_is_fatal_and_never_echoes_it(client: UploadClient, wav: Path) -> None:
    with aioresponses() as mocked:
        mocked.post(URL, status=401, payload={"message": "bad key"})
        with pytest.raises(RunFatal) as caught:
            await upload(client, wav)
    assert "AIMLAPI_API_KEY" in str(caught.value) and KEY not in str(caught.value)


async def test_connection_errors_and_timeouts_are_transient(
    client: UploadClient, wav: Path
) -> None:
    with aioresponses() as mocked:
        mocked.post(URL, exception=aiohttp.ServerDisconnectedError())
        mocked.post(URL, exception=TimeoutError())
        with pytest.raises(TransientError, match="upload failed"):
            await upload(client, wav)
        with pytest.raises(TransientError, match="timed out"):
            await upload(client, wav)


async def test_unparsable_reply_is_transient(client: UploadClient, wav: Path) -> None:
    with aioresponses() as mocked:
        mocked.post(URL, body="<html>gateway</html>", status=200)
        with pytest.raises(TransientError, match='unexpected reply: .* body starting "gateway"'):
            await upload(client, wav)


async def test_reply_without_promised_ids_is_not_done(client: UploadClient, wav: Path) -> None:
    with aioresponses() as mocked:
        mocked.post(URL, payload={"voice_id": "v", "base_resp": {"status_code": 0}})
        with pytest.raises(TransientError, match="without the ids"):
            await upload(client, wav, purpose="song")
        mocked.post(URL, payload={"voice_id": "v", "base_resp": {"status_code": 0}})
        result = await upload(client, wav, purpose="voice")
    assert result.voice_id == "v"  # type: ignore[attr-defined]


async def aiohttp_bytes(purpose: str, data: bytes, filename: str, content_type: str) -> bytes:
    """What aiohttp itself writes for `build_form`, boundary and all."""

    class Collect:
        def __init__(self) -> None:
            self.data = bytearray()

        async def write(self, chunk: bytes) -> None:
            self.data += chunk

    payload = build_form(purpose, Body(size=len(data), data=data), filename, content_type)
    out = Collect()
    await payload.write(out)  # type: ignore[arg-type]
    return bytes(out.data).replace(payload.boundary.encode(), b"BOUNDARY")


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(min_size=1, max_size=60),
    data=st.binary(max_size=64),
    purpose=st.sampled_from(["song", "voice", "instrumental"]),
)
async def test_the_in_memory_form_is_aiohttp_s_own_bytes(
    name: str, data: bytes, purpose: str
) -> None:
    body, content_type = multipart_bytes(purpose, data, name, "audio/wav")
    boundary = content_type.split("boundary=")[1]
    expected = await aiohttp_bytes(purpose, data, name, "audio/wav")
    assert body.replace(boundary.encode(), b"BOUNDARY") == expected
