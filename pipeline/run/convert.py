"""Step 2c of a run: a source the service does not take as it is, decoded into a WAV to send.

    # the probe says "another format" (`OtherFormat`): FLAC, AIFF, MP4, Ogg, a WAV holding a
    # compressed codec, RIFX; with `--convert auto` it is decoded here into a temporary WAV,
    # which is probed like any file (its length is the decoded length, held to the service's
    # limits) and sent in the source's place; with `--convert never` it is refused, the reason
    # naming the codec.

Resources are bounded: decodes run in a pool of worker threads, one per core (FFmpeg lets go of
the GIL while it decodes, so threads use every core; the event loop is never blocked); at most
`max_held` decoded WAVs wait on disk at once (a few per upload slot), the next decode waiting
until an upload is recorded and its WAV removed. The WAVs live in a folder of this run's own
(`ingest-decode-<pid>-*` in the temporary folder), removed whole at the end of the run, on a
second signal, and, should the run be killed, by the next run on this host.

Content keys do not change: a converted source is still known by the sha256 of its own bytes,
since the same bytes always decode to the same WAV.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from pipeline.content import decode
from pipeline.content.body import Body
from pipeline.content.located import Converted, Located
from pipeline.content.probe import MAX_SECONDS, AudioInfo, OtherFormat, probe

log = logging.getLogger(__name__)
FOLDER_PREFIX = "ingest-decode-"
_OURS = re.compile(re.escape(FOLDER_PREFIX) + r"(\d+)-")


class Converter:
    """Decodes sources into WAVs (`--convert auto`)."""

    def __init__(
        self,
        *,
        max_held: int,
        timeout: float,
        stopping: asyncio.Event | None = None,
        workers: int | None = None,
        parent: str | None = None,
    ) -> None:
        self.timeout = timeout
        self._held = asyncio.Semaphore(max_held)
        self._stopping = stopping
        self._workers = workers or os.cpu_count() or 2
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._parent = parent
        self._folder: Path | None = None

    async def convert(self, located: Located, other: OtherFormat) -> tuple[Located, AudioInfo]:
        """The WAV decoded from `located`, probed; PermanentError when it cannot be sent,
        `DecoderMissing` or `DecodeTimeout` (left for the next run), `Stopped`. `located`'s
        own temporary file (a download) is discarded once decoded."""
        if not await asyncio.to_thread(decode.available):  # the first call imports PyAV
            raise decode.DecoderMissing(
                f"{other.kind} audio needs decoding to WAV and the decoder is not installed: "
                f"{decode.INSTALL}"
            )
        source = located.path
        assert source is not None
        await self._held.acquire()
        try:
            wav = self._new_file()
            try:
                converted, audio = await self._decode(source, wav)
            except BaseException:
                wav.unlink(missing_ok=True)
                raise
        except BaseException:
            self._held.release()
            raise
        located.discard()  # a download's copy: the WAV stands in for it now
        return (
            dataclasses.replace(
                located, converted=converted, temporary=wav, on_discard=self._held.release
            ),
            audio,
        )

    async def _decode(self, source: Path, wav: Path) -> tuple[Converted, AudioInfo]:
        run = functools.partial(
            _decode_and_probe,
            source,
            wav,
            timeout=self.timeout,
            stopping=self._stopping.is_set if self._stopping is not None else lambda: False,
        )
        return await asyncio.get_running_loop().run_in_executor(self._executor(), run)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._workers, thread_name_prefix="decode"
            )
        return self._pool

    def _new_file(self) -> Path:
        if self._folder is None:
            sweep_abandoned(self._parent)
            self._folder = Path(
                tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-", dir=self._parent)
            )
        fd, name = tempfile.mkstemp(suffix=".wav", dir=self._folder)
        os.close(fd)
        return Path(name)

    def close(self) -> None:
        """End the decodes (they stop at their next packet) and remove every WAV left."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.remove_files()

    def remove_files(self) -> None:
        """Remove the folder of decoded WAVs (also from a signal handler, before exiting)."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def _decode_and_probe(
    source: Path, wav: Path, *, timeout: float, stopping: decode.Stopping
) -> tuple[Converted, AudioInfo]:
    """Blocking: decode, then judge the WAV as any file is judged (the decoded length)."""
    decoded = decode.decode_to_wav(
        source, wav, timeout=timeout, max_seconds=MAX_SECONDS, stopping=stopping
    )
    audio = probe(wav)
    body = Body(size=decoded.size, path=str(wav))
    return Converted(body, decoded.sha256, decoded.converted_from), audio


def never_reason(other: OtherFormat, located: Located) -> str:
    """Blocking: why `--convert never` refuses it, naming the codec when the decoder can."""
    path = located.path
    codec = decode.describe(path) if path is not None else None
    what = f"{other.kind} audio" + (f", codec {codec}," if codec else "")
    return f"{what} is not sent as it is (only WAV or MP3; --convert auto would send it as WAV)"


def sweep_abandoned(parent: str | None) -> None:
    """Remove the decode folders of runs on this host that were killed (their pid is gone)."""
    root = Path(parent or tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for folder in root.iterdir():
            match = _OURS.match(folder.name)
            if match and folder.is_dir() and not _alive(int(match.group(1))):
                log.info("removing decoded files a killed run left: %s", folder)
                shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
