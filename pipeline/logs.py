"""Logging set-up: plain lines or JSON lines on stderr, and a filter that masks the API key.

The key is never put in a message on purpose; the filter is a second line of defence for text that
comes from elsewhere (a library's exception text, say).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from pipeline.config import Secret


class RedactKey(logging.Filter):
    def __init__(self, key: Secret | None) -> None:
        super().__init__()
        self._value = key.reveal() if key is not None else ""

    def filter(self, record: logging.LogRecord) -> bool:
        if self._value:
            message = record.getMessage()
            if self._value in message:
                record.msg = message.replace(self._value, "***")
                record.args = None
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


def configure(level: str, fmt: str, key: Secret | None) -> None:
    handler = _StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    handler.addFilter(RedactKey(key))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries stay quiet unless asked for debug.
    for name in ("aiohttp", "sqlalchemy", "alembic", "aiosqlite", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING)
