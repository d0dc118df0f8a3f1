"""A count of what the sources hold, taken ahead of the run so a person sees a total and an ETA.

The run itself streams its sources (the first upload starts before the tree is listed); this
walks the same sources again, in the background, only counting: a folder's audio files and their
bytes (one `stat` per file, as the crawl does), a manifest's rows. It is cheap next to the run,
and only taken when someone is watching (the live display on a terminal).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from pipeline.sources import CrawlStats, Source


@dataclasses.dataclass
class Census:
    files: int = 0  # entries found so far
    bytes: int = 0  # their sizes, where a stat gave one (folders; not URLs)
    done: bool = False  # every source has been counted


async def take_census(
    sources: Sequence[Source], census: Census, *, encoding: str | None = None
) -> None:
    from pipeline.sources.folder import walk_folder
    from pipeline.sources.manifest import count_rows

    for source in sources:
        if source.is_manifest:
            census.files += await asyncio.to_thread(count_rows, source.path, encoding)
            continue
        async for batch in walk_folder(source.path, purpose="song", stats=CrawlStats()):
            census.files += len(batch)
            census.bytes += sum(entry.size or 0 for entry in batch)
    census.done = True
