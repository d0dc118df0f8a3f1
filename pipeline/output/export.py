"""`ingest export`'s formats: the ledger's rows as JSON lines or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import orjson

from pipeline.core.records import EXPORT_FIELDS


class Exporter:
    """Turns batches of ledger rows (in the ledger's export column order, `extra` last, as its
    JSON text) into export text: JSON lines, or CSV with the manifests' own columns after ours.
    JSON lines are written by orjson (compact, UTF-8 as is; ten times the speed of `json`), so a
    million rows is a few seconds of formatting."""

    def __init__(
        self, fmt: str, columns: Sequence[str], extra_columns: Sequence[str], *, end: str = "\n"
    ) -> None:
        self.fmt = fmt
        self.extra_columns = list(extra_columns)
        self.end = end
        assert tuple(columns[: len(EXPORT_FIELDS)]) == EXPORT_FIELDS, "rows in the export order"
        self._retryable = EXPORT_FIELDS.index("retryable")

    def header(self) -> str:
        if self.fmt == "jsonl":
            return ""
        return _csv_text([[*EXPORT_FIELDS, *self.extra_columns]], self.end)

    def text(self, rows: Sequence[Sequence[Any]]) -> str:
        if self.fmt == "jsonl":
            return "".join([self._json_line(row) + self.end for row in rows])
        return _csv_text([self._csv_row(row) for row in rows], self.end)

    def _values(self, row: Sequence[Any]) -> list[Any]:
        values = list(row[: len(EXPORT_FIELDS)])
        values[self._retryable] = bool(values[self._retryable])
        return values

    def _json_line(self, row: Sequence[Any]) -> str:
        record: dict[str, Any] = dict(zip(EXPORT_FIELDS, self._values(row), strict=True))
        if row[-1]:
            record["extra"] = orjson.Fragment(row[-1])  # already JSON text, as the ledger keeps it
        return orjson.dumps(record).decode()

    def _csv_row(self, row: Sequence[Any]) -> list[str]:
        cells = [_cell(value) for value in self._values(row)]
        if not self.extra_columns:
            return cells
        extra = json.loads(row[-1]) if row[-1] else {}
        return cells + [extra.get(name, "") for name in self.extra_columns]


def _csv_text(rows: Sequence[Sequence[str]], end: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=end).writerows(rows)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
