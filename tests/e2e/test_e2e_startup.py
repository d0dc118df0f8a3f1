"""A kill at any moment of a first run's start-up never bricks the ledger.

Two ways: a kill -9 at increasing delays after `ingest run` starts (real timing, nobody chose
the moment), and a process that dies right after each statement of the schema creation in turn
(every moment between two DDL statements, deterministically), both as a run creates a new ledger
(from the models' schema written out, without Alembic or SQLAlchemy) and as the migrations build
one. Each time, the next run must end with exit 0 and every file done.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pipeline.ledger import open_ledger
from pipeline.ledger.migrate import current, upgrade
from tests.conftest import SandboxServer, cli_env, export, run_cli, song_catalogue

pytestmark = pytest.mark.e2e

# Dies (as kill -9 does: no cleanup) right after writing statement number argv[2] of the work
# that follows it.
_DIE_AFTER = """
import asyncio, os, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

seen = 0
def after(conn, cursor, statement, *args):
    global seen
    if statement.lstrip().upper().startswith(("CREATE", "INSERT", "UPDATE", "ALTER", "DROP")):
        seen += 1
        if seen == int(sys.argv[2]):
            os._exit(9)
event.listen(Engine, "after_cursor_execute", after)
"""
# The real migrations.
DIE_AFTER_STATEMENT = (
    _DIE_AFTER
    + """
from pipeline.ledger.migrate import upgrade
asyncio.run(upgrade(sys.argv[1]))
print("completed")
"""
)
# The same, as a run opens a ledger that does not exist yet (created whole, without Alembic or
# SQLAlchemy, on the standard sqlite3 module): a trace callback on every connection sees each
# statement just before it runs, so it dies at the first one after write number argv[2].
DIE_WHILE_CREATING = (
    """
import asyncio, os, sqlite3, sys

writes = 0
def before(statement):
    global writes
    if writes == int(sys.argv[2]):
        os._exit(9)
    if statement.lstrip().upper().startswith(("CREATE", "INSERT", "UPDATE", "ALTER", "DROP")):
        writes += 1
connect = sqlite3.connect
def traced(*args, **kwargs):
    conn = connect(*args, **kwargs)
    conn.set_trace_callback(before)
    return conn
sqlite3.connect = traced
"""
    + """
from pipeline.ledger import open_ledger
async def opened(path):
    await (await open_ledger(path)).close()
asyncio.run(opened(sys.argv[1]))
print("completed")
"""
)


async def reopened(path: str) -> str:
    """What a run does first: open the ledger (created or upgraded); its revision then."""
    await (await open_ledger(path)).close()
    return str((await current(path))[0])


def assert_next_run_finishes(tmp_path: Path, sandbox: SandboxServer) -> None:
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert [r["status"] for r in export(tmp_path)] == ["done"] * 3


@pytest.mark.parametrize(
    ("script", "recover"),
    [(DIE_WHILE_CREATING, reopened), (DIE_AFTER_STATEMENT, upgrade)],
    ids=["new", "alembic"],
)
def test_dying_after_any_statement_of_the_schema_creation_leaves_a_usable_ledger(
    tmp_path: Path,
    sandbox: SandboxServer,
    script: str,
    recover: Callable[[str], Awaitable[str]],
) -> None:
    """After each death, what the next run does first (check and upgrade the ledger) must
    succeed; one full run at the end proves the ledger works."""
    song_catalogue(tmp_path / "cat", 3)
    statement, died = 0, 0
    head = asyncio.run(current(str(tmp_path / "probe.db")))[1]
    while True:
        statement += 1
        (tmp_path / "ingest.db").unlink(missing_ok=True)
        proc = subprocess.run(
            [sys.executable, "-c", script, "ingest.db", str(statement)],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if "completed" in proc.stdout:
            break
        assert proc.returncode == 9, proc.stderr
        died += 1
        assert asyncio.run(recover(str(tmp_path / "ingest.db"))) == head
    assert died >= 5  # every table, index and the version stamp was a moment to die at
    assert_next_run_finishes(tmp_path, sandbox)


def test_kill_9_at_increasing_delays_during_start_up_never_bricks_the_ledger(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    song_catalogue(tmp_path / "cat", 3)
    for delay in (0.2, 0.45, 0.7, 0.95, 1.3):
        (tmp_path / "ingest.db").unlink(missing_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "cat", "--api-url", sandbox.url],
            cwd=tmp_path,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.kill()
        proc.wait()
        assert_next_run_finishes(tmp_path, sandbox)
