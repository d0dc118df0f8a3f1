"""The service's answers judged: an HTTP status and a `base_resp` turned into ids or a typed
error, with nothing of the network in it.

Both failure channels are checked: the HTTP status, and `base_resp.status_code` inside an HTTP
200. Everything here is pure, so every kind of answer is unit-tested without a network; the
client (`pipeline.transport.client`) reads the answer into a `Reply` and hands it here.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import html
import json
import re
import time
from typing import Any

from pipeline.core.errors import PermanentError, RunFatal, Slowdown, TransientError
from pipeline.core.records import UploadResult

MAX_REPLY_BYTES = 1 << 20

# base_resp codes, as documented by MiniMax.
TRANSIENT_CODES = {
    1000: "unknown error",
    1001: "timeout",
    1002: "rate limited",
    1024: "internal error",
    1033: "system busy",
    1039: "token limit",
    1041: "connection limit",
    2045: "rate growth limited",
}
# Codes that ask us to slow down, and what to slow: the pace, or the requests open at once.
SLOWDOWN_CODES: dict[int, Slowdown] = {
    1002: "rate",
    1039: "rate",
    2045: "rate",
    1041: "concurrency",
}
FATAL_CODES = {
    1004: "the API key was refused (1004): check AIMLAPI_API_KEY",
    1008: "the account has no balance left (1008): top up the account",
    2049: "the API key is invalid (2049): check AIMLAPI_API_KEY",
    2056: "the account's usage limit is reached (2056): raise the limit or wait",
}
FATAL_HTTP = {
    401: "the API key was refused (HTTP 401): check AIMLAPI_API_KEY",
    403: "the account is out of credits or not allowed (HTTP 403): check the account",
}
PROXY_AUTH = (
    "a proxy asked for credentials (HTTP 407): check the user and password of the proxy URL "
    "(--proxy, https_proxy, http_proxy)"
)
TRANSIENT_HTTP = frozenset({408, 425, 429})


def transient_status(status: int) -> bool:
    """Whether an HTTP status is worth retrying: 408, 425, 429 and every 5xx."""
    return status in TRANSIENT_HTTP or status >= 500


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds)


@dataclasses.dataclass(frozen=True)
class Reply:
    """An HTTP answer, read (at most MAX_REPLY_BYTES of it) and ready to be judged."""

    status: int
    content_type: str
    raw: bytes
    retry_after: float | None = None

    @functools.cached_property
    def json(self) -> Any:
        try:
            return json.loads(self.raw)
        except ValueError:
            return None

    @property
    def trace_id(self) -> str | None:
        body = self.json
        value = body.get("trace_id") if isinstance(body, dict) else None
        return str(value) if value else None

    @property
    def base_resp_code(self) -> str:
        """`base_resp.status_code` as sent, for a log line; `-` when there is none."""
        body = self.json
        base = body.get("base_resp") if isinstance(body, dict) else None
        code = base.get("status_code") if isinstance(base, dict) else None
        return "-" if code is None else str(code)

    def message(self) -> str:
        """What the service said, from the JSON body's usual places."""
        body = self.json
        if not isinstance(body, dict):
            return ""
        base = body.get("base_resp")
        if isinstance(base, dict) and base.get("status_msg"):
            return str(base["status_msg"])
        for key in ("message", "error", "detail", "status_msg"):
            if body.get(key):
                value = body[key]
                return str(value.get("message", value) if isinstance(value, dict) else value)
        return ""

    def foreign(self) -> str | None:
        """When the body is not the service's JSON (a proxy's, CDN's or firewall's page): what
        it is, e.g. `a text/html page titled "Attention Required! | Cloudflare"`."""
        if self.json is not None or not self.raw.strip():
            return None if self.json is not None else f"an empty {self.content_type} body"
        text = self.raw[:65536].decode("utf-8", "replace")
        title = _TITLE.search(text)
        if title:
            return f'a {self.content_type} page titled "{_clip(title.group(1))}"'
        line = next((ln for ln in _TAGS.sub(" ", text).splitlines() if ln.strip()), "")
        return f'a {self.content_type} body starting "{_clip(line)}"'


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]*>")


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(html.unescape(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def classify_http(reply: Reply, *, size: int | None = None) -> Exception | None:
    """The error an HTTP status means, or None for 2xx (then base_resp decides)."""
    status = reply.status
    if 200 <= status < 300:
        return None
    foreign = reply.foreign()
    detail = reply.message() or (f"answered by {foreign}" if foreign else "")
    said = f"HTTP {status}" + (f": {detail}" if detail else "")
    trace = reply.trace_id
    if status == 407:  # only a proxy asks this, whatever page it sends with it
        return RunFatal(PROXY_AUTH)
    if status in FATAL_HTTP:
        if foreign is not None:
            return RunFatal(
                f"HTTP {status} from something in front of the service ({foreign}): a proxy, "
                "CDN or firewall refused the request; no upload can pass until that is fixed"
            )
        return RunFatal(FATAL_HTTP[status] + (f" ({detail})" if detail else ""))
    if status == 413:
        sent = f"of {size / 1e6:.1f} MB " if size is not None else ""
        return PermanentError(
            f"HTTP 413: the service or a proxy in front of it refused the upload {sent}as too "
            f"large" + (f" ({detail})" if detail else ""),
            trace_id=trace,
        )
    if transient_status(status):
        slowdown: Slowdown | None = "rate" if status == 429 else None
        return TransientError(
            said,
            retry_after=reply.retry_after,
            slowdown=slowdown,
            unreachable=status >= 500,
            trace_id=trace,
        )
    return PermanentError(said, trace_id=trace)


def classify_base_resp(reply: Reply) -> Exception | None:
    """The error a 2xx reply's base_resp carries, or None when status_code is 0."""
    body = reply.json
    if not isinstance(body, dict):
        what = reply.foreign() or "a JSON value that is not an object"
        return TransientError(f"unexpected reply: {what}")
    base = body.get("base_resp")
    if not isinstance(base, dict):
        if body.get("voice_id") or body.get("instrumental_id"):
            return None  # ids without base_resp: the ids are what counts (result_from checks)
        return TransientError("unexpected reply: no base_resp", trace_id=reply.trace_id)
    try:
        code = int(base.get("status_code", -1))
    except (TypeError, ValueError):
        shown = base.get("status_code")
        return TransientError(
            f"unexpected reply: base_resp status_code {shown!r}", trace_id=reply.trace_id
        )
    return None if code == 0 else _base_resp_error(code, str(base.get("status_msg") or ""), reply)


def _base_resp_error(code: int, msg: str, reply: Reply) -> Exception:
    said = f"base_resp {code}" + (f": {msg}" if msg else "")
    if code in FATAL_CODES:
        return RunFatal(FATAL_CODES[code] + (f" ({msg})" if msg else ""))
    if code in TRANSIENT_CODES:
        return TransientError(
            said,
            retry_after=reply.retry_after,
            slowdown=SLOWDOWN_CODES.get(code),
            trace_id=reply.trace_id,
        )
    return PermanentError(said, trace_id=reply.trace_id)


def result_from(body: dict[str, Any], purpose: str) -> UploadResult:
    """Ids from a successful reply; a reply without the ids its purpose promises is an error."""
    voice_id = body.get("voice_id") or None
    instrumental_id = body.get("instrumental_id") or None
    trace_id = body.get("trace_id") or None
    need_voice = purpose in ("song", "voice")
    need_instrumental = purpose in ("song", "instrumental")
    if (need_voice and not voice_id) or (need_instrumental and not instrumental_id):
        raise TransientError(
            f"reply without the ids a {purpose} upload returns", trace_id=trace_id or None
        )
    return UploadResult(
        voice_id=str(voice_id) if voice_id else None,
        instrumental_id=str(instrumental_id) if instrumental_id else None,
        trace_id=str(trace_id) if trace_id else None,
    )
