"""The SQL a run runs on an SQLite ledger, written out, so that a run on an SQLite file needs no
SQLAlchemy at all (importing it cost a third of a short run's start-up).

Each statement is what SQLAlchemy compiles its Core twin to for SQLite (`queries.py`, the
writer's `core_statements.py`, `models.py` for the schema): a test compiles each twin and
compares, so the two cannot drift apart, and a schema change is made in `models.py` and its
migration, then copied here by that test's message. `status`'s figures are in `plain.py`.

A statement that sets values of its own (a status, a count, the database's clock) takes them as
parameters, as SQLAlchemy compiled it: `Sql.defaults`, bound with every row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Sql:
    text: str
    keys: tuple[str, ...] = ()  # the parameters each row gives (the statement's shape)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # bound with each row


# --- the schema: a new ledger is made of these, in this order, in one transaction -----------

SCHEMA = (
    "CREATE TABLE contents (\n\tid INTEGER NOT NULL, \n\tsha256 TEXT NOT NULL, \n\tpurpose TEXT "
    "NOT NULL, \n\tsize INTEGER, \n\tstatus TEXT DEFAULT 'pending' NOT NULL, \n\tretryable INTEGER "
    "DEFAULT '0' NOT NULL, \n\tattempts INTEGER DEFAULT '0' NOT NULL, \n\terror TEXT, \n\tvoice_id "
    "TEXT, \n\tinstrumental_id TEXT, \n\ttrace_id TEXT, \n\tcreated_at FLOAT NOT NULL, \n\t"
    "updated_at FLOAT NOT NULL, \n\tdone_at FLOAT, \n\tclaimed_by INTEGER, \n\tclaimed_until "
    "FLOAT, \n\tconverted_from TEXT, \n\tsent_sha256 TEXT, \n\tPRIMARY KEY (id), \n\tCONSTRAINT "
    "uq_contents_sha256_purpose UNIQUE (sha256, purpose)\n)",
    "CREATE INDEX ix_contents_claimed_by ON contents (claimed_by)",
    "CREATE INDEX ix_contents_converted ON contents (converted_from, status)",
    "CREATE INDEX ix_contents_status ON contents (status)",
    "CREATE TABLE runs (\n\tid INTEGER NOT NULL, \n\tstarted_at FLOAT NOT NULL, \n\tfinished_at "
    "FLOAT, \n\tpid INTEGER NOT NULL, \n\thost TEXT NOT NULL, \n\tcommand TEXT NOT NULL, \n\t"
    "status TEXT DEFAULT 'running' NOT NULL, \n\texit_code INTEGER, \n\tsummary TEXT, \n\t"
    "heartbeat_at FLOAT, \n\tlease FLOAT, \n\tPRIMARY KEY (id)\n)",
    "CREATE TABLE sources (\n\tid INTEGER NOT NULL, \n\tsource TEXT NOT NULL, \n\tpurpose TEXT "
    "NOT NULL, \n\twritten TEXT, \n\tkind TEXT NOT NULL, \n\tpath TEXT, \n\tfilename TEXT, \n\t"
    "size INTEGER, \n\tmtime_ns INTEGER, \n\tsha256 TEXT, \n\tcontent_id INTEGER, \n\tstatus TEXT "
    "DEFAULT 'ok' NOT NULL, \n\tretryable INTEGER DEFAULT '0' NOT NULL, \n\terror TEXT, \n\tline "
    "INTEGER, \n\texternal_id TEXT, \n\textra TEXT, \n\trun_id INTEGER, \n\tcreated_at FLOAT NOT "
    "NULL, \n\tupdated_at FLOAT NOT NULL, \n\torigin TEXT, \n\tclaimed_by INTEGER, \n\t"
    "claimed_until FLOAT, \n\tcontent_status TEXT, \n\tetag TEXT, \n\tPRIMARY KEY (id), \n\t"
    "CONSTRAINT uq_sources_source_purpose UNIQUE (source, purpose), \n\tCONSTRAINT "
    "fk_sources_content_id FOREIGN KEY(content_id) REFERENCES contents (id)\n)",
    "CREATE INDEX ix_sources_claimed_by ON sources (claimed_by)",
    "CREATE INDEX ix_sources_content_id ON sources (content_id)",
    "CREATE INDEX ix_sources_origin ON sources (origin)",
    "CREATE INDEX ix_sources_state ON sources (status, content_status, purpose)",
    # Alembic's own version table, as its migration context defines it.
    "CREATE TABLE alembic_version (\n\tversion_num VARCHAR(32) NOT NULL, \n\tCONSTRAINT "
    "alembic_version_pkc PRIMARY KEY (version_num)\n)",
)
STAMP = "INSERT INTO alembic_version (version_num) VALUES (:version_num)"
TABLES = (
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite~_%' ESCAPE '~'"
)

# --- a run's reads and its start and end (`sqlite_store.py`) ------------------------------

_NOW = {"julianday_1": "now", "julianday_2": 2440587.5, "param_1": 86400.0}  # db_epoch's
START_RUN = Sql(
    "INSERT INTO runs (started_at, pid, host, command, status, heartbeat_at, lease) VALUES "
    "(:started_at, :pid, :host, :command, :status, CAST((julianday(:julianday_1) - :julianday_2) "
    "* :param_1 AS FLOAT), :lease)",
    ("started_at", "pid", "host", "command", "status", "lease"),
    _NOW,
)
FINISH_RUN = Sql(
    "UPDATE runs SET finished_at=:finished_at, status=:status, exit_code=:exit_code, "
    "summary=:summary WHERE runs.id = :run_id",
    ("run_id", "finished_at", "status", "exit_code", "summary"),
)
CLOSE_ABANDONED = Sql(
    "UPDATE runs SET status=:status WHERE runs.status = :status_1",
    defaults={"status": "crashed", "status_1": "running"},
)
STATES = Sql(  # `keys`: a JSON list of sources (one parameter, whatever the list's length)
    "SELECT sources.source, sources.purpose, sources.id, sources.size, sources.mtime_ns, "
    "sources.sha256, sources.status, sources.retryable, sources.error, sources.content_id, "
    "contents.status AS status_1, contents.retryable AS retryable_1, sources.etag \nFROM sources "
    "LEFT OUTER JOIN contents ON sources.content_id = contents.id \nWHERE sources.source IN "
    "(SELECT value \nFROM json_each(:keys))"
)
CONTENT_OF = Sql(
    "SELECT contents.status, contents.retryable \nFROM contents \n"
    "WHERE contents.sha256 = :sha256 AND contents.purpose = :purpose"
)

# --- the writer's statements (`statements.py`), by what they do ----------------------------

SOURCE_UPSERT = Sql(
    "INSERT INTO sources (source, purpose, written, kind, path, filename, size, mtime_ns, sha256, "
    "content_id, status, retryable, error, line, external_id, extra, run_id, created_at, "
    "updated_at, origin, claimed_by, claimed_until, content_status, etag) VALUES (:source, "
    ":purpose, :written, :kind, :path, :filename, :size, :mtime_ns, :sha256, :content_id, "
    ":status, :retryable, :error, :line, :external_id, :extra, :run_id, :created_at, "
    ":updated_at, :origin, :claimed_by, :claimed_until, :content_status, :etag) ON CONFLICT "
    "(source, purpose) DO UPDATE SET written = excluded.written, kind = excluded.kind, path = "
    "excluded.path, filename = excluded.filename, size = excluded.size, mtime_ns = "
    "excluded.mtime_ns, sha256 = excluded.sha256, content_id = excluded.content_id, status = "
    "excluded.status, retryable = excluded.retryable, error = excluded.error, line = "
    "excluded.line, external_id = excluded.external_id, extra = excluded.extra, run_id = "
    "excluded.run_id, updated_at = excluded.updated_at, origin = excluded.origin, claimed_by = "
    "excluded.claimed_by, claimed_until = excluded.claimed_until, content_status = "
    "excluded.content_status, etag = excluded.etag",
    (
        "source", "purpose", "written", "kind", "path", "filename", "size", "mtime_ns", "sha256",
        "content_id", "status", "retryable", "error", "line", "external_id", "extra", "run_id",
        "created_at", "updated_at", "origin", "claimed_by", "claimed_until", "content_status",
        "etag",
    ),
)  # fmt: skip
DROP_NO_PURPOSE = Sql(
    "DELETE FROM sources WHERE sources.source = :b_source AND sources.purpose = :purpose_1",
    ("b_source",),
    {"purpose_1": ""},
)
CONTENT_INSERT = Sql(
    "INSERT INTO contents (sha256, purpose, size, status, attempts, created_at, updated_at, "
    "converted_from, sent_sha256) VALUES (:sha256, :purpose, :size, :status, :attempts, "
    ":created_at, :updated_at, :converted_from, :sent_sha256) ON CONFLICT (sha256, purpose) DO "
    "NOTHING",
    (
        "sha256", "purpose", "size", "converted_from", "sent_sha256", "status", "attempts",
        "created_at", "updated_at",
    ),
)  # fmt: skip
CONTENT_LOOKUP = Sql(  # `shas`: a JSON list
    "SELECT contents.sha256, contents.purpose, contents.id, contents.status, contents.retryable "
    "\nFROM contents \nWHERE contents.sha256 IN (SELECT value \nFROM json_each(:shas))"
)
MIRROR = Sql(
    "UPDATE sources SET content_status=:m_status WHERE sources.content_id = :c_id",
    ("c_id", "m_status"),
)
SIMPLE = {  # by the writer's OpKind
    "reset": Sql(
        "UPDATE contents SET status=:status, retryable=:retryable, updated_at=:updated_at "
        "WHERE contents.id = :c_id",
        ("c_id", "updated_at"),
        {"status": "pending", "retryable": 0},
    ),
    "attempt": Sql(
        "UPDATE contents SET attempts=(contents.attempts + :attempts_1), updated_at=:updated_at "
        "WHERE contents.id = :c_id",
        ("c_id", "updated_at"),
        {"attempts_1": 1},
    ),
    "done": Sql(
        "UPDATE contents SET status=:status, retryable=:retryable, error=:error, "
        "voice_id=:voice_id, instrumental_id=:instrumental_id, trace_id=:trace_id, "
        "updated_at=:updated_at, done_at=:done_at, claimed_by=:claimed_by, "
        "claimed_until=:claimed_until, sent_sha256=:sent_sha256 WHERE contents.id = :c_id",
        (
            "c_id",
            "sent_sha256",
            "voice_id",
            "instrumental_id",
            "trace_id",
            "updated_at",
            "done_at",
        ),
        {
            "status": "done",
            "retryable": 0,
            "error": None,
            "claimed_by": None,
            "claimed_until": None,
        },
    ),  # fmt: skip
    "failed": Sql(
        "UPDATE contents SET status=:status, retryable=:retryable, error=:error, "
        "trace_id=:trace_id, updated_at=:updated_at, claimed_by=:claimed_by, "
        "claimed_until=:claimed_until WHERE contents.id = :c_id",
        ("c_id", "error", "trace_id", "retryable", "updated_at"),
        {"status": "failed", "claimed_by": None, "claimed_until": None},
    ),
    "leave": Sql(
        "UPDATE sources SET size=:size, sha256=:sha256, status=:status, retryable=:retryable, "
        "error=:error, updated_at=:updated_at WHERE sources.source = :b_source AND "
        "sources.purpose = :b_purpose",
        ("b_source", "b_purpose", "error", "updated_at"),
        {"size": None, "sha256": None, "status": "failed", "retryable": 1},
    ),
    "heartbeat": Sql(
        "UPDATE runs SET summary=:summary, heartbeat_at=CAST((julianday(:julianday_1) - "
        ":julianday_2) * :param_1 AS FLOAT) WHERE runs.id = :run_id",
        ("run_id", "summary"),
        _NOW,
    ),
}
