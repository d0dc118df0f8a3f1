"""Checks on an SQLite ledger's file, made before anything opens it: a path that cannot be, or
is not, a ledger is refused with `LedgerError` and left exactly as it was."""

from __future__ import annotations

import os

from pipeline.core.errors import LedgerError
from pipeline.ledger.location import Location

SQLITE_HEADER = b"SQLite format 3\x00"


def check_file(location: Location) -> None:
    """Refuse, without touching it, an SQLite path that cannot be, or is not, a ledger file."""
    path = location.path
    if path is None:
        return
    if path.is_dir():
        raise LedgerError(f"ledger {path} is a folder, not a file")
    if not path.exists():
        folder = path.parent
        if not folder.is_dir():
            raise LedgerError(f"cannot create ledger {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise LedgerError(f"cannot create ledger {path}: folder {folder} is not writable")
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc.strerror or exc}") from exc
    if header and header != SQLITE_HEADER:
        raise LedgerError(f"{path} is not an ingest ledger (not an SQLite file); left untouched")
    if not os.access(path, os.W_OK):
        raise LedgerError(f"ledger {path} is not writable")
