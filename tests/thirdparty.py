"""A second stand-in for the upload API, on another HTTP stack than the client's.

The sandbox (`pipeline/sandbox/server.py`) is written with aiohttp, like the client, so whatever
aiohttp writes, it also reads back. This server is Werkzeug's threaded WSGI server, and every upload
body is read three ways (`tests.multipart_readers`): split by hand from the raw bytes (each part's
`Content-Disposition` kept exactly as sent), by Werkzeug's multipart decoder and by
python-multipart's form parser. What each one saw is kept per request and served as JSON at `GET
/_thirdparty/requests`.

It answers like the service: the bearer key is checked (`AIMLAPI_API_KEY`, default
`sandbox-demo-key`), the purpose too (`base_resp` 2013 otherwise), and ids come in the real shape
(`vocal-<14 digits>-<8 hex>`, `instrumental-<14 digits>-<8 hex>`) with a `trace_id` and
`base_resp`. The audio itself is not judged. `--mode` makes it answer instead the way the things
in front of a real service do, to every upload:

    cdn-403      Cloudflare's HTML "Attention Required!" page: a firewall rule blocked the request
    nginx-413    nginx's HTML "413 Request Entity Too Large" (its client_max_body_size), sent
                 as nginx does, from the Content-Length alone, the body left unread
    gateway-502  nginx's HTML "502 Bad Gateway": the service behind it is down
    no-credits   the service's own JSON 403: the account is out of credits

With `--hold`, each upload's body is left unread (the client soon blocks, its socket buffers full)
until `POST /_thirdparty/release`; `GET /_thirdparty/held` counts the uploads waiting. Tests use
it to change a file while its upload is surely in flight.

Run it as `python -m tests.thirdparty --port 0 [--mode M] [--hold]`: it prints one line,
`thirdparty listening on URL`, URL being the upload endpoint. `running()` does that for tests.
State: the list of requests, in memory. Bodies are held in memory whole: test-sized uploads only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from werkzeug.exceptions import ClientDisconnected
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.multipart_readers import read_upload
from tests.processes import stop_process

UPLOAD_PATH = "/v2/generate/audio/minimax/upload"
REQUESTS_PATH = "/_thirdparty/requests"
HELD_PATH = "/_thirdparty/held"
RELEASE_PATH = "/_thirdparty/release"
KEY_ENV = "AIMLAPI_API_KEY"
DEMO_KEY = "sandbox-demo-key"
PURPOSES = ("song", "voice", "instrumental")
MODES = ("ok", "cdn-403", "nginx-413", "gateway-502", "no-credits")
BANNER = "thirdparty listening on "
ROOT = Path(__file__).resolve().parents[1]

# --- the service ---------------------------------------------------------------------------------

CLOUDFLARE_403 = """<!DOCTYPE html>
<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->
<!--[if gt IE 8]><!--> <html class="no-js" lang="en-US"> <!--<![endif]-->
<head>
<title>Attention Required! | Cloudflare</title>
<meta charset="UTF-8" />
<meta name="robots" content="noindex, nofollow" />
<link rel="stylesheet" id="cf_styles-css" href="/cdn-cgi/styles/cf.errors.css" />
</head>
<body>
  <div id="cf-wrapper">
    <div id="cf-error-details" class="cf-error-details-wrapper">
      <h1 data-translate="block_headline">Sorry, you have been blocked</h1>
      <h2 class="cf-subheadline">You are unable to access api.example</h2>
      <p>This website is using a security service to protect itself from online attacks.</p>
      <span class="cf-footer-item">Cloudflare Ray ID: <strong>{ray}</strong></span>
    </div>
  </div>
</body>
</html>
"""


def nginx_page(status: str) -> str:
    return (
        f"<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )


class ThirdParty:
    """The WSGI application: records each request, answers as the service or as `mode` says."""

    def __init__(self, *, key: str, mode: str = "ok", hold: bool = False) -> None:
        self.key = key
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self.held = 0
        self._lock = threading.Lock()
        self._released = threading.Event()
        if not hold:
            self._released.set()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        if request.path == REQUESTS_PATH and request.method == "GET":
            with self._lock:
                response = _json(200, list(self.requests))
        elif request.path == HELD_PATH and request.method == "GET":
            response = _json(200, {"held": self.held})
        elif request.path == RELEASE_PATH and request.method == "POST":
            self._released.set()
            response = _json(200, {"released": self.held})
        elif request.path == UPLOAD_PATH and request.method == "POST":
            response = self._upload(request)
        else:
            response = _json(404, {"message": f"Cannot {request.method} {request.path}"})
        return response(environ, start_response)

    def _upload(self, request: Request) -> Response:
        record: dict[str, Any] = {"ts": time.time(), "mode": self.mode}
        try:
            response = self._answer(request, record)
        except ClientDisconnected:
            record["outcome"] = "incomplete: the client went away before the body ended"
            response = _json(400, {"message": "incomplete body"})
        with self._lock:
            self.requests.append(record)
        return response

    def _answer(self, request: Request, record: dict[str, Any]) -> Response:
        if not self._released.is_set():
            with self._lock:
                self.held += 1
            self._released.wait(60)
        content_type = request.headers.get("Content-Type", "")
        record.update(content_type=content_type, authorized=self._authorized(request))
        record["content_length"] = request.content_length
        if self.mode == "nginx-413":  # judged on Content-Length, before a byte of the body is read
            return self._proxy_answer(record)
        body = _read_body(request, record)
        try:
            parts = read_upload(body, content_type)
        except ValueError as exc:
            record.update(outcome="unreadable", error=str(exc))
            return _json(400, {"message": f"unreadable multipart body: {exc}"})
        record.update(parts=parts, **_form(parts))
        if self.mode != "ok":
            return self._proxy_answer(record)
        if not record["authorized"]:
            record["outcome"] = "http 401"
            return _json(401, {"message": "Unauthorized", "statusCode": 401})
        return self._service_answer(record)

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.key}"

    def _proxy_answer(self, record: dict[str, Any]) -> Response:
        record["outcome"] = self.mode
        if self.mode == "cdn-403":
            page = CLOUDFLARE_403.replace("{ray}", secrets.token_hex(8))
            headers = {"Server": "cloudflare", "CF-RAY": f"{secrets.token_hex(8)}-AMS"}
            return _html(403, page, headers)
        if self.mode == "nginx-413":
            return _html(413, nginx_page("413 Request Entity Too Large"), {"Server": "nginx"})
        if self.mode == "gateway-502":
            return _html(502, nginx_page("502 Bad Gateway"), {"Server": "nginx"})
        if not record["authorized"]:
            record["outcome"] = "http 401"
            return _json(401, {"message": "Unauthorized", "statusCode": 401})
        return _json(
            403,
            {
                "message": "Insufficient credits: top up your balance to continue",
                "path": UPLOAD_PATH,
                "requestId": str(uuid.uuid4()),
                "statusCode": 403,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            },
        )

    def _service_answer(self, record: dict[str, Any]) -> Response:
        trace_id = uuid.uuid4().hex
        purpose, file = record.get("purpose"), record.get("file")
        problem = None
        if purpose not in PURPOSES:
            problem = f"invalid params: purpose {purpose!r}"
        elif file is None:
            problem = "invalid params: file is required"
        if problem is not None:
            record.update(outcome="base_resp 2013", trace_id=trace_id, status_msg=problem)
            base = {"status_code": 2013, "status_msg": problem}
            return _json(200, {"trace_id": trace_id, "base_resp": base})
        stamp = time.strftime("%Y%m%d%H%M%S")
        answer: dict[str, Any] = {"trace_id": trace_id}
        if purpose in ("song", "voice"):
            answer["voice_id"] = f"vocal-{stamp}-{secrets.token_hex(4)}"
        if purpose in ("song", "instrumental"):
            answer["instrumental_id"] = f"instrumental-{stamp}-{secrets.token_hex(4)}"
        answer["base_resp"] = {"status_code": 0, "status_msg": "success"}
        record.update(outcome="ok", **{k: v for k, v in answer.items() if k != "base_resp"})
        return _json(200, answer)


def _read_body(request: Request, record: dict[str, Any]) -> bytes:
    """The whole body; ClientDisconnected (counted in `record`) when it ends before its
    Content-Length."""
    chunks: list[bytes] = []
    record["received"] = 0
    while chunk := request.stream.read(1 << 16):
        chunks.append(chunk)
        record["received"] += len(chunk)
    return b"".join(chunks)


def _form(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The form's `purpose` and its `file` part, as Werkzeug read them."""
    form: dict[str, Any] = {}
    for part in parts:
        if part["name"] == "file" and part["filename_werkzeug"] is not None:
            form["file"] = part
        elif part["name"] == "purpose" and part["filename_werkzeug"] is None:
            form["purpose"] = part["value"]
    return form


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _html(status: int, page: str, headers: dict[str, str]) -> Response:
    return Response(page, status=status, content_type="text/html; charset=UTF-8", headers=headers)


# --- running it ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.thirdparty", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--hold", action="store_true", help="leave bodies unread until released")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on stderr
    key = os.environ.get(KEY_ENV) or DEMO_KEY
    app = ThirdParty(key=key, mode=args.mode, hold=args.hold)
    server = make_server(args.host, args.port, app, threaded=True)
    print(f"{BANNER}http://{args.host}:{server.server_port}{UPLOAD_PATH}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


@dataclasses.dataclass
class ThirdPartyServer:
    url: str  # the upload endpoint
    process: subprocess.Popen[str]

    @property
    def base(self) -> str:
        return self.url.split("/v2/", 1)[0]

    def requests(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.base + REQUESTS_PATH, timeout=10) as resp:
            return list(json.load(resp))

    def uploads(self) -> list[dict[str, Any]]:
        """The file parts of the uploads the service accepted."""
        return [r["file"] for r in self.requests() if r.get("outcome") == "ok"]

    def held(self) -> int:
        with urllib.request.urlopen(self.base + HELD_PATH, timeout=10) as resp:
            return int(json.load(resp)["held"])

    def release(self) -> None:
        request = urllib.request.Request(self.base + RELEASE_PATH, method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


@contextlib.contextmanager
def running(
    *, mode: str = "ok", key: str = DEMO_KEY, hold: bool = False
) -> Iterator[ThirdPartyServer]:
    """The server as a subprocess on a free loopback port, for the length of the block."""
    flags = ["--hold"] if hold else []
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.thirdparty", "--port", "0", "--mode", mode, *flags],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, KEY_ENV: key},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().strip()
        assert banner.startswith(BANNER), banner
        yield ThirdPartyServer(url=banner.removeprefix(BANNER), process=process)
    finally:
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
