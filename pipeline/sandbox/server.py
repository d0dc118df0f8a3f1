"""The local stand-in for the MiniMax upload API (`ingest sandbox`).

It behaves like the real service as far as a client can tell: bearer key check, multipart parsing,
purpose check, WAV/MP3 and duration check (base_resp 2013 otherwise), ids in the real shape
(`vocal-<timestamp>-<random>`, `instrumental-<timestamp>-<random>`) and a trace_id. Faults can be
injected by share (5xx, 429 with Retry-After, base_resp 1002, dropped connections, hangs), and
limits can be set: requests per second (a sliding one-second window of accepted requests, 429
beyond it) and requests open at once (base_resp 1041 "connection limit", or 429, beyond it), so
retries, pacing, the window of requests in flight and timeouts are exercised for real.

With `--tls-cert FILE --tls-key FILE` it serves HTTPS (each record then names the connection it
came on, `conn`, so a test counts TLS handshakes as distinct connections).

State: the list of requests received, served at `GET /_sandbox/requests` and appended to `--log`
as JSON lines, so tests can count exactly what was sent. The upload body is streamed to a temporary
file, never held in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import random
import re
import secrets
import signal
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from pipeline.config import KEY_ENV
from pipeline.content.probe import CONTENT_TYPES, probe
from pipeline.core.errors import PermanentError
from pipeline.core.states import PURPOSES

UPLOAD_PATH = "/v2/generate/audio/minimax/upload"
DEMO_KEY = "sandbox-demo-key"
ACCEPTED_TYPES = {
    "wav": {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"},
    "mp3": {"audio/mpeg", "audio/mp3"},
}


@dataclasses.dataclass(frozen=True)
class Faults:
    """Shares of requests (0..1) that get each fault, tried in this order."""

    drop: float = 0.0  # connection closed without an answer
    hang: float = 0.0  # no answer until the client gives up
    error: float = 0.0  # HTTP 503
    throttle: float = 0.0  # HTTP 429 with Retry-After
    busy: float = 0.0  # HTTP 200 with base_resp 1002
    reject: float = 0.0  # HTTP 200 with base_resp 1026 (sensitive content): final
    retry_after: float = 1.0
    latency: float = 0.0  # seconds added to every answer
    max_rps: float | None = None  # requests per second beyond which 429 is answered
    max_in_flight: int | None = None  # requests open at once beyond which a refusal is answered
    in_flight_answer: int = 1041  # that refusal: base_resp 1041, or HTTP 429 with Retry-After


class Sandbox:
    def __init__(
        self, *, key: str, faults: Faults, seed: int | None = None, log_path: str | None = None
    ) -> None:
        self.key = key
        self.faults = faults
        self.rng = random.Random(seed)
        self.requests: list[dict[str, Any]] = []
        self._log_path = log_path
        self._window: collections.deque[float] = collections.deque()
        self._open = 0  # requests being answered now

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post(UPLOAD_PATH, self.upload)
        app.router.add_get("/_sandbox/requests", self.list_requests)
        return app

    async def list_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.requests)

    async def upload(self, request: web.Request) -> web.StreamResponse:
        record: dict[str, Any] = {"ts": time.time(), "peer": request.remote}
        if request.transport is not None:  # which connection: a new one is a new handshake
            peer = request.transport.get_extra_info("peername")
            record["conn"] = f"{peer[0]}:{peer[1]}" if peer else None
        self._open += 1
        try:
            return await self._upload(request, record)
        finally:
            self._open -= 1
            self._record(record)

    async def _upload(self, request: web.Request, record: dict[str, Any]) -> web.StreamResponse:
        if request.headers.get("Authorization", "") != f"Bearer {self.key}":
            record["outcome"] = "http 401"
            return web.json_response({"message": "Unauthorized: invalid API key"}, status=401)
        refusal = self._over_in_flight(record)
        if refusal is not None:
            return refusal
        if self._over_rate():
            record["outcome"] = "http 429 (rate)"
            return _retry_later(429, self.faults.retry_after)
        with tempfile.TemporaryDirectory(prefix="sandbox-") as folder:
            try:
                form = await _read_form(request, Path(folder))
            except ValueError as exc:
                record["outcome"] = "http 400"
                return web.json_response({"message": str(exc)}, status=400)
            record.update({k: v for k, v in form.items() if k != "path"})
            fault = await self._fault(request, record)
            if fault is not None:
                return fault
            if self.faults.latency:
                await asyncio.sleep(self.faults.latency)
            return self._answer(form, record)

    def _answer(self, form: Mapping[str, Any], record: dict[str, Any]) -> web.Response:
        trace_id = uuid.uuid4().hex
        purpose = form.get("purpose")
        if purpose not in PURPOSES:
            return self._base_resp(record, trace_id, 2013, f"invalid params: purpose {purpose!r}")
        if form.get("path") is None:
            return self._base_resp(record, trace_id, 2013, "invalid params: file is required")
        try:
            info = probe(form["path"])
        except PermanentError as exc:
            return self._base_resp(record, trace_id, 2013, f"invalid params: {exc.reason}")
        if form.get("content_type") not in ACCEPTED_TYPES[info.format]:
            return self._base_resp(
                record,
                trace_id,
                2013,
                f"invalid params: content type {form.get('content_type')!r} "
                f"does not match {CONTENT_TYPES[info.format]}",
            )
        stamp = time.strftime("%Y%m%d%H%M%S")
        body: dict[str, Any] = {"trace_id": trace_id}
        if purpose in ("song", "voice"):
            body["voice_id"] = f"vocal-{stamp}-{secrets.token_hex(4)}"
        if purpose in ("song", "instrumental"):
            body["instrumental_id"] = f"instrumental-{stamp}-{secrets.token_hex(4)}"
        body["base_resp"] = {"status_code": 0, "status_msg": "success"}
        record.update(
            outcome="ok",
            trace_id=trace_id,
            voice_id=body.get("voice_id"),
            instrumental_id=body.get("instrumental_id"),
        )
        return web.json_response(body)

    def _base_resp(
        self, record: dict[str, Any], trace_id: str, code: int, msg: str
    ) -> web.Response:
        record.update(outcome=f"base_resp {code}", trace_id=trace_id, status_msg=msg)
        return web.json_response(
            {"trace_id": trace_id, "base_resp": {"status_code": code, "status_msg": msg}}
        )

    async def _fault(self, request: web.Request, record: dict[str, Any]) -> web.Response | None:
        f, roll = self.faults, self.rng.random()
        name = ""
        for share, kind in (
            (f.drop, "drop"),
            (f.hang, "hang"),
            (f.error, "error"),
            (f.throttle, "throttle"),
            (f.busy, "busy"),
            (f.reject, "reject"),
        ):
            if roll < share:
                name = kind
                break
            roll -= share
        if not name:
            return None
        record["outcome"] = f"fault {name}"
        if name == "drop":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError()  # aiohttp drops the connection without answering
        if name == "hang":
            await asyncio.sleep(3600)
        if name == "error":
            return web.json_response({"message": "service unavailable"}, status=503)
        if name == "throttle":
            return _retry_later(429, f.retry_after)
        if name == "reject":
            return self._base_resp(record, uuid.uuid4().hex, 1026, "input new_sensitive")
        return web.json_response(
            {
                "trace_id": uuid.uuid4().hex,
                "base_resp": {"status_code": 1002, "status_msg": "rate limit"},
            }
        )

    def _over_in_flight(self, record: dict[str, Any]) -> web.Response | None:
        limit = self.faults.max_in_flight
        if limit is None or self._open <= limit:
            return None
        record["open"] = self._open
        if self.faults.in_flight_answer == 429:
            record["outcome"] = "http 429 (in flight)"
            return _retry_later(429, self.faults.retry_after)
        return self._base_resp(record, uuid.uuid4().hex, 1041, "connection limit (in flight)")

    def _over_rate(self) -> bool:
        if self.faults.max_rps is None:
            return False
        now = time.monotonic()
        while self._window and now - self._window[0] >= 1.0:
            self._window.popleft()
        if len(self._window) >= self.faults.max_rps:
            return True
        self._window.append(now)
        return False

    def _record(self, record: dict[str, Any]) -> None:
        record.setdefault("outcome", "aborted")
        self.requests.append(record)
        if self._log_path:
            with open(self._log_path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")


def _retry_later(status: int, seconds: float) -> web.Response:
    return web.json_response(
        {"message": "too many requests"}, status=status, headers={"Retry-After": f"{seconds:g}"}
    )


async def _read_form(request: web.Request, folder: Path) -> dict[str, Any]:
    """The multipart form: `purpose`, and `file` streamed to disk with its sha256."""
    if not request.content_type.startswith("multipart/"):
        raise ValueError("expected multipart/form-data")
    form: dict[str, Any] = {}
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "purpose":
            form["purpose"] = (await part.text()).strip()
        elif part.name == "file":
            path = folder / "upload"
            digest, size = hashlib.sha256(), 0
            with path.open("wb") as out:
                while chunk := await part.read_chunk(1 << 20):  # few passes of the parser
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            form.update(
                path=path,
                filename=part.filename,
                filename_sent=_sent_filename(part.headers.get("Content-Disposition", "")),
                sha256=digest.hexdigest(),
                size=size,
                content_type=part.headers.get("Content-Type"),
            )
    return form


_FILENAME = re.compile(r'\bfilename="(.*)"\s*$', re.DOTALL)


def _sent_filename(disposition: str) -> str | None:
    """The file name exactly as it is between the quotes on the wire (aiohttp's reader drops
    each backslash and keeps `%22`: what a given server makes of it differs)."""
    match = _FILENAME.search(disposition)
    return match.group(1) if match else None


def serve(args: argparse.Namespace, *, environ: Mapping[str, str]) -> int:
    faults = Faults(
        drop=args.drop_rate,
        hang=args.hang_rate,
        error=args.error_rate,
        throttle=args.throttle_rate,
        busy=args.busy_rate,
        reject=args.reject_rate,
        retry_after=args.retry_after,
        latency=args.latency,
        max_rps=args.max_rps,
        max_in_flight=args.max_in_flight,
        in_flight_answer=args.in_flight_answer,
    )
    sandbox = Sandbox(
        key=environ.get(KEY_ENV) or DEMO_KEY, faults=faults, seed=args.seed, log_path=args.log
    )
    try:
        tls = _tls(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        print(f"ingest sandbox: cannot use --tls-cert/--tls-key: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(sandbox, args.host, args.port, tls))
    except OSError as exc:
        print(
            f"ingest sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    return 0


def _tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server's TLS context from a PEM certificate (chain) and its key; None: plain HTTP."""
    if cert is None and key is None:
        return None
    if cert is None:
        raise OSError("--tls-key needs --tls-cert")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def _serve(sandbox: Sandbox, host: str, port: int, tls: ssl.SSLContext | None) -> None:
    runner = web.AppRunner(sandbox.app(), access_log=None, handle_signals=False)
    await runner.setup()
    # shutdown_timeout: hung requests end at once
    site = web.TCPSite(runner, host, port, shutdown_timeout=1.0, ssl_context=tls)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    scheme = "https" if tls is not None else "http"
    print(f"sandbox listening on {scheme}://{host}:{bound}{UPLOAD_PATH}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()


__all__ = ["DEMO_KEY", "Faults", "Sandbox", "UPLOAD_PATH", "serve"]
