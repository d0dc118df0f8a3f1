"""`ingest status`, `ingest export` and `ingest db`: commands that read the ledger (or only
bring its schema up to date), never creating one where there was none."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline.config import Settings
from pipeline.core.errors import UsageError
from pipeline.core.exits import Exit
from pipeline.ledger import Location, open_ledger
from pipeline.ledger.figures import Figures, read_async, read_sqlite
from pipeline.ledger.files import check_file
from pipeline.ledger.plain import EXPORT_COLUMNS
from pipeline.output.export import Exporter
from pipeline.output.status import render_status, status_data

if TYPE_CHECKING:
    from pipeline.ledger.repository import RunLedger


def _require_existing(location: Location) -> None:
    """Commands that only read never create a ledger."""
    path = location.path
    if path is not None and not path.exists():
        raise UsageError(f"no ledger at {path} (run `ingest run` first, or pass --db)")


async def _open_existing(settings: Settings) -> RunLedger:
    _require_existing(settings.db)
    return await open_ledger(settings.db)


def status_at_once(settings: Settings, *, as_json: bool = False) -> int | None:
    """`ingest status` of an SQLite ledger at the newest schema, read with no event loop and no
    SQLAlchemy; None when the ledger must be opened the usual way (`status`)."""
    _require_existing(settings.db)
    figures = read_sqlite(settings.db) if settings.db.path is not None else None
    return None if figures is None else _show(settings, figures, as_json)


async def status(settings: Settings, *, as_json: bool = False) -> int:
    code = status_at_once(settings, as_json=as_json)
    return code if code is not None else _show(settings, await _read_figures(settings), as_json)


def _show(settings: Settings, figures: Figures, as_json: bool) -> int:
    data = status_data(
        figures.counts,
        figures.runs,
        figures.errors,
        ledger=settings.db.shown,
        running=figures.running,
        now=figures.now,
        converted=figures.converted,
    )
    if as_json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(render_status(data))
    return Exit.OK


async def _read_figures(settings: Settings) -> Figures:
    """Through the async engine: a PostgreSQL ledger, or one that needs an upgrade first."""
    ledger = await _open_existing(settings)
    try:
        return await read_async(ledger)
    finally:
        await ledger.close()


async def export(
    settings: Settings,
    *,
    fmt: str,
    status: str | None,
    output: str | None,
    force: bool,
    excel: bool = False,
) -> int:
    """One record per source. `excel`: CSV with a UTF-8 byte-order mark and CRLF line ends,
    so that Excel opens it with accents intact."""
    if excel:
        fmt = "csv"
    if output is not None and os.path.exists(output) and not force:
        raise UsageError(f"{output} exists; pass --force to replace it")
    from pipeline.ledger import export as ledger_export  # the async stack: not for `status`

    ledger = await _open_existing(settings)
    try:
        extra_columns = await ledger_export.extra_columns(ledger) if fmt == "csv" else []
        end = "\r\n" if excel else "\n"
        exporter = Exporter(fmt, EXPORT_COLUMNS, extra_columns, end=end)
        with _writer(output) as out:
            if excel:
                out.write("\ufeff")  # the byte-order mark that makes Excel read UTF-8
            out.write(exporter.header())
            fast = fmt == "jsonl" and await ledger_export.json_lines(
                ledger, out.write, status, end=end
            )
            if not fast:
                await ledger_export.export_to(
                    ledger, lambda batch: out.write(exporter.text(batch)), status
                )
    finally:
        await ledger.close()
    return Exit.OK


@contextlib.contextmanager
def _writer(output: str | None) -> Iterator[TextIO]:
    """stdout, or a file written beside its target and renamed into place when complete."""
    if output is None:
        yield sys.stdout
        return
    target = Path(output)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


async def db(settings: Settings, action: str) -> int:
    if action == "upgrade":
        from pipeline.ledger import migrate  # Alembic: loaded only where it is needed
        from pipeline.ledger.lock import held  # asyncio: not for `status`

        check_file(settings.db)
        async with held(settings.db, wait=False):
            revision = await migrate.upgrade(settings.db, check=False)
        print(f"ledger at revision {revision}")
        return Exit.OK
    _require_existing(settings.db)
    from pipeline.ledger import migrate

    at, head = await migrate.current(settings.db)
    state = "up to date" if at == head else f"`ingest db upgrade` brings it to {head}"
    print(f"ledger at revision {at or '(empty)'}; {state}")
    return Exit.OK
