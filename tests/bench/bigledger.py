"""A ledger of 1,000,000 entries (beside the 2 ingest wrote itself), made the way the brief
allows: ingest runs once on a small manifest (so the schema is made by its own migrations and
real rows show the shape), then rows in that same shape are bulk-inserted with sqlite3 in one
transaction.

The entries are manifest URL rows on a local file server: 99% done with their ids, 1% failed
for good (a download refused), so `status` has a few error texts to rank. The 1,000,000-row
manifest section then reuses them: its rows are these sources in order, but every 1,000th row
is a new URL, fetched and uploaded for real.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ERRORS = (
    "download refused: HTTP 404",
    "download refused: HTTP 403",
    "not audio: unrecognised format",
)


def url(base: str, i: int) -> str:
    return f"{base}/files/old{i:07d}.wav"


def write_manifest(path: Path, rows: Iterator[tuple[str, ...]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["source", "purpose", "external_id"])
        writer.writerows(rows)
    return path


def templates(db: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A done source, its content, and a failed source, as ingest wrote them."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        done = conn.execute(
            "SELECT * FROM sources WHERE kind = 'url' AND status = 'ok' LIMIT 1"
        ).fetchone()
        content = conn.execute("SELECT * FROM contents WHERE id = ?", (done["content_id"],))
        failed = conn.execute(
            "SELECT * FROM sources WHERE kind = 'url' AND status = 'failed' LIMIT 1"
        ).fetchone()
        return dict(done), dict(content.fetchone()), dict(failed)
    finally:
        conn.close()


def fill(db: Path, base: str, count: int) -> None:
    """Bulk-insert `count` entries, `url(base, 0)` to `url(base, count - 1)`."""
    done, content, failed = templates(db)
    conn = sqlite3.connect(db)
    try:
        next_content = conn.execute("SELECT max(id) FROM contents").fetchone()[0] + 1
        with conn:
            _insert(conn, "contents", _contents(content, count, next_content))
            _insert(conn, "sources", _sources(done, failed, base, count, next_content))
    finally:
        conn.close()


def _insert(conn: sqlite3.Connection, table: str, rows: Iterator[dict[str, Any]]) -> None:
    first = next(rows)
    names = list(first)
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    conn.execute(sql, [first[n] for n in names])
    conn.executemany(sql, ([row[n] for n in names] for row in rows))


def _contents(template: dict[str, Any], count: int, first_id: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        if i % 100 == 99:
            continue  # failed downloads have no content
        yield template | {
            "id": first_id + i,
            "sha256": f"{first_id + i:064x}",
            "voice_id": f"vocal-20261127000000-{i:08x}",
            "instrumental_id": f"instrumental-20261127000000-{i:08x}",
            "trace_id": f"{i:032x}",
        }


def _sources(
    done: dict[str, Any], failed: dict[str, Any], base: str, count: int, first_content: int
) -> Iterator[dict[str, Any]]:
    for i in range(count):
        where = url(base, i)
        own = {"source": where, "written": where, "filename": f"old{i:07d}.wav", "line": i + 2}
        if i % 100 == 99:
            yield failed | own | {"id": None, "error": ERRORS[i % len(ERRORS)]}
        else:
            sha = f"{first_content + i:064x}"
            yield done | own | {"id": None, "sha256": sha, "content_id": first_content + i}
