"""Read a CSV manifest, streaming one `Entry` per row.

A manifest is read the way spreadsheets save it:

- Encoding: a byte-order mark says UTF-8, UTF-16 or UTF-32 (little or big endian), and wins;
  without one the file is read as UTF-8 unless an encoding is given (any Python codec name, such
  as `cp1252`, `latin-1` or `utf-16-le`). The whole file is checked before any work starts: a
  byte that is not valid in that encoding stops the run with the line it is on.
- Delimiter: `,`, `;` or tab, read from the header row: the one that splits it into a source
  column and the most known column names (then the most non-empty cells); a header with none of
  them outside quotes is one column. Quoted cells may hold delimiters, quotes (doubled) and line
  breaks.
- Lines end in CRLF, LF or CR; the last may have no line end. Blank rows (also rows of bare
  delimiters) are skipped, and empty cells after the last column, such as a trailing delimiter,
  are ignored.

A header row is required. Columns (names matched without regard to case or surrounding spaces):
`source` (or `url`, or `path`; required: a local path, an http(s) URL or an `s3://bucket/key`
object), `purpose`, `filename`, `external_id`; every other column is kept as it is and exported
with the row (an unnamed one only where it holds text, as `column N`). A local path is resolved
against the manifest's folder. A bad row (empty source, unknown purpose, unsupported scheme,
unparsable line) becomes an Entry carrying `error` and its line number, so the run records it
and goes on. Rows are read in batches in a worker thread, so a
million-row manifest starts at once and runs in flat memory.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import dataclasses
import functools
import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from pipeline.core.entry import Entry
from pipeline.core.errors import UsageError
from pipeline.core.names import source_key
from pipeline.core.objects import is_s3_url, split_s3_url
from pipeline.core.states import PURPOSES

SOURCE_ALIASES = ("source", "url", "path")
KNOWN = {"purpose", "filename", "external_id"}
DELIMITERS = (",", ";", "\t")  # in order of preference when the header cannot tell them apart
ONE_COLUMN = "\0"  # the delimiter of a one-column manifest: no text manifest holds a NUL
BATCH = 500
PATHS_KEPT = 4096  # local sources as written whose resolved path a reader remembers
CHUNK = 1 << 20  # bytes decoded at a time when checking the encoding
HEADER_LIMIT = 1 << 16  # characters read to find the header row
FLAG = "--manifest-encoding"
_MARKS = (  # longest first: a UTF-32 LE mark begins with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)
_CONTEXT = 20  # characters of the line shown before an undecodable byte


@dataclasses.dataclass(frozen=True)
class Decoding:
    """How a manifest's bytes become text: `codec` from byte `skip` (past a byte-order mark)."""

    codec: str
    skip: int
    label: str  # the encoding as messages name it: "UTF-8", or as it was given
    assumed: bool  # nothing said which encoding: no mark and none given


@dataclasses.dataclass(frozen=True)
class Layout:
    """Everything needed to read a manifest's rows."""

    decoding: Decoding
    delimiter: str
    header: list[str]
    header_end: int  # the line the header row ends on (blank lines may come before it)


def _normal(name: str) -> str:
    return name.strip().lower()


def check_encoding(encoding: str) -> None:
    """UsageError unless `encoding` names a text codec."""
    try:
        io.TextIOWrapper(io.BytesIO(), encoding=encoding)
    except LookupError as exc:
        raise UsageError(
            f"unknown manifest encoding {encoding!r} (try utf-8, cp1252, latin-1 or utf-16)"
        ) from exc


def read_header(path: Path, encoding: str | None = None) -> list[str]:
    """The header row, once the whole file is known to decode; UsageError if it does not, if
    there is no header or if it has no source column. `encoding` is used when the file has no
    byte-order mark; without either, UTF-8."""
    decoding = _decoding(path, encoding)
    _check_decodes(path, decoding)
    return _layout(path, decoding).header


def _decoding(path: Path, encoding: str | None) -> Decoding:
    if encoding is not None:
        check_encoding(encoding)
    with _opened(path) as handle:
        head = handle.read(4)
    for mark, codec, label in _MARKS:
        if head.startswith(mark):
            return Decoding(codec, len(mark), label, assumed=False)
    if encoding is not None:
        return Decoding(encoding, 0, encoding, assumed=False)
    _refuse_nul(path, head)
    return Decoding("utf-8", 0, "UTF-8", assumed=True)


def _refuse_nul(path: Path, head: bytes) -> None:
    """NUL bytes are valid UTF-8 but no text manifest has them: UTF-16 without a mark does."""
    if b"\0" in head:
        guess = "utf-16-be" if head.startswith(b"\0") else "utf-16-le"
        raise UsageError(
            f"manifest {path}: line 1 holds NUL bytes, as UTF-16 without a byte-order mark "
            f"would; pass {FLAG} {guess}"
        )


def _opened(path: Path, skip: int = 0) -> BinaryIO:
    try:
        handle = path.open("rb")
        handle.seek(skip)
    except OSError as exc:
        raise UsageError(f"manifest {path}: cannot read it: {exc}") from exc
    return handle


def _check_decodes(path: Path, decoding: Decoding) -> None:
    """Decode the whole file once, a chunk at a time, so that a wrong encoding stops the run
    before any work starts instead of halfway through the manifest."""
    decoder = codecs.getincrementaldecoder(decoding.codec)()
    place = _Place()
    with _opened(path, decoding.skip) as handle:
        try:
            for chunk in iter(functools.partial(handle.read, CHUNK), b""):
                place.advance(decoder.decode(chunk))
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise UsageError(_undecodable(path, decoding, place, exc)) from exc
        except OSError as exc:
            raise UsageError(f"manifest {path}: cannot read it: {exc}") from exc


class _Place:
    """Where decoded text has got to: line ends seen (CRLF, LF or CR, as the CSV reader counts
    them) and the end of the current line."""

    def __init__(self) -> None:
        self.ends = 0
        self.after_cr = False
        self.tail = ""

    def advance(self, text: str) -> None:
        if not text:
            return
        ends = text.count("\n") + text.count("\r") - text.count("\r\n")
        self.ends += ends - int(self.after_cr and text[0] == "\n")
        self.after_cr = text[-1] == "\r"
        last = max(text.rfind("\n"), text.rfind("\r"))
        self.tail = (self.tail + text if last < 0 else text[last + 1 :])[-_CONTEXT:]


def _undecodable(path: Path, decoding: Decoding, place: _Place, exc: UnicodeDecodeError) -> str:
    place.advance(exc.object[: exc.start].decode(decoding.codec, errors="replace"))
    after = f" after {place.tail!r}" if place.tail else ""
    hint = f"; if it was saved by Excel, pass {FLAG} cp1252" if decoding.assumed else ""
    return (
        f"manifest {path}: line {place.ends + 1} is not {decoding.label} "
        f"(byte 0x{exc.object[exc.start]:02x}{after}){hint}"
    )


def _layout(path: Path, decoding: Decoding) -> Layout:
    # Bytes foreign to the encoding are `_check_decodes`'s to report, with their line.
    with _text(path, decoding, errors="replace") as handle:
        try:
            delimiter, header, end = sniff_header(handle.read(HEADER_LIMIT))
        except OSError as exc:
            raise UsageError(f"manifest {path}: cannot read the header: {exc}") from exc
        except csv.Error as exc:
            raise UsageError(
                f"manifest {path}: cannot read the header, check its quotes: {exc}"
            ) from exc
    _check_header(path, header)
    return Layout(decoding, delimiter, header, end)


def _check_header(path: Path, header: list[str]) -> None:
    if not header:
        raise UsageError(f"manifest {path} is empty: a header row with a source column is needed")
    if _source_column(header) is None:
        found = ", ".join(repr(c) for c in header)
        raise UsageError(
            f"manifest {path} has no source column (expected one of: source, url, path; "
            f"found: {found})"
        )


def _text(path: Path, decoding: Decoding, errors: str = "strict") -> io.TextIOWrapper:
    handle = _opened(path, decoding.skip)
    return io.TextIOWrapper(handle, encoding=decoding.codec, errors=errors, newline="")


def sniff_header(head: str) -> tuple[str, list[str], int]:
    """The delimiter, the cells of the header row and the line it ends on, from the start of the
    text. Of `,` `;` and tab, the delimiter whose split has a source column and the most known
    column names, then the most non-empty cells; one column when none of them splits it.
    (`csv.Sniffer` guesses `,` for `path;purpose;title, subtitle` and gives up on most headers
    followed by a row.)"""
    best = max(DELIMITERS, key=lambda delimiter: _score(_first_row(head, delimiter)[0]))
    if len(_first_row(head, best)[0]) == 1:
        best = ONE_COLUMN
    return best, *_first_row(head, best, strict=True)


def _first_row(head: str, delimiter: str, *, strict: bool = False) -> tuple[list[str], int]:
    """The first row that is not blank, and the line it ends on; [] when there is none."""
    reader = csv.reader(io.StringIO(head, newline=""), delimiter=delimiter, strict=strict)
    for cells in reader:
        if any(cell.strip() for cell in cells):
            return cells, reader.line_num
    return [], reader.line_num


def _score(cells: list[str]) -> tuple[bool, int, int]:
    names = [_normal(cell) for cell in cells]
    known = sum(name in KNOWN or name in SOURCE_ALIASES for name in names)
    return _source_column(cells) is not None, known, sum(map(bool, names))


def _source_column(header: list[str]) -> int | None:
    names = [_normal(h) for h in header]
    for alias in SOURCE_ALIASES:
        if alias in names:
            return names.index(alias)
    return None


Row = tuple[int, list[str] | str]  # a line number and the row's cells, or why it is unreadable


class _Rows:
    """Blocking row reader; `batch()` returns the next rows that are not blank."""

    def __init__(self, path: Path, layout: Layout) -> None:
        self._label = layout.decoding.label
        self._handle = _text(path, layout.decoding)
        self._reader = csv.reader(self._handle, delimiter=layout.delimiter, strict=True)
        self._iter: Iterator[list[str]] = iter(self._reader)
        self._done = False
        for _ in self._iter:  # past the blank lines before the header, and the header
            if self._reader.line_num >= layout.header_end:
                break
        self._line = self._reader.line_num

    def batch(self) -> list[Row]:
        rows: list[Row] = []
        while len(rows) < BATCH and (row := self._next()) is not None:
            if isinstance(row[1], str) or any(cell.strip() for cell in row[1]):
                rows.append(row)
        return rows

    def _next(self) -> Row | None:
        start = self._line + 1
        cells: list[str] | str | None
        try:
            cells = None if self._done else next(self._iter, None)
        except csv.Error as exc:
            cells = f"unparsable line: {exc}"
        except UnicodeDecodeError:
            self._done = True  # the decoder cannot resynchronise; stop reading this manifest
            return start, f"unparsable line: not {self._label}"
        self._line = self._reader.line_num
        return None if cells is None else (start, cells)

    def close(self) -> None:
        self._handle.close()


def count_rows(path: Path, encoding: str | None = None) -> int:
    """How many rows (blank ones aside) the manifest holds. Blocking: for a worker thread."""
    rows = _Rows(path, _layout(path, _decoding(path, encoding)))
    try:
        total = 0
        while batch := rows.batch():
            total += len(batch)
        return total
    finally:
        rows.close()


async def read_manifest(
    path: Path, *, purpose: str | None, encoding: str | None = None, origin: str | None = None
) -> AsyncIterator[Entry]:
    """The manifest's rows as entries; `encoding` as for `read_header`, which a run calls first:
    this does not check the whole file again. `origin` is recorded on each (the manifest)."""
    layout = await asyncio.to_thread(lambda: _layout(path, _decoding(path, encoding)))
    rows = await asyncio.to_thread(_Rows, path, layout)
    try:
        columns = _Columns(layout.header, base=path.resolve().parent, origin=origin)
        while batch := await asyncio.to_thread(columns.batch, rows, purpose):
            for entry in batch:
                yield entry
    finally:
        rows.close()


class _Columns:
    """Builds each row's Entry: one object per row, all its fields at once (a copy made with
    `dataclasses.replace` costs microseconds, and a million-row manifest pays for each), and a
    local path resolved with `os.path` (a few times cheaper than pathlib), remembered for the
    most recent names written (a manifest often names one file on many rows)."""

    def __init__(self, header: list[str], *, base: Path, origin: str | None = None) -> None:
        self.origin = origin
        self.names = [_normal(h) for h in header]
        source = _source_column(header)
        assert source is not None
        self.source = source
        self.base = base
        self._base = str(base)
        self._paths: dict[str, tuple[str, str, str]] = {}  # text -> (path, key, base name)
        self._stats: dict[str, tuple[int | None, int | None]] = {}  # path -> (size, mtime), a batch
        self.index = {n: i for i, n in enumerate(self.names) if n in KNOWN}
        # Kept as they are; a column with no name (a trailing delimiter makes one) only where a
        # row has something in it.
        self.extra = {
            i: header[i] if n else f"column {i + 1}"
            for i, n in enumerate(self.names)
            if i != source and n not in KNOWN and n not in SOURCE_ALIASES
        }

    def batch(self, rows: _Rows, default_purpose: str | None) -> list[Entry]:
        """Blocking: the next rows as entries, each local file's size and mtime looked up as
        the folder crawl does (once per file named in the batch), so that no second thread hop
        is needed for them; a file that cannot be stat'ed is left for the run to report."""
        self._stats.clear()
        return [self.entry(line, cells, default_purpose) for line, cells in rows.batch()]

    def entry(self, line: int, cells: list[str] | str, default_purpose: str | None) -> Entry:
        cells = self._fit(cells)
        if isinstance(cells, str):
            return self._unreadable(line, cells)
        get = {n: cells[i].strip() for n, i in self.index.items()}
        written = cells[self.source]
        external_id = get.get("external_id") or None
        extra = self._extra(cells) if self.extra else None
        purpose = (get.get("purpose") or default_purpose or "").lower()
        error = self._row_error(written, purpose)
        if error is not None:
            return Entry(
                source=_identity(self._ledger_key(written) or self._place(line), external_id),
                purpose=purpose if purpose in PURPOSES else "",
                filename="",
                written=written,
                line=line,
                external_id=external_id,
                extra=extra,
                error=error,
                origin=self.origin,
            )
        text, filename = written.strip(), get.get("filename") or ""
        if is_s3_url(text):  # the key as it is, not percent-encoded
            name = filename or split_s3_url(text)[1].rsplit("/", 1)[-1]
            path, key = None, source_key(text)
        elif "://" in text:
            name = filename or unquote(urlsplit(text).path.rsplit("/", 1)[-1]) or "download"
            path, key = None, text
        else:
            path, key, name = self._local(text)
            name = filename or name
        size, mtime_ns = self._stat(path) if path is not None else (None, None)
        return Entry(
            source=_identity(key, external_id),
            purpose=purpose,
            filename=name,
            written=written,
            path=path,
            url=text if path is None else None,
            line=line,
            external_id=external_id,
            extra=extra,
            size=size,
            mtime_ns=mtime_ns,
            origin=self.origin,
        )

    def _stat(self, path: str) -> tuple[int | None, int | None]:
        known = self._stats.get(path)
        if known is None:
            try:
                info = os.stat(path)
                known = (info.st_size, info.st_mtime_ns)
            except (OSError, ValueError):  # the run stats it again, and says why it cannot
                known = (None, None)
            self._stats[path] = known
        return known

    def _place(self, line: int) -> str:
        """The key of a row with no usable source: its place in the manifest."""
        return f"{self.base}#line-{line}"

    def _unreadable(self, line: int, reason: str) -> Entry:
        return Entry(
            source=self._place(line),
            purpose="",
            filename="",
            written="",
            line=line,
            error=reason,
            origin=self.origin,
        )

    def _fit(self, cells: list[str] | str) -> list[str] | str:
        """The row's cells, one per column: short rows padded, empty cells past the last column
        (a trailing delimiter) dropped; a string says why the row cannot be read."""
        width = len(self.names)
        if isinstance(cells, str) or len(cells) <= width:
            return cells if isinstance(cells, str) else cells + [""] * (width - len(cells))
        if any(cell.strip() for cell in cells[width:]):
            return f"unparsable line: {len(cells)} fields, the header has {width}"
        return cells[:width]

    def _extra(self, cells: list[str]) -> dict[str, str] | None:
        extra = {
            name: cells[i] for i, name in self.extra.items() if self.names[i] or cells[i].strip()
        }
        return extra or None

    def _key(self, written: str) -> str:
        text = written.strip()
        if not text or "://" in text:
            return text
        return os.path.abspath(os.path.join(self._base, os.path.expanduser(text)))

    def _local(self, text: str) -> tuple[str, str, str]:
        """(absolute path, ledger key, base name) of a local source as written."""
        known = self._paths.get(text)
        if known is None:
            path = self._key(text)
            known = (path, source_key(path), os.path.basename(path))
            if len(self._paths) >= PATHS_KEPT:
                self._paths.clear()
            self._paths[text] = known
        return known

    def _ledger_key(self, written: str) -> str:
        """What a good row naming the same source would be recorded under."""
        key = self._key(written)
        return source_key(key) if key and ("://" not in key or is_s3_url(key)) else key

    def _row_error(self, written: str, purpose: str) -> str | None:
        if not written.strip():
            return "empty source"
        if not purpose:
            return "no purpose: the row has none and no --purpose given"
        if purpose not in PURPOSES:
            return f"unknown purpose {purpose!r} (use one of: {', '.join(PURPOSES)})"
        if "://" in written:
            text = written.strip()
            scheme = urlsplit(text).scheme.lower()
            if scheme == "s3":
                return _object_error(text)
            if scheme not in ("http", "https"):
                return f"unsupported scheme {scheme!r} (only http, https and s3)"
        return None


def _object_error(text: str) -> str | None:
    """Why an `s3://` row names no object, or None."""
    try:
        key = split_s3_url(text)[1]
    except ValueError as exc:
        return str(exc)
    if not key or key.endswith("/"):
        return f"{text} names no object (s3://BUCKET/KEY; a prefix is a SOURCE of its own)"
    return None


def _identity(key: str, external_id: str | None) -> str:
    """A row's key in the ledger: its resolved source, told apart by the catalogue's own key, so
    two rows naming one URL under two external_ids are two records (both get the ids)."""
    return f"{key} [external_id={external_id}]" if external_id else key
