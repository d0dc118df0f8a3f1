"""A new ledger is created from the models in one transaction, without Alembic: its schema is
exactly what the migrations build, on both back ends."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from pipeline.ledger import open_ledger
from pipeline.ledger.engines import create_engine_for
from pipeline.ledger.location import parse_location
from pipeline.ledger.migrate import upgrade
from pipeline.ledger.models import SCHEMA_REVISION


@pytest.fixture
def second_url(ledger_url: str, tmp_path: Path) -> Iterator[str]:
    """Another empty ledger on the same back end as `ledger_url`."""
    if "://" not in ledger_url:
        yield str(tmp_path / "other.db")
        return
    from tests.pg import fresh_database

    yield from fresh_database()


def _describe(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    schema: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        schema[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(name)
            ],
            "primary key": inspector.get_pk_constraint(name),
            "unique": sorted(inspector.get_unique_constraints(name), key=str),
            "indexes": sorted(inspector.get_indexes(name), key=str),
            "foreign keys": inspector.get_foreign_keys(name),
        }
    schema["version"] = list(conn.execute(text("SELECT version_num FROM alembic_version")))
    if conn.dialect.name == "sqlite":  # and the DDL as SQLite keeps it, but for the spacing
        rows = conn.execute(text("SELECT type, name, tbl_name FROM sqlite_master ORDER BY name"))
        schema["sqlite_master"] = list(rows)
    return schema


async def described(url: str) -> dict[str, Any]:
    """Every table's columns (in order: type, nullability, default), keys, indexes and foreign
    keys, and the version stamped."""
    engine = create_engine_for(parse_location(url), checking=True)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_describe)
    finally:
        await engine.dispose()


async def test_a_new_ledger_has_exactly_the_schema_the_migrations_build(
    ledger_url: str, second_url: str
) -> None:
    assert await upgrade(ledger_url) == SCHEMA_REVISION  # Alembic, every migration in turn
    ledger = await open_ledger(second_url)  # new: created from the models at once
    await ledger.close()
    migrated, created = await described(ledger_url), await described(second_url)
    assert set(created) == {"alembic_version", "contents", "runs", "sources", "version"} | (
        {"sqlite_master"} if "://" not in ledger_url else set()
    )
    for part in migrated:
        assert created[part] == migrated[part], part


def test_a_new_ledger_is_made_without_loading_alembic(tmp_path: Path) -> None:
    code = (
        "import asyncio, sys\n"
        "from pipeline.ledger import open_ledger\n"
        "async def main():\n"
        "    ledger = await open_ledger(sys.argv[1])\n"
        "    await ledger.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    db = tmp_path / "new.db"
    argv = [sys.executable, "-c", code, str(db)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    done = subprocess.run(argv, capture_output=True, text=True, check=True)  # now at head
    assert done.stdout.strip() == "[]"
