"""Create and upgrade the ledger schema with Alembic, refusing anything that is not ours.

Checks happen before anything is written: a file that is not SQLite, an SQLite database with
someone else's tables, or a ledger from a newer schema is refused with `LedgerError` and left
exactly as it was. Blocking (Alembic is synchronous): call through `asyncio.to_thread`.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError

from pipeline.errors import LedgerError

SQLITE_HEADER = b"SQLite format 3\x00"


def migrations_dir() -> Path:
    """`pipeline/_migrations` in an installed wheel, `migrations/` in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "_migrations"
    return packaged if packaged.is_dir() else package.parent / "migrations"


def alembic_config(sync_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", sync_url.replace("%", "%%"))
    return cfg


def sync_url(url: str) -> str:
    """The synchronous driver's URL for an async one (Alembic runs synchronously)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise LedgerError(f"not a database URL: {url!r}") from exc
    driver = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}
    return parsed.set(drivername=driver.get(parsed.drivername, parsed.drivername)).render_as_string(
        hide_password=False
    )


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def check_sqlite_file(path: Path) -> None:
    """Refuse, without touching it, a path that cannot be, or is not, an ingest ledger file."""
    if path.is_dir():
        raise LedgerError(f"ledger {path} is a folder, not a file")
    if not path.exists():
        folder = path.parent
        if not folder.is_dir():
            raise LedgerError(f"cannot create ledger {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise LedgerError(f"cannot create ledger {path}: folder {folder} is not writable")
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc.strerror or exc}") from exc
    if header and header != SQLITE_HEADER:
        raise LedgerError(f"{path} is not an ingest ledger (not an SQLite file); left untouched")
    if not os.access(path, os.W_OK):
        raise LedgerError(f"ledger {path} is not writable")


def upgrade(url: str) -> str:
    """Bring the ledger at `url` to the newest schema; return the revision it is now at."""
    path = sqlite_path(url)
    if path is not None:
        check_sqlite_file(path)
    cfg = alembic_config(sync_url(url))
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            current = _check_ours(conn, script, url)
            if current != head:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    except DatabaseError as exc:
        raise LedgerError(f"ledger {_shown(url)} cannot be used: {exc.orig}") from exc
    finally:
        engine.dispose()
    return str(head)


def current(url: str) -> tuple[str | None, str]:
    """(the ledger's revision, the newest this ingest knows), reading only."""
    path = sqlite_path(url)
    if path is not None:
        check_sqlite_file(path)
    cfg = alembic_config(sync_url(url))
    script = ScriptDirectory.from_config(cfg)
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            revision = _check_ours(conn, script, url)
    except DatabaseError as exc:
        raise LedgerError(f"ledger {_shown(url)} cannot be used: {exc.orig}") from exc
    finally:
        engine.dispose()
    return revision, str(script.get_current_head())


def _check_ours(conn: Connection, script: ScriptDirectory, url: str) -> str | None:
    tables = set(inspect(conn).get_table_names())
    current = MigrationContext.configure(conn).get_current_revision()
    if tables and "alembic_version" not in tables:
        listed = ", ".join(sorted(tables)[:5])
        raise LedgerError(
            f"{_shown(url)} is not an ingest ledger (it holds other tables: {listed}); "
            "left untouched"
        )
    if current is not None:
        try:
            known = script.get_revision(current)
        except CommandError:
            known = None
        if known is None:
            raise LedgerError(
                f"ledger {_shown(url)} has schema {current}, newer than this ingest knows "
                f"({script.get_current_head()}); upgrade ingest. The ledger was left untouched"
            )
    return current


def _shown(url: str) -> str:
    path = sqlite_path(url)
    return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)
