"""Read a CSV manifest, streaming one `Entry` per row.

UTF-8 with or without BOM; a header row is required. Columns (names matched without regard to
case or surrounding spaces): `source` (or `url`, or `path`; required), `purpose`, `filename`,
`external_id`; every other column is kept as it is and exported with the row. A local path is
resolved against the manifest's folder. A bad row (empty source, unknown purpose, unsupported
scheme, unparsable line) becomes an Entry carrying `error` and its line number, so the run records
it and goes on. Rows are read in batches in a worker thread, so a million-row manifest starts at
once and runs in flat memory.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipeline.config import PURPOSES
from pipeline.errors import UsageError
from pipeline.sources import Entry

SOURCE_ALIASES = ("source", "url", "path")
KNOWN = {"purpose", "filename", "external_id"}
BATCH = 500


def _normal(name: str) -> str:
    return name.strip().lower()


def read_header(path: Path) -> list[str]:
    """The header row; UsageError if there is none or it has no source column."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError:
        raise UsageError(f"manifest {path} is not UTF-8 text") from None
    except (OSError, csv.Error) as exc:
        raise UsageError(f"manifest {path}: cannot read the header: {exc}") from None
    if not header or not any(cell.strip() for cell in header):
        raise UsageError(f"manifest {path} is empty: a header row with a source column is needed")
    if _source_column(header) is None:
        found = ", ".join(repr(c) for c in header) or "none"
        raise UsageError(
            f"manifest {path} has no source column (expected one of: source, url, path; "
            f"found: {found})"
        )
    return header


def _source_column(header: list[str]) -> int | None:
    names = [_normal(h) for h in header]
    for alias in SOURCE_ALIASES:
        if alias in names:
            return names.index(alias)
    return None


class _Rows:
    """Blocking row reader; `batch()` returns the next rows as (line, cells | error)."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open(encoding="utf-8-sig", newline="", errors="strict")
        self._reader = csv.reader(self._handle, strict=True)
        self._iter: Iterator[list[str]] = iter(self._reader)
        self.header = next(self._iter)
        self._line = self._reader.line_num

    def batch(self) -> list[tuple[int, list[str] | str]]:
        rows: list[tuple[int, list[str] | str]] = []
        while len(rows) < BATCH:
            start = self._line + 1
            try:
                cells = next(self._iter)
            except StopIteration:
                break
            except csv.Error as exc:
                rows.append((start, f"unparsable line: {exc}"))
                self._line = self._reader.line_num
                continue
            except UnicodeDecodeError:
                rows.append((start, "unparsable line: not UTF-8"))
                break  # the decoder cannot resynchronise; stop reading this manifest
            self._line = self._reader.line_num
            if cells:
                rows.append((start, cells))
        return rows

    def close(self) -> None:
        self._handle.close()


async def read_manifest(path: Path, *, purpose: str | None) -> AsyncIterator[Entry]:
    header = read_header(path)
    rows = await asyncio.to_thread(_Rows, path)
    try:
        columns = _Columns(header, base=path.resolve().parent)
        while batch := await asyncio.to_thread(rows.batch):
            for line, cells in batch:
                yield columns.entry(line, cells, purpose)
    finally:
        rows.close()


class _Columns:
    def __init__(self, header: list[str], *, base: Path) -> None:
        self.names = [_normal(h) for h in header]
        self.raw = header
        source = _source_column(header)
        assert source is not None
        self.source = source
        self.base = base
        self.index = {n: i for i, n in enumerate(self.names) if n in KNOWN}

    def entry(self, line: int, cells: list[str] | str, default_purpose: str | None) -> Entry:
        # Rows with no usable source are keyed by their place in the manifest.
        where = Entry(
            source=f"{self.base}#line-{line}", purpose="", filename="", line=line, written=""
        )
        if isinstance(cells, str):
            return dataclasses.replace(where, error=cells)
        if len(cells) > len(self.names):
            return dataclasses.replace(
                where,
                error=f"unparsable line: {len(cells)} fields, the header has {len(self.names)}",
            )
        get = {n: (cells[i].strip() if i < len(cells) else "") for n, i in self.index.items()}
        written = cells[self.source] if self.source < len(cells) else ""
        extra = {
            self.raw[i]: cells[i] if i < len(cells) else ""
            for i, n in enumerate(self.names)
            if i != self.source and n not in KNOWN and n not in SOURCE_ALIASES
        }
        row = dataclasses.replace(
            where, written=written, external_id=get.get("external_id") or None, extra=extra or None
        )
        purpose = (get.get("purpose") or default_purpose or "").lower()
        error = self._row_error(written, purpose)
        if error is not None:
            return dataclasses.replace(
                row,
                source=_identity(self._key(written) or row.source, row.external_id),
                purpose=purpose if purpose in PURPOSES else "",
                error=error,
            )
        return self._located(row, written.strip(), purpose, get.get("filename") or "")

    def _key(self, written: str) -> str:
        text = written.strip()
        if not text or "://" in text:
            return text
        return os.path.abspath(self.base / Path(text).expanduser())

    def _row_error(self, written: str, purpose: str) -> str | None:
        if not written.strip():
            return "empty source"
        if not purpose:
            return "no purpose: the row has none and no --purpose given"
        if purpose not in PURPOSES:
            return f"unknown purpose {purpose!r} (use one of: {', '.join(PURPOSES)})"
        if "://" in written:
            scheme = urlsplit(written.strip()).scheme.lower()
            if scheme not in ("http", "https"):
                return f"unsupported scheme {scheme!r} (only http and https)"
        return None

    def _located(self, row: Entry, text: str, purpose: str, filename: str) -> Entry:
        if "://" in text:
            name = filename or unquote(urlsplit(text).path.rsplit("/", 1)[-1]) or "download"
            source = _identity(text, row.external_id)
            return dataclasses.replace(row, source=source, purpose=purpose, filename=name, url=text)
        path = Path(self._key(text))
        return dataclasses.replace(
            row,
            source=_identity(str(path), row.external_id),
            purpose=purpose,
            filename=filename or path.name,
            path=path,
        )


def _identity(key: str, external_id: str | None) -> str:
    """A row's key in the ledger: its resolved source, told apart by the catalogue's own key, so
    two rows naming one URL under two external_ids are two records (both get the ids)."""
    return f"{key} [external_id={external_id}]" if external_id else key
