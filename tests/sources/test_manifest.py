from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.entry import Entry
from pipeline.core.errors import UsageError
from pipeline.sources import check_sources
from pipeline.sources.manifest import read_manifest


async def rows(path: Path, purpose: str | None = None) -> list[Entry]:
    return [e async for e in read_manifest(path, purpose=purpose)]


def write(tmp_path: Path, text: str, *, bom: bool = False, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


@pytest.mark.parametrize("bom", [False, True])
async def test_bom_and_header_aliases(tmp_path: Path, bom: bool) -> None:
    path = write(tmp_path, "URL , Purpose\nhttp://h/a.wav,song\n", bom=bom)
    (entry,) = await rows(path)
    assert (entry.url, entry.purpose, entry.filename, entry.line) == (
        "http://h/a.wav",
        "song",
        "a.wav",
        2,
    )


async def test_paths_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "path,purpose\nsub/a.wav,voice\n/abs/b.mp3,voice\n")
    first, second = await rows(path)
    assert first.path == str(tmp_path / "sub" / "a.wav") and first.written == "sub/a.wav"
    assert first.source == str(tmp_path / "sub" / "a.wav")  # no external_id: the path alone
    assert second.path == "/abs/b.mp3"


async def test_quoting_extra_columns_and_known_columns(tmp_path: Path) -> None:
    text = (
        "source,purpose,filename,external_id,Album,isrc\n"
        '"http://h/x?a=1,2",instrumental,"Night, Day.mp3",CAT-1,"Blue, ""Live""",US123\n'
    )
    (entry,) = await rows(write(tmp_path, text))
    assert entry.url == "http://h/x?a=1,2"
    assert entry.filename == "Night, Day.mp3"
    assert entry.external_id == "CAT-1"
    assert entry.extra == {"Album": 'Blue, "Live"', "isrc": "US123"}


async def test_row_purpose_wins_over_the_flag(tmp_path: Path) -> None:
    path = write(tmp_path, "source,purpose\na.wav,voice\nb.wav,\n")
    first, second = await rows(path, purpose="song")
    assert (first.purpose, second.purpose) == ("voice", "song")


@pytest.mark.parametrize(
    ("codec", "newline"), [("utf-8", "\n"), ("utf-16", "\r\n"), ("utf-8-sig", "\r")]
)
async def test_bad_rows_carry_their_line_and_reason(
    tmp_path: Path, codec: str, newline: str
) -> None:
    text = (
        "source,purpose\n"
        "a.wav,song\n"  # 2: good
        ",song\n"  # 3: empty source
        "b.wav,podcast\n"  # 4: unknown purpose
        "ftp://h/c.wav,song\n"  # 5: unsupported scheme
        '"multi\nline.wav",song\n'  # 6-7: good, spans two lines
        "d.wav,song,extra\n"  # 8: too many fields
        'e.wav,"so"ng\n'  # 9: bad quoting
        "f.wav\n"  # 10: no purpose
        "g.wav,song\n"  # 11: good
    )
    path = tmp_path / "m.csv"
    path.write_bytes(text.replace("\n", newline).encode(codec))  # utf-16 writes a mark
    entries = await rows(path)
    errors = {e.line: e.error for e in entries}
    assert errors[2] is None and errors[6] is None and errors[11] is None
    assert errors[3] == "empty source"
    assert errors[4] is not None and errors[4].startswith("unknown purpose 'podcast'")
    assert errors[5] == "unsupported scheme 'ftp' (only http, https and s3)"
    assert errors[8] is not None and errors[8].startswith("unparsable line: 3 fields")
    assert errors[9] is not None and errors[9].startswith("unparsable line")
    assert errors[10] is not None and errors[10].startswith("no purpose")
    assert len({e.source for e in entries}) == len(entries)  # each bad row keeps its own key


async def test_a_bad_row_is_keyed_as_the_good_row_it_becomes_once_fixed(tmp_path: Path) -> None:
    name = "tab\there.wav"  # a control character: the ledger keeps such a path C-quoted
    bad = await rows(write(tmp_path, f'source,purpose\n"{name}",podcast\n', name="bad.csv"))
    good = await rows(write(tmp_path, f'source,purpose\n"{name}",song\n', name="good.csv"))
    assert bad[0].error is not None and good[0].error is None
    assert bad[0].source == good[0].source == f'"{tmp_path}/tab\\there.wav"'


def test_header_without_source_column_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, "file,kind\na.wav,song\n")
    with pytest.raises(UsageError, match=r"no source column .*found: 'file', 'kind'"):
        check_sources([str(path)])


def test_empty_manifest_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="empty"):
        check_sources([str(write(tmp_path, ""))])


def test_manifest_flag_takes_any_name(tmp_path: Path) -> None:
    path = write(tmp_path, "source\na.wav\n", name="list.txt")
    (checked,) = check_sources([], [str(path)])
    assert checked.is_manifest
    with pytest.raises(UsageError, match="neither a folder nor a .csv"):
        check_sources([str(path)])


async def test_large_manifest_streams(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("source,purpose\n")
        for i in range(20_000):
            out.write(f"http://h/{i}.wav,song\n")
    walker = read_manifest(path, purpose=None)
    first = await anext(walker)
    assert first.line == 2
    await walker.aclose()


async def test_rows_may_name_objects_in_a_bucket(tmp_path: Path) -> None:
    text = (
        "source,purpose,external_id\n"
        "s3://bucket/cat/Café del Mar.wav,song,\n"
        "s3://bucket/cat/a.wav,voice,CAT-9\n"
        "s3://bucket/cat/,song,\n"
        "s3://x/a.wav,song,\n"
        "ftp://h/a.wav,song,\n"
    )
    good, tagged, prefix, no_bucket, ftp = await rows(write(tmp_path, text))
    assert (good.url, good.source, good.filename, good.kind) == (
        "s3://bucket/cat/Café del Mar.wav",
        "s3://bucket/cat/Café del Mar.wav",  # the key as written, as a listing keys it
        "Café del Mar.wav",
        "s3",
    )
    assert good.etag is None and good.error is None
    assert tagged.source == "s3://bucket/cat/a.wav [external_id=CAT-9]"
    assert prefix.error is not None and "names no object" in prefix.error
    assert no_bucket.error is not None and "no valid bucket name" in no_bucket.error
    assert ftp.error == "unsupported scheme 'ftp' (only http, https and s3)"


async def test_every_kind_of_row_is_one_whole_entry(tmp_path: Path) -> None:
    text = (
        "source,purpose,external_id,album\n"
        "a.wav,song,e1,A\n"  # a local path: resolved, keyed by path and external_id
        "a.wav,song,e2,\n"  # the same path again (remembered): the same fields
        "http://h/d/b.mp3,voice,,B\n"
        "c.wav,karaoke,,\n"  # a bad row: keyed as the good row it becomes once fixed
        "d.wav,song,x,y,surplus\n"  # unreadable: keyed by its place
    )
    origin = str(tmp_path / "m.csv")
    got = [e async for e in read_manifest(write(tmp_path, text), purpose=None, origin=origin)]
    surplus = "unparsable line: 5 fields, the header has 4"
    a, url = str(tmp_path / "a.wav"), "http://h/d/b.mp3"
    local = {
        "purpose": "song",
        "filename": "a.wav",
        "written": "a.wav",
        "path": a,
        "origin": origin,
    }
    assert got == [
        Entry(f"{a} [external_id=e1]", **local, line=2, external_id="e1", extra={"album": "A"}),
        Entry(f"{a} [external_id=e2]", **local, line=3, external_id="e2", extra={"album": ""}),
        Entry(url, "voice", "b.mp3", url, None, url, 4, None, {"album": "B"}, origin=origin),
        Entry(
            str(tmp_path / "c.wav"),
            "",
            "",
            written="c.wav",
            line=5,
            extra={"album": ""},
            error="unknown purpose 'karaoke' (use one of: song, voice, instrumental)",
            origin=origin,
        ),
        Entry(f"{tmp_path}#line-6", "", "", "", line=6, error=surplus, origin=origin),
    ]


async def test_a_home_folder_that_does_not_exist_is_a_plain_path(tmp_path: Path) -> None:
    (entry,) = await rows(write(tmp_path, "source,purpose\n~nosuchuser/a.wav,song\n"))
    assert entry.path == str(tmp_path / "~nosuchuser" / "a.wav")
    assert entry.error is None


async def test_local_rows_come_with_their_file_s_size_and_mtime(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"x" * 123)
    info = (tmp_path / "a.wav").stat()
    path = write(tmp_path, "source,purpose\na.wav,song\na.wav,voice\nmissing.wav,song\n")
    first, second, missing = await rows(path)
    assert (first.size, first.mtime_ns) == (second.size, second.mtime_ns) == (123, info.st_mtime_ns)
    assert (missing.size, missing.mtime_ns, missing.error) == (None, None, None)  # the run says
