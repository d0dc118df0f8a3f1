"""A real PostgreSQL for the tests: one fresh database per test, dropped afterwards.

The server is found at `INGEST_TEST_PG` (an admin URL, default
`postgresql://postgres@127.0.0.1:5432/postgres`). Without one the PostgreSQL tests are skipped
with a line saying how to run them, so `make test` passes on a machine without PostgreSQL;
`.ci/run` sets `INGEST_TEST_PG_REQUIRED=1`, which turns a missing server into a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("INGEST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRED = os.environ.get("INGEST_TEST_PG_REQUIRED") == "1"
HOW = (
    "PostgreSQL tests skipped: no server at INGEST_TEST_PG "
    f"({make_url(ADMIN_URL).render_as_string(hide_password=True)}); start one, or set "
    "INGEST_TEST_PG to an admin URL, to run them"
)


async def admin(statement: str) -> None:
    """Run one statement as the admin user (CREATE / DROP DATABASE)."""
    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def unreachable() -> str | None:
    """Why no PostgreSQL answers at ADMIN_URL, or None when one does."""
    try:
        asyncio.run(admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        shown = make_url(ADMIN_URL).render_as_string(hide_password=True)
        return f"no PostgreSQL at {shown} ({type(exc).__name__})"
    return None


_REACHABLE: bool | None = None


def require_server() -> None:
    global _REACHABLE
    if _REACHABLE is None:
        _REACHABLE = unreachable() is None
    if not _REACHABLE:
        if REQUIRED:
            pytest.fail(f"INGEST_TEST_PG_REQUIRED=1 but no PostgreSQL answers at {ADMIN_URL}")
        pytest.skip(HOW)


def fresh_database() -> Iterator[str]:
    """A new, empty database; its URL (for `--db`) while the test runs; dropped after."""
    require_server()
    name = f"ingest_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
