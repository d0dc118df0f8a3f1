"""Where entries come from: a folder crawl or a CSV manifest, streamed one `Entry` at a time.

Sources never touch the ledger or the network; a problem with one entry (no purpose, a bad manifest
row) travels on the entry as `error` so that the runner records it like any other failure.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.entry import Entry
from pipeline.core.errors import UsageError

if TYPE_CHECKING:
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
    path: Path
    is_manifest: bool


def check_sources(
    raw: Sequence[str], manifests: Sequence[str] = (), *, encoding: str | None = None
) -> list[Source]:
    """Every SOURCE must be a folder or a .csv manifest that exists (`--manifest` files may have
    any name), and every manifest must decode (in `encoding` when it has no byte-order mark,
    else UTF-8) and have a source column; else a usage error, before any work starts."""
    from pipeline.sources.manifest import check_encoding, read_header

    if not raw and not manifests:
        raise UsageError("no SOURCE given: name a folder or a .csv manifest")
    if encoding is not None:
        check_encoding(encoding)
    checked = []
    for item, forced in [(r, False) for r in raw] + [(m, True) for m in manifests]:
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


async def iter_batches(
    sources: Sequence[Source],
    *,
    purpose: str | None,
    stats: CrawlStats,
    encoding: str | None = None,
    unchanged: Unchanged | None = None,
) -> AsyncIterator[list[Entry]]:
    """Entries in batches (a directory listing, a few hundred manifest rows), so that what is
    looked up, decided and recorded per entry can be done per batch. `encoding` is for
    manifests without a byte-order mark; `unchanged` for folders (see `folder.Unchanged`)."""
    from pipeline.sources.folder import walk_folder
    from pipeline.sources.manifest import read_manifest

    for source in sources:
        origin = os.path.abspath(source.path)
        if source.is_manifest:
            rows = read_manifest(source.path, purpose=purpose, encoding=encoding, origin=origin)
            batches = _batched(rows)
        else:
            batches = walk_folder(
                source.path, purpose=purpose, stats=stats, origin=origin, unchanged=unchanged
            )
        async for batch in batches:
            yield batch


async def _batched(entries: AsyncIterator[Entry], size: int = 500) -> AsyncIterator[list[Entry]]:
    batch: list[Entry] = []
    async for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
