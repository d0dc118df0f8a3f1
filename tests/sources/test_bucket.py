"""A bucket's listing as a folder crawl: purposes from folder names, hidden keys, other files
and folder markers, batches per page; and s3:// sources on the command line. The listing is a
fake here (pages given as they are); the real one is tested against moto in tests/transport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pipeline.core.errors import UsageError
from pipeline.core.objects import StoredObject
from pipeline.sources import CrawlStats, Source, check_sources, iter_batches
from pipeline.sources.bucket import bucket_origin, walk_bucket


class Pages:
    def __init__(self, *keys: list[str]) -> None:
        self.keys = keys
        self.asked: list[tuple[str, str]] = []

    async def pages(self, bucket: str, prefix: str) -> AsyncIterator[list[StoredObject]]:
        self.asked.append((bucket, prefix))
        for page in self.keys:
            yield [StoredObject(key, 10 + n, f"etag{n}") for n, key in enumerate(page)]


async def walk(url: str, lister: Pages, purpose: str | None = None) -> tuple[list, CrawlStats]:
    stats = CrawlStats()
    batches = [b async for b in walk_bucket(url, lister=lister, purpose=purpose, stats=stats)]
    return batches, stats


async def test_a_prefix_is_a_folder_listed_a_page_at_a_time() -> None:
    lister = Pages(
        ["cat/song/a.wav", "cat/song/sub/b.MP3", "cat/voice/c d.wav"],
        ["cat/x/instrumentals/é.flac", "cat/x/e.wav"],
    )
    batches, stats = await walk("s3://bucket/cat", lister)
    assert lister.asked == [("bucket", "cat/")]  # whole segments: not cat2/
    assert [len(b) for b in batches] == [3, 2]
    entries = [e for b in batches for e in b]
    assert [(e.source, e.purpose, e.filename) for e in entries] == [
        ("s3://bucket/cat/song/a.wav", "song", "a.wav"),
        ("s3://bucket/cat/song/sub/b.MP3", "song", "b.MP3"),
        ("s3://bucket/cat/voice/c d.wav", "voice", "c d.wav"),
        ("s3://bucket/cat/x/instrumentals/é.flac", "instrumental", "é.flac"),
        ("s3://bucket/cat/x/e.wav", "", "e.wav"),
    ]
    first = entries[0]
    assert (first.url, first.size, first.etag, first.kind) == (first.source, 10, "etag0", "s3")
    assert first.origin == "s3://bucket/cat/"
    assert entries[-1].error is not None and entries[-1].error.startswith("no purpose")
    assert (stats.hidden, stats.ignored) == (0, 0)


async def test_hidden_keys_other_files_and_folder_markers_are_not_entries() -> None:
    lister = Pages(
        [
            "song/",
            "song/.DS_Store",
            "song/.hidden/a.wav",
            "song/../up.wav",
            "song/cover.jpg",
            "song/a//b.wav",
            "song/ok.wav",
        ]
    )
    batches, stats = await walk("s3://bucket", lister)
    assert [e.source for b in batches for e in b] == [
        "s3://bucket/song/a//b.wav",
        "s3://bucket/song/ok.wav",
    ]
    assert (stats.hidden, stats.ignored) == (3, 1)


async def test_the_named_folder_and_the_bucket_give_a_purpose_and_purpose_wins() -> None:
    batches, _ = await walk("s3://songs/", Pages(["a.wav"]))
    assert batches[0][0].purpose == "song"  # the bucket's root: its name, as a folder's
    batches, _ = await walk("s3://bkt/vocals/", Pages(["vocals/a.wav"]))
    assert batches[0][0].purpose == "voice"
    batches, _ = await walk(
        "s3://bkt/vocals/", Pages(["vocals/song/a.wav"]), purpose="instrumental"
    )
    assert batches[0][0].purpose == "instrumental"


async def test_a_key_with_control_characters_is_keyed_quoted_and_fetched_as_it_is() -> None:
    batches, _ = await walk("s3://bkt/song/", Pages(["song/tab\there.wav"]))
    entry = batches[0][0]
    assert entry.source == '"s3://bkt/song/tab\\there.wav"'  # as the ledger keys odd paths
    assert entry.url == "s3://bkt/song/tab\there.wav" and entry.filename == "tab\ufffdhere.wav"


def test_s3_sources_are_checked_for_a_bucket_and_keep_one_origin() -> None:
    (source,) = check_sources(["s3://bucket/some/prefix"])
    assert source == Source(None, url="s3://bucket/some/prefix")
    assert source.origin == bucket_origin("s3://bucket/some/prefix/") == "s3://bucket/some/prefix/"
    for bad in ("s3://", "s3:///key", "s3://a/x"):
        with pytest.raises(UsageError, match="no valid bucket name"):
            check_sources([bad])


async def test_iter_batches_lists_buckets_with_the_lister_given() -> None:
    sources = check_sources(["s3://bucket/song/"])
    lister = Pages(["song/a.wav"])
    stats = CrawlStats()
    got = [b async for b in iter_batches(sources, purpose=None, stats=stats, lister=lister)]
    assert [e.source for b in got for e in b] == ["s3://bucket/song/a.wav"]
    with pytest.raises(UsageError, match="no way to list buckets"):
        [b async for b in iter_batches(sources, purpose=None, stats=stats)]
