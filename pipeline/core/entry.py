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
    An object in a bucket has an `s3://bucket/key` `url`; a bucket listing gives its `size` and
    `etag` (a manifest row naming one gives neither: they are learnt when it is fetched).

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
    origin: str | None = None  # the folder, manifest or s3:// listing it was found in
    etag: str | None = None  # an object's ETag, as its bucket's listing gave it

    @property
    def kind(self) -> str:
        """`file`, `url` (http or https) or `s3` (an object in a bucket)."""
        if self.url is None:
            return "file"
        return "s3" if self.url[:5].lower() == "s3://" else "url"
