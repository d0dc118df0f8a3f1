"""Alembic environment for the ingest ledger.

`pipeline.ledger.migrate` runs migrations programmatically and hands its own connection in through
`config.attributes["connection"]`; the `alembic` command line works too, with
`-x url=sqlite:///ingest.db`. Logging is left alone (no fileConfig), so running migrations inside
`ingest` does not disable the application's loggers.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from pipeline.ledger.models import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("alembic: pass -x url=sqlite:///path/to/ingest.db")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline mode is not supported for the ingest ledger")
run_migrations()
