"""Where entries come from: a folder crawl, a CSV manifest or a bucket's listing, streamed in
batches of `Entry`.

Sources never touch the ledger or the network: a bucket is listed by a `Lister` the run gives
them (the transport's). A problem with one entry (no purpose, a bad manifest row) travels on the
entry as `error` so that the runner records it like any other failure.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.entry import Entry
from pipeline.core.errors import UsageError
from pipeline.core.objects import is_s3_url, split_s3_url

if TYPE_CHECKING:
    from pipeline.sources.bucket import Lister
    from pipeline.sources.folder import Unchanged


@dataclasses.dataclass
class CrawlStats:
    """What a crawl saw besides entries."""

    ignored: int = 0  # files without an audio extension (cover art, cue sheets, text)
    hidden: int = 0  # hidden files and folders skipped
    loops: int = 0  # folders reached twice through symlinks, skipped
    unreadable: int = 0  # folders that could not be listed


@dataclasses.dataclass(frozen=True)
class Source:
    """A folder or a manifest (`path`), or an `s3://` prefix taken as a folder (`url`)."""

    path: Path | None
    is_manifest: bool = False
    url: str | None = None

    @property
    def origin(self) -> str:
        """What entries found in it record as where they came from (the fleet's unit of work):
        the absolute path, or the prefix as `s3://bucket/prefix/`."""
        if self.url is not None:
            from pipeline.sources.bucket import bucket_origin

            return bucket_origin(self.url)
        assert self.path is not None
        return os.path.abspath(self.path)


def check_sources(
    raw: Sequence[str], manifests: Sequence[str] = (), *, encoding: str | None = None
) -> list[Source]:
    """Every SOURCE must be a folder or a .csv manifest that exists (`--manifest` files may have
    any name), or an `s3://bucket/prefix/` URL, and every manifest must decode (in `encoding`
    when it has no byte-order mark, else UTF-8) and have a source column; else a usage error,
    before any work starts. (Whether a bucket exists, only its store can say: the listing.)"""
    from pipeline.sources.manifest import check_encoding, read_header

    if not raw and not manifests:
        raise UsageError("no SOURCE given: name a folder, a .csv manifest or an s3:// prefix")
    if encoding is not None:
        check_encoding(encoding)
    checked = []
    for item, forced in [(r, False) for r in raw] + [(m, True) for m in manifests]:
        if not forced and is_s3_url(item):
            checked.append(_bucket(item))
            continue
        path = Path(item).expanduser()
        if not path.exists():
            raise UsageError(f"source not found: {item}")
        if path.is_dir() and not forced:
            checked.append(Source(path, is_manifest=False))
        elif path.is_file() and (forced or path.suffix.lower() == ".csv"):
            read_header(path, encoding)
            checked.append(Source(path, is_manifest=True))
        else:
            raise UsageError(f"source is neither a folder nor a .csv manifest: {item}")
    return checked


def _bucket(item: str) -> Source:
    try:
        split_s3_url(item)
    except ValueError as exc:
        raise UsageError(f"source {item}: {exc}") from None
    return Source(None, url=item)


async def iter_batches(
    sources: Sequence[Source],
    *,
    purpose: str | None,
    stats: CrawlStats,
    encoding: str | None = None,
    lister: Lister | None = None,
    unchanged: Unchanged | None = None,
) -> AsyncIterator[list[Entry]]:
    """Entries in batches (a directory listing, a few hundred manifest rows, a bucket's listing
    page), so that what is looked up, decided and recorded per entry can be done per batch.
    `encoding` is for manifests without a byte-order mark; `lister` lists buckets; `unchanged`
    leaves out a folder's done, unchanged files (see `folder.Unchanged`)."""
    for source in sources:
        async for batch in _batches_of(source, purpose, stats, encoding, lister, unchanged):
            yield batch


def _batches_of(
    source: Source,
    purpose: str | None,
    stats: CrawlStats,
    encoding: str | None,
    lister: Lister | None,
    unchanged: Unchanged | None,
) -> AsyncIterator[list[Entry]]:
    from pipeline.sources.bucket import walk_bucket
    from pipeline.sources.folder import walk_folder
    from pipeline.sources.manifest import read_manifest

    origin = source.origin
    if source.url is not None:
        if lister is None:
            raise UsageError(f"source {source.url}: no way to list buckets was given")
        return walk_bucket(source.url, lister=lister, purpose=purpose, stats=stats)
    assert source.path is not None
    if source.is_manifest:
        rows = read_manifest(source.path, purpose=purpose, encoding=encoding, origin=origin)
        return _batched(rows)
    return walk_folder(
        source.path, purpose=purpose, stats=stats, origin=origin, unchanged=unchanged
    )


async def _batched(entries: AsyncIterator[Entry], size: int = 500) -> AsyncIterator[list[Entry]]:
    batch: list[Entry] = []
    async for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
