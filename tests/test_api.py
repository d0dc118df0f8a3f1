"""The upload client: pure classification of every answer, then the client over aioresponses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aioresponses import aioresponses

from pipeline.api import (
    UploadClient,
    classify_base_resp,
    classify_http,
    parse_retry_after,
)
from pipeline.config import Secret
from pipeline.errors import PermanentError, RunFatal, TransientError
from pipeline.samples import write_wav

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
    assert isinstance(classify_http(status, {"message": "m"}, None), kind)


def test_http_2xx_leaves_it_to_base_resp() -> None:
    assert classify_http(200, {}, None) is None


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
    error = classify_base_resp({"base_resp": {"status_code": code, "status_msg": "said"}}, None)
    assert isinstance(error, kind)


def test_ids_without_base_resp_are_accepted_but_nothing_else_is() -> None:
    assert classify_base_resp({"voice_id": "v", "instrumental_id": "i"}, None) is None
    assert isinstance(classify_base_resp({"trace_id": "t"}, None), TransientError)
    assert isinstance(classify_base_resp({"base_resp": {"status_code": "x"}}, None), TransientError)


def test_throttle_codes_slow_the_pool() -> None:
    for code in (1002, 2045):
        error = classify_base_resp({"base_resp": {"status_code": code}}, 2.0)
        assert isinstance(error, TransientError) and error.throttled and error.retry_after == 2.0
    error = classify_http(429, None, 3.0)
    assert isinstance(error, TransientError) and error.throttled
    error = classify_http(503, None, None)
    assert isinstance(error, TransientError) and not error.throttled


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.fixture
async def client() -> AsyncIterator[UploadClient]:
    async with aiohttp.ClientSession() as session:
        yield UploadClient(session, url=URL, key=Secret(KEY), timeout=5)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "a.wav", 11.0)


async def upload(client: UploadClient, wav: Path, purpose: str = "song") -> object:
    return await client.upload(wav, purpose=purpose, filename="a.wav", content_type="audio/wav")


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
    assert caught.value.retry_after == 4.0 and caught.value.throttled


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
        with pytest.raises(TransientError, match="connection failed"):
            await upload(client, wav)
        with pytest.raises(TransientError, match="timed out"):
            await upload(client, wav)


async def test_unparsable_reply_is_transient(client: UploadClient, wav: Path) -> None:
    with aioresponses() as mocked:
        mocked.post(URL, body="<html>gateway</html>", status=200)
        with pytest.raises(TransientError, match="not a JSON object"):
            await upload(client, wav)


async def test_reply_without_promised_ids_is_not_done(client: UploadClient, wav: Path) -> None:
    with aioresponses() as mocked:
        mocked.post(URL, payload={"voice_id": "v", "base_resp": {"status_code": 0}})
        with pytest.raises(TransientError, match="without the ids"):
            await upload(client, wav, purpose="song")
        mocked.post(URL, payload={"voice_id": "v", "base_resp": {"status_code": 0}})
        result = await upload(client, wav, purpose="voice")
    assert result.voice_id == "v"  # type: ignore[attr-defined]


async def test_unreadable_file_is_permanent(client: UploadClient, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="cannot read file"):
        await client.upload(
            tmp_path / "gone.wav", purpose="song", filename="gone.wav", content_type="audio/wav"
        )
