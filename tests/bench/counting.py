"""`ingest` run in-process with counters that cannot be had from outside: thread hops (work sent
to the default executor, and calls into aiosqlite's connection thread), SQL statements by kind
with their rows and latency, and log records made. For the profile report, not for `make bench`:
the patches cost time themselves.

    python -m tests.bench.counting OUT.json run SOURCE --db ... (any `ingest` arguments)
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite.core
from sqlalchemy import event
from sqlalchemy.engine import Engine


@dataclasses.dataclass
class Counters:
    executor: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    aiosqlite_calls: int = 0
    statements: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    statement_rows: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    statement_seconds: collections.defaultdict[str, float] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(float)
    )
    log_records: int = 0
    started: dict[int, float] = dataclasses.field(default_factory=dict)


COUNT = Counters()


def _caller() -> str:
    """The first frame outside asyncio and this module that sent work to the executor."""
    for frame in reversed(traceback.extract_stack(limit=12)[:-2]):
        if "/asyncio/" not in frame.filename and "counting.py" not in frame.filename:
            return f"{Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.name}"
    return "?"


def _patch_executor() -> None:
    original = asyncio.BaseEventLoop.run_in_executor

    def run_in_executor(self: Any, executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        COUNT.executor[_caller()] += 1
        return original(self, executor, func, *args)

    asyncio.BaseEventLoop.run_in_executor = run_in_executor  # type: ignore[method-assign,assignment]


def _patch_aiosqlite() -> None:
    original: Any = aiosqlite.core.Connection._execute

    async def _execute(self: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        COUNT.aiosqlite_calls += 1
        return await original(self, fn, *args, **kwargs)

    aiosqlite.core.Connection._execute = _execute  # type: ignore[method-assign]


def _kind(statement: str) -> str:
    words = statement.split()
    head = " ".join(words[:3]).lower() if words else "?"
    return head.replace('"', "")[:40]


def _listen_sql() -> None:
    @event.listens_for(Engine, "before_cursor_execute")
    def before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        COUNT.started[id(cursor)] = time.perf_counter()

    @event.listens_for(Engine, "after_cursor_execute")
    def after(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        kind = _kind(statement) + (" (many)" if many else "")
        COUNT.statements[kind] += 1
        COUNT.statement_rows[kind] += len(params) if many else 1
        COUNT.statement_seconds[kind] += time.perf_counter() - COUNT.started.pop(id(cursor), 0)


def _count_logs() -> None:
    original = logging.Logger.makeRecord

    def make_record(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        COUNT.log_records += 1
        return original(self, *args, **kwargs)

    logging.Logger.makeRecord = make_record  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    out, args = Path(argv[0]), argv[1:]
    _patch_executor()
    _patch_aiosqlite()
    _listen_sql()
    _count_logs()
    from pipeline.cli import main as ingest_main

    started = time.perf_counter()
    try:
        code = ingest_main(args)
    finally:
        report = {f.name: getattr(COUNT, f.name) for f in dataclasses.fields(COUNT)}
        report.pop("started")
        report["seconds"] = time.perf_counter() - started
        out.write_text(json.dumps(report, indent=1))
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
