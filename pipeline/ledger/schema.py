"""A ledger's schema made ready without Alembic where Alembic has nothing to decide.

Opening a ledger looks at its tables in one transaction:

- at the newest revision: nothing to do;
- no tables at all (a new file, a new database): the tables of `models.py` are created and the
  revision is stamped, in that same transaction, as the migrations would leave them (a test
  compares the two schemas). A kill at any moment leaves the database as it was, with no tables;
- anything else (an older ledger, one that an older ingest left half-created, someone else's
  database): Alembic's `migrate.upgrade` is left to check and upgrade it, or to refuse it.

Importing Alembic and building its migration context costs more than the rest of a short run's
start-up; a first run, and every dry run without a ledger, now pays for neither.
"""

from __future__ import annotations

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from pipeline.ledger.engines import REVISION_QUERY, create_engine_for
from pipeline.ledger.location import Location
from pipeline.ledger.models import SCHEMA_REVISION, metadata
from pipeline.ledger.plain import OUR_TABLES

# Alembic's own version table, as its migration context defines it.
version_table = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


async def ready(location: Location) -> bool:
    """True when the ledger is at the newest schema: it was, or it had no tables and has just
    been created whole. False when Alembic must look at it (or it cannot be read: then Alembic
    says why)."""
    engine = create_engine_for(location, checking=True)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(_ready)
    except DBAPIError:
        return False
    finally:
        await engine.dispose()


def _ready(conn: Connection) -> bool:
    tables = set(inspect(conn).get_table_names())
    if not tables:
        create(conn)
        return True
    return tables == OUR_TABLES and conn.scalar(REVISION_QUERY) == SCHEMA_REVISION


def create(conn: Connection) -> None:
    """Every table and index of the newest schema, and its revision, on `conn`'s transaction."""
    metadata.create_all(conn, checkfirst=False)
    version_table.create(conn, checkfirst=False)
    conn.execute(version_table.insert().values(version_num=SCHEMA_REVISION))
