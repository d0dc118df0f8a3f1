"""Crawl a catalogue folder, streaming entries as they are found.

One directory is listed at a time (in a worker thread), so the first entry goes out before the
tree is known, and memory holds one directory listing plus the set of folders already visited
(which is how symlink loops are cut). Hidden files and folders are skipped; files without an audio
extension are counted, not yielded. The purpose comes from `--purpose`, or else from the nearest
enclosing folder named for one, looking no higher than the crawl's root.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from pipeline.sources import CrawlStats, Entry

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus", ".aif", ".aiff", ".wma"}
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


def folder_purpose(folders: list[str]) -> str | None:
    """The purpose named by the nearest folder, `folders` listed outermost first."""
    for name in reversed(folders):
        purpose = FOLDER_PURPOSES.get(name.lower())
        if purpose:
            return purpose
    return None


def _list_dir(path: str) -> tuple[list[str], list[str], int, bool]:
    """(sub-folders, files, hidden count, readable) of one directory, sorted by name."""
    folders, files, hidden = [], [], 0
    try:
        with os.scandir(path) as it:
            for item in it:
                if item.name.startswith("."):
                    hidden += 1
                    continue
                try:
                    if item.is_dir():  # follows symlinks
                        folders.append(item.name)
                    elif item.is_file():
                        files.append(item.name)
                except OSError:
                    continue
    except OSError:
        return [], [], hidden, False
    return sorted(folders), sorted(files), hidden, True


async def walk_folder(
    root: Path, *, purpose: str | None, stats: CrawlStats
) -> AsyncIterator[Entry]:
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
        subfolders, files, hidden, readable = await asyncio.to_thread(_list_dir, folder)
        stats.hidden += hidden
        stats.unreadable += 0 if readable else 1
        entry_purpose = purpose or folder_purpose(names)
        for name in files:
            if os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                stats.ignored += 1
                continue
            yield Entry(
                source=os.path.join(folder, name),
                purpose=entry_purpose or "",
                filename=name,
                path=Path(folder, name),
                error=None if entry_purpose else NO_PURPOSE,
            )
        for sub in reversed(subfolders):
            stack.append((os.path.join(folder, sub), [*names, sub]))
