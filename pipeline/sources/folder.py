"""Crawl a catalogue folder, streaming one batch of entries per directory.

One directory is listed at a time (in a worker thread, with one `stat` per audio file), so the
first entries go out before the tree is known, and memory holds one directory listing plus the
set of folders already visited (which is how symlink loops are cut). Hidden files and folders are
skipped; files without an audio extension are counted, not yielded. The purpose comes from
`--purpose`, or else from the nearest enclosing folder named for one, looking no higher than the
crawl's root.

On a rerun the crawl can be given an `Unchanged`: the ledger's answer, for one listing, of which
files are done and unchanged since. Those are counted and left out in the listing's own thread,
with no entry made, so a rerun over an unchanged catalogue costs little more than the listing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Protocol

from pipeline.core.entry import Entry
from pipeline.core.names import is_plain, source_key, wire_filename
from pipeline.sources import CrawlStats

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus", ".aif", ".aiff", ".wma"}
    # formats the decoder converts (or refuses by name: DSD)
    | {".aifc", ".oga", ".wv", ".ape", ".tta", ".tak", ".caf", ".au", ".mp2", ".w64", ".mka"}
    | {".ac3", ".amr", ".shn", ".dsf", ".dff"}
)
FOLDER_PURPOSES = {
    "song": "song",
    "songs": "song",
    "voice": "voice",
    "vocals": "voice",
    "acapella": "voice",
    "instrumental": "instrumental",
    "instrumentals": "instrumental",
}
NO_PURPOSE = "no purpose: not under a song/voice/instrumental folder and no --purpose given"
BATCH = 512  # entries per batch at most, so a huge directory still streams


class Unchanged(Protocol):
    """What the crawl asks of the ledger on a rerun (`pipeline.ledger.unchanged`)."""

    def done(self, purpose: str, files: Sequence[tuple[str, int, int]]) -> set[str]:
        """Of a listing's files (ledger key, size, mtime_ns), the keys known done and unchanged,
        to leave out. Called in the listing's worker thread."""
        ...

    def skipped(self, count: int) -> None:
        """`count` files were left out so (called on the event loop)."""
        ...


def folder_purpose(folders: list[str]) -> str | None:
    """The purpose named by the nearest folder, `folders` listed outermost first."""
    for name in reversed(folders):
        purpose = FOLDER_PURPOSES.get(name.lower())
        if purpose:
            return purpose
    return None


@dataclasses.dataclass
class Listing:
    """One directory: sub-folders, audio files with (name, size, mtime_ns), and what was skipped."""

    folders: list[str] = dataclasses.field(default_factory=list)
    files: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)
    hidden: int = 0
    ignored: int = 0
    readable: bool = True


def list_dir(path: str) -> Listing:
    """List one directory, sorted by name. Blocking: call it in a worker thread."""
    listing = Listing()
    try:
        with os.scandir(path) as it:
            for item in it:
                _classify(item, listing)
    except OSError:
        listing.readable = False
    listing.folders.sort()
    listing.files.sort()
    return listing


def _classify(item: os.DirEntry[str], listing: Listing) -> None:
    if item.name.startswith("."):
        listing.hidden += 1
        return
    try:
        if item.is_dir():  # follows symlinks
            listing.folders.append(item.name)
            return
        if os.path.splitext(item.name)[1].lower() not in AUDIO_EXTENSIONS:
            listing.ignored += item.is_file()
            return
        info = item.stat()  # follows symlinks; a broken one raises and is skipped
    except OSError:
        return
    if stat.S_ISREG(info.st_mode):
        listing.files.append((item.name, info.st_size, info.st_mtime_ns))


async def walk_folder(
    root: Path,
    *,
    purpose: str | None,
    stats: CrawlStats,
    origin: str | None = None,
    unchanged: Unchanged | None = None,
) -> AsyncIterator[list[Entry]]:
    """Batches of the entries under `root` (at most BATCH each, one directory at a time);
    `origin` is recorded on each (the folder the run was given). Files `unchanged` says are
    done and unchanged are counted with it, not yielded."""
    root_abs = os.path.abspath(root)
    seen: set[tuple[int, int]] = set()
    # Depth-first, in name order; each stack item is (path, folder names from the root down).
    stack: list[tuple[str, list[str]]] = [(root_abs, [os.path.basename(root_abs)])]
    while stack:
        folder, names = stack.pop()
        try:
            info = os.stat(folder)
        except OSError:
            stats.unreadable += 1
            continue
        if (info.st_dev, info.st_ino) in seen:
            stats.loops += 1
            continue
        seen.add((info.st_dev, info.st_ino))
        chosen = purpose or folder_purpose(names)
        listing, entries, skipped = await asyncio.to_thread(
            _listed, folder, chosen, origin, unchanged
        )
        _count(listing, stats)
        if skipped and unchanged is not None:
            unchanged.skipped(skipped)
        for start in range(0, len(entries), BATCH):
            yield entries[start : start + BATCH]
        for sub in reversed(listing.folders):
            stack.append((os.path.join(folder, sub), [*names, sub]))


def _count(listing: Listing, stats: CrawlStats) -> None:
    stats.hidden += listing.hidden
    stats.ignored += listing.ignored
    stats.unreadable += 0 if listing.readable else 1


def _listed(
    folder: str, purpose: str | None, origin: str | None, unchanged: Unchanged | None
) -> tuple[Listing, list[Entry], int]:
    """Blocking: list `folder` and make entries of its files, but for those `unchanged` says are
    done and unchanged (only counted)."""
    listing = list_dir(folder)
    files = listing.files
    keys = _keys(folder, [name for name, _, _ in files])
    skipped = 0
    if unchanged is not None and purpose and files:
        listed = [(key, size, mtime) for key, (_, size, mtime) in zip(keys, files, strict=True)]
        done = unchanged.done(purpose, listed)
        if done:
            kept = [i for i, key in enumerate(keys) if key not in done]
            skipped = len(files) - len(kept)
            files, keys = [files[i] for i in kept], [keys[i] for i in kept]
    return listing, _entries(folder, files, keys, purpose, origin), skipped


def _keys(folder: str, names: list[str]) -> list[str]:
    """Each file's ledger key (`source_key` of its path), the folder's part looked at once."""
    prefix = os.path.join(folder, "")
    if not is_plain(prefix):
        return [source_key(prefix + name) for name in names]
    return [prefix + name if is_plain(name) else source_key(prefix + name) for name in names]


def _entries(
    folder: str,
    files: list[tuple[str, int, int]],
    keys: list[str],
    purpose: str | None,
    origin: str | None,
) -> list[Entry]:
    error = None if purpose else NO_PURPOSE
    prefix = os.path.join(folder, "")
    return [
        Entry(
            source=key,
            purpose=purpose or "",
            filename=wire_filename(name),
            path=prefix + name,
            error=error,
            size=size,
            mtime_ns=mtime_ns,
            origin=origin,
        )
        for (name, size, mtime_ns), key in zip(files, keys, strict=True)
    ]
