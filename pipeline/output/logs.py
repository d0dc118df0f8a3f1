"""Logging set-up: plain lines or JSON lines on stderr, and a filter that masks secrets.

The key (and a database or proxy password) is never put in a message on purpose; the filter is
a second line of defence for text that comes from elsewhere (a library's exception text, say).
It masks a secret only where it stands as a whole token, so a short or unlucky key never stars
letters inside paths and words, and it hides the user and password of any URL in a line
(`http://***:***@proxy:3128`), where a password is not a token of its own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

from pipeline.core.secret import Secret, hide_credentials

SHORTEST_REAL_KEY = 16  # characters; anything shorter is a typo or a placeholder


# Characters that continue a token: a secret next to one of these is part of a longer word, path
# or URL (`/music/a/track.wav` holds no key "a"), and is left alone.
_TOKEN_CHARS = r"\w\-./\\~+%@"


def token_pattern(secrets: list[str]) -> re.Pattern[str] | None:
    """Matches any of `secrets` where it stands as a whole token: delimited by spaces, quotes,
    `=`, `&`, `:`, brackets or the ends of the line, not inside a word, path or URL."""
    values = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not values:
        return None
    alternatives = "|".join(re.escape(v) for v in values)
    return re.compile(rf"(?<![{_TOKEN_CHARS}])(?:{alternatives})(?![{_TOKEN_CHARS}])")


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[Secret]) -> None:
        super().__init__()
        self._pattern = token_pattern([s.reveal() for s in secrets])

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = hide_credentials(message) if "@" in message else message
        if self._pattern is not None:
            masked = self._pattern.sub("***", masked)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is *now*: the progress display swaps it for a proxy that
    prints log lines above the bar."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(level: str, fmt: str, secrets: list[Secret]) -> None:
    handler = _StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries stay quiet unless asked for debug.
    for name in ("aiohttp", "sqlalchemy", "alembic", "aiosqlite", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING)
