"""A count of what the sources hold, taken ahead of the run so a person sees a total and an ETA.

The run itself streams its sources (the first upload starts before the tree is listed); this
walks the same sources again, in the background, only counting: a folder's audio files and their
bytes (one `stat` per file, as the crawl does), a manifest's rows, a bucket's objects (a second
listing). It is cheap next to the run,
and only taken when someone is watching (the live display on a terminal).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from pipeline.core.entry import Entry
from pipeline.sources import CrawlStats, Source

if TYPE_CHECKING:
    from pipeline.sources.bucket import Lister


@dataclasses.dataclass
class Census:
    files: int = 0  # entries found so far
    bytes: int = 0  # their sizes, where a stat gave one (folders; not URLs)
    done: bool = False  # every source has been counted


async def take_census(
    sources: Sequence[Source],
    census: Census,
    *,
    encoding: str | None = None,
    lister: Lister | None = None,
) -> None:
    """Count `sources` into `census`; a bucket is listed a second time (by `lister`)."""
    from pipeline.sources.manifest import count_rows

    for source in sources:
        if source.url is not None and lister is None:
            continue  # nothing to list it with: counted as the run lists it
        if source.is_manifest and source.path is not None:
            census.files += await asyncio.to_thread(count_rows, source.path, encoding)
            continue
        async for batch in _walk(source, lister):
            census.files += len(batch)
            census.bytes += sum(entry.size or 0 for entry in batch)
    census.done = True


def _walk(source: Source, lister: Lister | None) -> AsyncIterator[list[Entry]]:
    from pipeline.sources.bucket import walk_bucket
    from pipeline.sources.folder import walk_folder

    if source.url is not None and lister is not None:
        return walk_bucket(source.url, lister=lister, purpose="song", stats=CrawlStats())
    assert source.path is not None
    return walk_folder(source.path, purpose="song", stats=CrawlStats())
