"""The sandbox behaves like the service, and the real client survives its faults over loopback."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from pipeline.content.body import Body
from pipeline.core.errors import PermanentError, RunFatal
from pipeline.core.secret import Secret
from pipeline.flow.backoff import RetryPolicy, retrying
from pipeline.sandbox.samples import write_mp3, write_wav
from pipeline.sandbox.server import DEMO_KEY, UPLOAD_PATH, Faults, Sandbox
from pipeline.transport.client import UploadClient
from pipeline.transport.routes import Routes


def file_body(path: Path) -> Body:
    """A body streamed from `path`, as the runner sends files too large to keep in memory."""
    info = path.stat()
    return Body(size=info.st_size, path=str(path), mtime_ns=info.st_mtime_ns)


async def serve(sandbox: Sandbox) -> AsyncIterator[tuple[UploadClient, Sandbox]]:
    server = TestServer(sandbox.app())
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield (
            UploadClient(
                Routes.direct(session),
                url=str(server.make_url(UPLOAD_PATH)),
                key=Secret(DEMO_KEY),
                timeout=5,
            ),
            sandbox,
        )
    await server.close()


@pytest.fixture
async def plain() -> AsyncIterator[tuple[UploadClient, Sandbox]]:
    async for pair in serve(Sandbox(key=DEMO_KEY, faults=Faults())):
        yield pair


async def test_ids_in_the_real_shape(plain: tuple[UploadClient, Sandbox], tmp_path: Path) -> None:
    client, sandbox = plain
    song = await client.upload(
        file_body(write_wav(tmp_path / "a.wav", 11)),
        purpose="song",
        filename="a.wav",
        content_type="audio/wav",
    )
    assert re.fullmatch(r"vocal-\d{14}-[0-9a-f]{8}", song.voice_id or "")
    assert re.fullmatch(r"instrumental-\d{14}-[0-9a-f]{8}", song.instrumental_id or "")
    voice = await client.upload(
        file_body(write_mp3(tmp_path / "b.mp3", 11)),
        purpose="voice",
        filename="b.mp3",
        content_type="audio/mpeg",
    )
    assert voice.voice_id and voice.instrumental_id is None
    assert [r["content_type"] for r in sandbox.requests] == ["audio/wav", "audio/mpeg"]
    assert [r["filename"] for r in sandbox.requests] == ["a.wav", "b.mp3"]


@pytest.mark.parametrize(
    ("purpose", "content_type", "seconds", "message"),
    [
        ("podcast", "audio/wav", 11, "purpose"),
        ("song", "audio/wav", 5, "too short"),
        ("song", "audio/mpeg", 11, "content type"),
    ],
)
async def test_invalid_uploads_get_2013(
    plain: tuple[UploadClient, Sandbox],
    tmp_path: Path,
    purpose: str,
    content_type: str,
    seconds: float,
    message: str,
) -> None:
    client, _ = plain
    with pytest.raises(PermanentError, match=f"base_resp 2013: invalid params: .*{message}"):
        await client.upload(
            file_body(write_wav(tmp_path / "a.wav", seconds)),
            purpose=purpose,
            filename="a.wav",
            content_type=content_type,
        )


@pytest.mark.parametrize(
    ("rate", "channels", "bits", "encoding"),
    [
        (96000, 2, 24, "signed-integer"),  # format 1, 24-bit
        (44100, 2, 32, "floating-point"),  # format 3 with a fact chunk
        (48000, 6, 24, "signed-integer"),  # WAVE_FORMAT_EXTENSIBLE
    ],
)
async def test_the_wavs_the_decoder_writes_are_taken_and_flac_still_refused(
    plain: tuple[UploadClient, Sandbox],
    tmp_path: Path,
    rate: int,
    channels: int,
    bits: int,
    encoding: str,
) -> None:
    """The headers `content.wavfile` writes for what decoding gives, from a FLAC made by the
    flac command line; the FLAC itself is refused as the service refuses it."""
    from pipeline.content.decode import available, decode_to_wav
    from tests.encoders import need, run

    if not available():
        pytest.skip("the decoder (av) is not installed")
    need("sox", "flac", "wavpack")
    client, sandbox = plain
    src = tmp_path / "src.wav"
    fmt = ["-r", str(rate), "-c", str(channels), "-b", str(bits), "-e", encoding]
    run(["sox", "-R", "-n", *fmt, str(src), "synth", "11", "pinknoise", "vol", "0.3"])
    packed = tmp_path / ("a.wv" if encoding == "floating-point" else "a.flac")
    if packed.suffix == ".wv":  # FLAC holds no float
        run(["wavpack", "-q", "-y", str(src), "-o", str(packed)])
    else:
        run(["flac", "-s", "-f", "--lax", "-o", str(packed), str(src)])
    wav = tmp_path / "a.wav"
    assert decode_to_wav(packed, wav, timeout=60).format.bits == bits
    done = await client.upload(
        file_body(wav), purpose="song", filename="a.wav", content_type="audio/wav"
    )
    assert done.voice_id
    with pytest.raises(PermanentError, match="2013: invalid params: .* is not accepted"):
        await client.upload(
            file_body(packed), purpose="song", filename="a.wav", content_type="audio/wav"
        )
    assert [r["outcome"] for r in sandbox.requests] == ["ok", "base_resp 2013"]


async def test_wrong_key_is_refused(tmp_path: Path) -> None:
    async for client, _ in serve(Sandbox(key="another-key", faults=Faults())):
        with pytest.raises(RunFatal):
            await client.upload(
                file_body(write_wav(tmp_path / "a.wav", 11)),
                purpose="song",
                filename="a.wav",
                content_type="audio/wav",
            )


async def test_retries_resend_the_whole_body_through_real_faults(tmp_path: Path) -> None:
    """aioresponses never serialises bodies; this proves each retry sends the file again."""
    faults = Faults(drop=0.2, error=0.2, throttle=0.1, busy=0.1, retry_after=0.01)
    path = write_wav(tmp_path / "a.wav", 11)

    async def no_wait(_: float) -> None:
        return None

    async for client, sandbox in serve(Sandbox(key=DEMO_KEY, faults=faults, seed=3)):
        for _ in range(10):
            async for attempt in retrying(RetryPolicy(max_attempts=30), sleep=no_wait):
                with attempt:
                    await client.upload(
                        file_body(path), purpose="song", filename="a.wav", content_type="audio/wav"
                    )
        outcomes = [r["outcome"] for r in sandbox.requests]
        assert outcomes.count("ok") == 10
        assert len(outcomes) > 10  # faults happened and were retried
        assert {r["size"] for r in sandbox.requests if "size" in r} == {path.stat().st_size}
