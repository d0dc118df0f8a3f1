"""The SQL that `status` runs on SQLite without SQLAlchemy is exactly what SQLAlchemy compiles
the Core queries of the other back end to, so the two cannot drift apart."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from sqlalchemy.dialects import sqlite

from pipeline.ledger import plain
from pipeline.ledger.engines import OUR_TABLES_QUERY, REVISION_QUERY
from pipeline.ledger.figures import core_figures


def compiled(query: Any) -> str:
    return str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))


def test_each_figure_s_sql_is_its_core_query_compiled_for_sqlite() -> None:
    core = core_figures("sqlite")
    assert set(core) == set(plain.SQLITE_FIGURES)
    for name, query in core.items():
        assert compiled(query) == plain.SQLITE_FIGURES[name], name


def test_the_checks_are_the_engines_own() -> None:
    assert str(OUR_TABLES_QUERY) == plain.OUR_TABLES_SQL
    assert str(REVISION_QUERY) == plain.REVISION_SQL


def test_status_loads_no_sqlalchemy() -> None:
    code = (
        "import sys; from pipeline.commands import reading; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
