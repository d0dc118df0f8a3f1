from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.core.entry import Entry
from pipeline.sources import CrawlStats
from pipeline.sources import folder as folder_mod
from pipeline.sources.folder import NO_PURPOSE, folder_purpose, walk_folder


async def crawl(root: Path, purpose: str | None = None) -> tuple[list[Entry], CrawlStats]:
    stats = CrawlStats()
    entries = [e async for batch in walk_folder(root, purpose=purpose, stats=stats) for e in batch]
    return entries, stats


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


async def test_recursive_audio_only_hidden_skipped(tmp_path: Path) -> None:
    touch(tmp_path / "Songs" / "a" / "one.WAV")
    touch(tmp_path / "Songs" / "a" / "two.mp3")
    touch(tmp_path / "Songs" / "a" / "cover.jpg")
    touch(tmp_path / "Songs" / "notes.txt")
    touch(tmp_path / "Songs" / ".hidden.wav")
    touch(tmp_path / "Songs" / ".cache" / "three.wav")
    for ext in ("flac", "m4a", "aac", "ogg", "opus", "aif", "aiff", "wma"):
        touch(tmp_path / "Songs" / "other" / f"x.{ext}")
    entries, stats = await crawl(tmp_path)
    names = sorted(e.filename for e in entries)
    assert names == sorted(
        ["one.WAV", "two.mp3"]
        + [f"x.{e}" for e in ("flac", "m4a", "aac", "ogg", "opus", "aif", "aiff", "wma")]
    )
    assert stats.ignored == 2
    assert stats.hidden == 2
    assert all(e.purpose == "song" and e.error is None for e in entries)
    assert all(os.path.isabs(e.source) for e in entries)


@pytest.mark.parametrize(
    ("folders", "expected"),
    [
        (["cat", "songs", "album"], "song"),
        (["cat", "Vocals"], "voice"),
        (["cat", "ACAPELLA", "x"], "voice"),
        (["instrumentals"], "instrumental"),
        (["song", "voice"], "voice"),
        (["cat", "misc"], None),
    ],
)
def test_nearest_folder_names_the_purpose(folders: list[str], expected: str | None) -> None:
    assert folder_purpose(folders) == expected


async def test_flag_overrides_and_missing_purpose_is_reported(tmp_path: Path) -> None:
    touch(tmp_path / "misc" / "a.wav")
    entries, _ = await crawl(tmp_path)
    assert entries[0].purpose == "" and entries[0].error == NO_PURPOSE
    entries, _ = await crawl(tmp_path, purpose="instrumental")
    assert entries[0].purpose == "instrumental" and entries[0].error is None


async def test_purpose_is_not_taken_from_above_the_root(tmp_path: Path) -> None:
    touch(tmp_path / "song" / "catalogue" / "a.wav")
    entries, _ = await crawl(tmp_path / "song" / "catalogue")
    assert entries[0].error == NO_PURPOSE


async def test_symlinks_followed_without_loops(tmp_path: Path) -> None:
    touch(tmp_path / "voice" / "a.wav")
    (tmp_path / "voice" / "loop").symlink_to(tmp_path, target_is_directory=True)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    touch(outside / "b.mp3")
    (tmp_path / "voice" / "linked").symlink_to(outside, target_is_directory=True)
    entries, stats = await crawl(tmp_path)
    assert sorted(e.filename for e in entries) == ["a.wav", "b.mp3"]
    assert stats.loops == 1


async def test_streams_before_the_tree_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        touch(tmp_path / "song" / f"d{i:02d}" / "a.wav")
    listed: list[str] = []
    real = folder_mod.list_dir

    def counting(path: str) -> folder_mod.Listing:
        listed.append(path)
        return real(path)

    monkeypatch.setattr(folder_mod, "list_dir", counting)
    walker = walk_folder(tmp_path, purpose=None, stats=CrawlStats())
    first = await anext(walker)
    assert [e.filename for e in first] == ["a.wav"]
    assert len(listed) == 3  # root, song/, song/d00/: not the other 19 folders
    await walker.aclose()
