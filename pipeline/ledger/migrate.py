"""Create and upgrade the ledger schema with Alembic, refusing anything that is not ours.

Checks happen before anything is written: a file that is not SQLite, a database with someone
else's tables, or a ledger from a newer schema is refused with `LedgerError` and left exactly as
it was. The whole upgrade is one transaction (SQLite's DDL is transactional once the driver stops
committing on its own, see `engines._sqlite_connect`), so a kill at any moment leaves either
the old schema or the new one. A ledger that an older ingest left half-created (its tables, all
empty, and no version) is recognised and built again from scratch.

Alembic is synchronous; it runs on the async engine's connection through `run_sync`. Opening a
ledger comes here only when there is something to decide: a ledger at the newest schema, or a
database with no tables at all, is made ready by `schema.ready` without loading Alembic.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import func, inspect, select, table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from pipeline.core.errors import LedgerError
from pipeline.ledger.engines import create_engine_for
from pipeline.ledger.files import check_file
from pipeline.ledger.location import Location, parse_location
from pipeline.ledger.plain import OUR_TABLES


def migrations_dir() -> Path:
    """`pipeline/_migrations` in an installed wheel, `migrations/` in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "_migrations"
    return packaged if packaged.is_dir() else package.parent / "migrations"


def _script() -> tuple[Config, ScriptDirectory]:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg, ScriptDirectory.from_config(cfg)


async def upgrade(where: Location | str, *, check: bool = True) -> str:
    """Bring the ledger to the newest schema; return the revision it is now at. `check=False`
    when the caller has already run `check_file`."""
    location = parse_location(where)
    if check:
        check_file(location)
    cfg, script = _script()
    engine = create_engine_for(location, checking=True)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, cfg, script, location)
    except DBAPIError as exc:
        raise LedgerError(f"ledger {location} cannot be used: {exc.orig}") from exc
    finally:
        await engine.dispose()
    return str(script.get_current_head())


def _upgrade(conn: Connection, cfg: Config, script: ScriptDirectory, location: Location) -> None:
    current = _check_ours(conn, script, location)
    if current is None:
        _clear_half_created(conn)
    if current != script.get_current_head():
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


async def current(where: Location | str) -> tuple[str | None, str]:
    """(the ledger's revision, the newest this ingest knows), reading only."""
    location = parse_location(where)
    check_file(location)
    _, script = _script()
    engine = create_engine_for(location, checking=True)
    try:
        async with engine.connect() as conn:
            revision = await conn.run_sync(_check_ours, script, location)
    except DBAPIError as exc:
        raise LedgerError(f"ledger {location} cannot be used: {exc.orig}") from exc
    finally:
        await engine.dispose()
    return revision, str(script.get_current_head())


def _check_ours(conn: Connection, script: ScriptDirectory, location: Location) -> str | None:
    tables = set(inspect(conn).get_table_names())
    if tables - OUR_TABLES:
        listed = ", ".join(sorted(tables - OUR_TABLES)[:5])
        raise LedgerError(
            f"{location} is not an ingest ledger (it holds other tables: {listed}); left untouched"
        )
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is not None and _unknown(script, revision):
        raise LedgerError(
            f"ledger {location} has schema {revision}, newer than this ingest knows "
            f"({script.get_current_head()}); upgrade ingest. The ledger was left untouched"
        )
    if revision is None and _has_rows(conn):
        raise LedgerError(f"ledger {location} has data but no schema version; left untouched")
    return revision


def _unknown(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is None
    except CommandError:
        return True


def _has_rows(conn: Connection) -> bool:
    names = set(inspect(conn).get_table_names()) & (OUR_TABLES - {"alembic_version"})
    return any(conn.scalar(select(func.count()).select_from(table(n))) for n in names)


def _clear_half_created(conn: Connection) -> None:
    """Tables of ours without a version, all empty: an older ingest was killed while creating
    them. Drop them so the migrations build the schema whole."""
    for name in ("sources", "contents", "runs", "alembic_version"):
        if name in set(inspect(conn).get_table_names()):
            conn.exec_driver_sql(f"DROP TABLE {name}")
