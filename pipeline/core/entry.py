"""One thing to upload, as a source yields it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(slots=True)
class Entry:
    """One thing to upload. `source` is its key in the ledger: the absolute path of a local file
    (see `pipeline.core.names.source_key`), or the URL; `written` is a manifest row's text as
    written; `path` is the local file when there is one; `url` when it must be fetched. `size`
    and `mtime_ns` are the file's, when the crawl has already looked (a folder crawl always has).

    Treat it as immutable (`dataclasses.replace` for a changed copy); it is not declared frozen
    because a crawl makes one per file and a frozen dataclass costs twice as much to build."""

    source: str
    purpose: str  # "" when unknown; then `error` says so
    filename: str
    written: str | None = None  # a manifest row's source exactly as written
    path: str | None = None  # a file name as the operating system gave it (see pipeline.core.names)
    url: str | None = None
    line: int | None = None
    external_id: str | None = None
    extra: Mapping[str, str] | None = None
    error: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    origin: str | None = None  # the folder or manifest it was found in (absolute)

    @property
    def kind(self) -> str:
        return "url" if self.url is not None else "file"
