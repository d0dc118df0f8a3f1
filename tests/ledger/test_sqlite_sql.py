"""The SQL a run runs on an SQLite file without SQLAlchemy (`sqlite_sql.py`) is exactly what
SQLAlchemy compiles the Core twins used on a server to, for SQLite: the schema of `models.py`,
the run ledger's queries and the writer's statements. So they cannot drift apart: a change to
`models.py` fails here, and the message shows the SQL to copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from pipeline.ledger import sqlite_sql as sql
from pipeline.ledger.core_statements import CoreStatements
from pipeline.ledger.models import contents, metadata, sources, version_table
from pipeline.ledger.queries import (
    CONTENT_OF_QUERY,
    FINISH_RUN,
    STATE_COLUMNS,
    abandoned_runs,
    json_listed,
    start_run,
)
from pipeline.ledger.rows import WRITTEN
from pipeline.ledger.statements import OpKind, SqliteStatements
from tests.conftest import SandboxServer, cli_env, song_catalogue

NAMED = sqlite.dialect(paramstyle="named")


def compiled(statement: Any, keys: tuple[str, ...]) -> sql.Sql:
    """`statement` compiled for SQLite, for rows of these keys, as `sqlite_sql` writes it."""
    done = statement.compile(dialect=NAMED, column_keys=list(keys), for_executemany=bool(keys))
    defaults = {name: bind.value for bind, name in done.bind_names.items() if not bind.required}
    return sql.Sql(done.string, keys, defaults)


def test_the_schema_is_the_models_compiled_for_sqlite() -> None:
    expected = []
    for table in [*metadata.sorted_tables, version_table]:
        expected.append(str(CreateTable(table).compile(dialect=sqlite.dialect())).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            expected.append(str(CreateIndex(index).compile(dialect=sqlite.dialect())))
    assert list(sql.SCHEMA) == expected
    assert compiled(version_table.insert(), ("version_num",)).text == sql.STAMP


def test_a_run_s_reads_and_writes_are_the_core_queries_compiled_for_sqlite() -> None:
    assert compiled(start_run("sqlite"), sql.START_RUN.keys) == sql.START_RUN
    assert compiled(FINISH_RUN, sql.FINISH_RUN.keys) == sql.FINISH_RUN
    assert compiled(abandoned_runs("sqlite"), ()) == sql.CLOSE_ABANDONED
    by_json = STATE_COLUMNS.where(sources.c.source.in_(json_listed("keys")))
    assert compiled(by_json, ()) == sql.STATES
    assert compiled(CONTENT_OF_QUERY, ()) == sql.CONTENT_OF


def test_the_writer_s_statements_are_the_core_statements_compiled_for_sqlite() -> None:
    core = CoreStatements("sqlite", None)
    plain = SqliteStatements()
    pairs = [
        (core.source_upsert, plain.source_upsert),
        (core.drop_no_purpose, plain.drop_no_purpose),
        (core.content_insert, plain.content_insert),
        (core.mirror, plain.mirror),
        *((core.simple[kind], plain.simple[kind]) for kind in core.simple),
    ]
    for statement, written in pairs:
        assert compiled(statement, written.keys) == written
    assert set(plain.simple) == set(core.simple)
    # The same columns, the shas read from one JSON list (the server's takes one per sha).
    columns = core.content_lookup.selected_columns
    by_json = select(*columns).where(contents.c.sha256.in_(json_listed("shas")))
    assert compiled(by_json, ()) == plain.content_lookup


def test_a_source_row_writes_every_column_but_its_id() -> None:
    assert tuple(column.name for column in sources.columns if column.name != "id") == WRITTEN


def test_rows_of_other_keys_than_a_statement_s_are_refused() -> None:
    plain = SqliteStatements()
    with pytest.raises(ValueError, match="done_at"):
        plain.many(None, plain.simple[OpKind.DONE], [{"c_id": 1}])  # type: ignore[arg-type]


def test_a_run_on_an_sqlite_file_loads_no_sqlalchemy(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """A whole run, first and again (the second skips by the ledger), in a subprocess."""
    song_catalogue(tmp_path / "cat", 3)
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['ingest', 'run', 'cat', '--api-url', sys.argv[1]]\n"
        "try:\n"
        "    runpy.run_module('pipeline', run_name='__main__')\n"
        "except SystemExit as end:\n"
        "    print('exit', end.code)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'alembic', 'aiosqlite'}))\n"
    )
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", probe, sandbox.url],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert done.stdout.splitlines()[-2:] == ["exit 0", "[]"], done.stderr
    assert (tmp_path / "ingest.db").exists()
