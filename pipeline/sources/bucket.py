"""A bucket as a folder: the objects under an `s3://bucket/prefix/`, a listing page at a time.

The listing itself is the transport's (`Lister`, given in): pages of objects as the store
sends them, in key order, the next one asked for while this one is used, so a listing of
millions of keys starts at once and memory holds a page or two. Each page becomes a batch of
entries the way a folder crawl makes them: keys are paths, `/` separating folders; a key with a
segment starting with `.` is hidden and skipped (`.` and `..` segments too); keys without an
audio extension are counted and ignored; folder markers (keys ending in `/`) are passed over;
the purpose comes from `--purpose`, or else from the nearest enclosing folder named for one,
the prefix's own last segment included (the bucket's name at its root), looking no higher.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Protocol

from pipeline.core.entry import Entry
from pipeline.core.names import source_key, wire_filename
from pipeline.core.objects import StoredObject, folder_prefix, s3_url, split_s3_url
from pipeline.sources import CrawlStats
from pipeline.sources.folder import AUDIO_EXTENSIONS, NO_PURPOSE, folder_purpose


class Lister(Protocol):
    def pages(self, bucket: str, prefix: str) -> AsyncIterator[list[StoredObject]]:
        """The objects under `prefix`, one listing page at a time."""
        ...


def bucket_origin(url: str) -> str:
    """The one spelling of a bucket source, as a folder: `s3://bucket/prefix/`."""
    bucket, key = split_s3_url(url)
    return s3_url(bucket, folder_prefix(key))


async def walk_bucket(
    url: str, *, lister: Lister, purpose: str | None, stats: CrawlStats
) -> AsyncIterator[list[Entry]]:
    """Batches of the entries under `url` (an `s3://` prefix, taken as a folder), one per
    listing page; each records `bucket_origin(url)` as where it was found."""
    origin = bucket_origin(url)
    bucket, prefix = split_s3_url(origin)
    root = prefix.rstrip("/").rsplit("/", 1)[-1] if prefix else bucket
    page_entries = _Entries(bucket, prefix, root, purpose, origin, stats)
    async for page in lister.pages(bucket, prefix):
        batch = page_entries.of(page)
        if batch:
            yield batch


class _Entries:
    """Listed objects to entries, remembering each folder's purpose across pages (keys come in
    order, so one folder's objects follow one another). A rerun lists and skips every object,
    so this is kept to a few microseconds an object."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        root: str,
        purpose: str | None,
        origin: str,
        stats: CrawlStats,
    ) -> None:
        self.base = s3_url(bucket, "")
        self.prefix = prefix
        self.root = root
        self.purpose = purpose
        self.origin = origin
        self.stats = stats
        self._folders: dict[str, tuple[bool, str | None]] = {}  # hidden?, purpose

    def of(self, page: list[StoredObject]) -> list[Entry]:
        entries = []
        skip, stats, splitext = len(self.prefix), self.stats, os.path.splitext
        for item in page:
            folder, _, name = item.key[skip:].rpartition("/")
            if not name:
                continue  # a folder marker
            hidden, purpose = self._folders.get(folder) or self._folder(folder)
            if hidden or name.startswith("."):
                stats.hidden += 1
            elif splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                stats.ignored += 1
            else:
                entries.append(self._entry(item, name, self.purpose or purpose))
        if len(self._folders) > 4096:
            self._folders.clear()  # keys are in order: the folders seen long ago are done
        return entries

    def _folder(self, folder: str) -> tuple[bool, str | None]:
        parts = folder.split("/") if folder else []
        known = any(part.startswith(".") for part in parts), folder_purpose([self.root, *parts])
        self._folders[folder] = known
        return known

    def _entry(self, item: StoredObject, name: str, purpose: str | None) -> Entry:
        url = self.base + item.key
        plain = url.isascii() and url.isprintable()  # most keys: then each form is the text
        return Entry(
            source=url if plain else source_key(url),
            purpose=purpose or "",
            filename=name if plain else wire_filename(name),
            url=url,
            error=None if purpose else NO_PURPOSE,
            size=item.size,
            etag=item.etag,
            origin=self.origin,
        )
