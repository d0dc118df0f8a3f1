"""Manifests as spreadsheets save them: encodings, delimiters, line ends, blank and ragged rows."""

from __future__ import annotations

import codecs
import csv
import io
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.entry import Entry
from pipeline.core.errors import UsageError
from pipeline.sources import check_sources
from pipeline.sources import manifest as manifest_module
from pipeline.sources.manifest import ONE_COLUMN, read_header, read_manifest, sniff_header
from tests.spreadsheets import CP1252_SEMICOLON, UTF8_BOM_SEMICOLON, UTF16_TABS


async def rows(path: Path, purpose: str | None = None, encoding: str | None = None) -> list[Entry]:
    return [e async for e in read_manifest(path, purpose=purpose, encoding=encoding)]


def write(tmp_path: Path, data: bytes, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def check_error(path: Path, encoding: str | None = None) -> str:
    with pytest.raises(UsageError) as caught:
        check_sources([], [str(path)], encoding=encoding)
    return str(caught.value)


async def test_excel_cp1252_semicolons_crlf_read_with_the_encoding_given(tmp_path: Path) -> None:
    path = write(tmp_path, CP1252_SEMICOLON)
    assert read_header(path, "cp1252") == ["path", "purpose", "title", "price", ""]
    cafe, night, naive = await rows(path, encoding="cp1252")
    assert (cafe.line, night.line, naive.line) == (2, 3, 5)  # line 4 is empty: skipped
    assert cafe.path == str(tmp_path / "Café del Mar.wav") and cafe.filename == "Café del Mar.wav"
    assert cafe.extra == {"title": "Café del Mar", "price": "€ 1,99"}  # no trailing column
    assert night.filename == "Night; Day.wav" and night.extra == {"title": 'Say "hi"', "price": ""}
    assert naive.path == str(tmp_path / "naïve" / "Goût.wav") and naive.purpose == "instrumental"
    assert all(e.error is None for e in (cafe, night, naive))


def test_excel_cp1252_without_an_encoding_fails_naming_line_byte_and_flag(tmp_path: Path) -> None:
    path = write(tmp_path, CP1252_SEMICOLON, name="cat.csv")
    assert check_error(path) == (
        f"manifest {path}: line 2 is not UTF-8 (byte 0xe9 after 'Caf'); "
        "if it was saved by Excel, pass --manifest-encoding cp1252"
    )


async def test_excel_unicode_text_utf16_tabs(tmp_path: Path) -> None:
    path = write(tmp_path, UTF16_TABS, name="cat.txt")
    assert read_header(path) == ["source", "purpose", "external_id", "notes"]
    cafe, nino, unicode = await rows(path)
    # The cell with a line break takes lines 2-3.
    assert (cafe.line, nino.line, unicode.line) == (2, 4, 5)
    assert cafe.filename == "Café del Mar.wav" and cafe.extra == {"notes": "two\nlines"}
    assert (nino.external_id, nino.extra) == ("A2", {"notes": "€ 5"})
    assert unicode.path == str(tmp_path / "Ünïcödé.wav") and unicode.error is None


async def test_excel_csv_utf8_with_mark_and_semicolons(tmp_path: Path) -> None:
    path = write(tmp_path, UTF8_BOM_SEMICOLON)
    assert read_header(path) == ["Source", "Purpose", "Album"]  # no mark left on "Source"
    cafe, nino, mix = await rows(path)
    assert (cafe.filename, cafe.purpose, cafe.extra) == (
        "Café del Mar.wav",
        "song",
        {"Album": "Été"},
    )
    assert (nino.line, nino.extra) == (3, {"Album": "Blue; Live"})
    assert (mix.url, mix.purpose, mix.line) == ("https://h/mix?take=1,2", "instrumental", 4)


MARKS = {
    "utf-8": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}


@pytest.mark.parametrize("codec", list(MARKS))
async def test_every_byte_order_mark_is_read(tmp_path: Path, codec: str) -> None:
    mark = MARKS[codec]
    path = write(tmp_path, mark + "url;purpose\r\nhttp://h/é.wav;song\r\n".encode(codec))
    (entry,) = await rows(path)
    assert (entry.url, entry.purpose, entry.line) == ("http://h/é.wav", "song", 2)


async def test_a_byte_order_mark_wins_over_the_encoding_given(tmp_path: Path) -> None:
    path = write(tmp_path, UTF8_BOM_SEMICOLON)
    read_header(path, "cp1252")
    cafe, *_ = await rows(path, encoding="cp1252")
    assert cafe.filename == "Café del Mar.wav"


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("cp1252", "source,purpose,note\nCafé.wav,song,€\n".encode("cp1252")),
        ("latin-1", "source,purpose,note\nCafé.wav,song,¤\n".encode("latin-1")),
        ("utf-16-le", "source,purpose,note\nCafé.wav,song,€\n".encode("utf-16-le")),
        ("UTF-16BE", "source,purpose,note\nCafé.wav,song,€\n".encode("utf-16-be")),
    ],
)
async def test_the_encoding_parameter_reads_a_file_without_a_mark(
    tmp_path: Path, encoding: str, data: bytes
) -> None:
    path = write(tmp_path, data)
    (checked,) = check_sources([], [str(path)], encoding=encoding)
    (entry,) = await rows(checked.path, encoding=encoding)
    assert entry.filename == "Café.wav" and entry.extra is not None
    assert entry.extra["note"] in ("€", "¤")


@pytest.mark.parametrize("encoding", ["nope", "base64", ""])
def test_an_unknown_encoding_is_a_one_line_usage_error(tmp_path: Path, encoding: str) -> None:
    message = f"unknown manifest encoding {encoding!r} (try utf-8, cp1252, latin-1 or utf-16)"
    with pytest.raises(UsageError) as caught:
        check_sources([str(tmp_path)], encoding=encoding)  # a folder: the name is still checked
    assert str(caught.value) == message
    with pytest.raises(UsageError) as caught:
        read_header(write(tmp_path, b"source\na.wav\n"), encoding)
    assert str(caught.value) == message


def test_a_byte_foreign_to_the_encoding_given_names_it_without_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, b"source,note\r\na.wav,ok\r\nb.wav,\x81\r\n")  # 0x81: none in cp1252
    assert check_error(path, "cp1252") == (
        f"manifest {path}: line 3 is not cp1252 (byte 0x81 after 'b.wav,')"
    )


def test_a_bad_byte_under_a_mark_is_reported_without_the_cp1252_hint(tmp_path: Path) -> None:
    path = write(tmp_path, codecs.BOM_UTF8 + b"source\na.wav\n\xe9.wav\n")
    assert check_error(path) == f"manifest {path}: line 3 is not UTF-8 (byte 0xe9)"


def test_utf16_without_a_mark_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "source\r\na.wav\r\n".encode("utf-16-le"))
    assert check_error(path).endswith("pass --manifest-encoding utf-16-le")


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 1 << 20])
@pytest.mark.parametrize(
    ("data", "where"),
    [
        # CRLF, a lone CR, a quoted cell with a line break, multi-byte characters before the error
        (
            b'source,n\r\n\xc3\xa9.wav,"a\nb"\rc\xc3\xa9.wav,x\r\nd.wav,caf\xe9\r\n',
            "line 5 is not UTF-8 (byte 0xe9 after 'd.wav,caf')",
        ),
        (b"source\r\n\x80", "line 2 is not UTF-8 (byte 0x80)"),  # the first byte of a line
        (b"source\r\na.wav\xc3", "line 2 is not UTF-8 (byte 0xc3 after 'a.wav')"),  # cut short
    ],
)
def test_the_bad_line_is_found_wherever_the_chunks_break(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, data: bytes, where: str
) -> None:
    monkeypatch.setattr(manifest_module, "CHUNK", chunk)
    path = write(tmp_path, data)
    hint = "; if it was saved by Excel, pass --manifest-encoding cp1252"
    assert check_error(path) == f"manifest {path}: {where}{hint}"


@pytest.mark.parametrize("chunk", [1, 2, 3, 1 << 20])
def test_the_bad_line_of_a_utf16_file_counts_characters_not_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(manifest_module, "CHUNK", chunk)
    # U+0A0D is the bytes 0d 0a in UTF-16 LE: a CRLF to a byte counter, no line end to us.
    text = (
        "source\r\n\u0a0d.wav\r\n".encode("utf-16-le") + b"\x00\xd8" + "x\r\n".encode("utf-16-le")
    )
    path = write(tmp_path, codecs.BOM_UTF16_LE + text)
    assert check_error(path) == f"manifest {path}: line 3 is not UTF-16 (byte 0x00)"


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
async def test_line_ends_crlf_lf_and_cr_and_a_last_line_without_one(
    tmp_path: Path, newline: str
) -> None:
    lines = ["source,purpose,note", "a.wav,song,", '"b.wav",voice,"x\ny"', "", "c.wav,song,z"]
    path = write(tmp_path, newline.join(lines).encode())  # no line end after the last row
    a, b, c = await rows(path)
    assert [(e.filename, e.line, e.error) for e in (a, b, c)] == [
        ("a.wav", 2, None),
        ("b.wav", 3, None),
        ("c.wav", 6, None),
    ]
    assert b.extra == {"note": "x\ny"}  # a break inside a cell is kept as written


async def test_trailing_delimiters_and_blank_rows_do_not_break_rows(tmp_path: Path) -> None:
    text = (
        "\r\n;;\r\n"  # blank lines before the header
        "source;purpose;;note\r\n"  # an unnamed column
        "a.wav;song;;x;\r\n"  # 4: a trailing delimiter the header does not have
        ";;;;;\r\n"
        "b.wav;song;kept;y\r\n"  # 6: text under the unnamed column
        "c.wav;song;;z;extra\r\n"  # 7: a fifth cell with text in it
    )
    a, b, c = await rows(write(tmp_path, text.encode()))
    assert (a.line, a.error, a.extra) == (4, None, {"note": "x"})
    assert (b.line, b.error, b.extra) == (6, None, {"column 3": "kept", "note": "y"})
    assert (c.line, c.error) == (7, "unparsable line: 5 fields, the header has 4")


@pytest.mark.parametrize(
    ("header", "delimiter", "cells"),
    [
        ("path;purpose;title, subtitle", ";", ["path", "purpose", "title, subtitle"]),
        ('"source","title; subtitle"', ",", ["source", "title; subtitle"]),
        ("url\tpurpose\tnote, a; b", "\t", ["url", "purpose", "note, a; b"]),
        ('"a,b";url', ";", ["a,b", "url"]),
        ("source,a;b;c", ",", ["source", "a;b;c"]),
        ("Source ; Purpose", ";", ["Source ", " Purpose"]),
        ("source;", ";", ["source", ""]),
        ("external_id\tsource", "\t", ["external_id", "source"]),
        ("title;artist", ";", ["title", "artist"]),  # no source: still split, to name the cells
        ("source", ONE_COLUMN, ["source"]),
        ('"source, as written"', ONE_COLUMN, ["source, as written"]),
    ],
)
def test_the_delimiter_is_sniffed_from_the_header(
    header: str, delimiter: str, cells: list[str]
) -> None:
    assert sniff_header(header + "\r\na;b,c\r\n") == (delimiter, cells, 1)


def test_without_a_source_column_the_cells_are_named_as_the_likely_delimiter_splits_them(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, b"title;artist\r\nx;y\r\n")
    assert check_error(path) == (
        f"manifest {path} has no source column (expected one of: source, url, path; "
        "found: 'title', 'artist')"
    )


async def test_a_manifest_of_one_column_has_no_delimiter(tmp_path: Path) -> None:
    text = 'source\r\nNight, Day; Live.wav\r\n"with ""quotes"".wav"\r\na\tb.wav\r\n'
    first, second, third = await rows(write(tmp_path, text.encode()), purpose="song")
    assert first.filename == "Night, Day; Live.wav" and first.extra is None
    assert second.filename == 'with "quotes".wav'
    assert third.filename == "a\tb.wav" and third.error is None


def test_a_header_with_a_quote_never_closed_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, b'source,"purpose\na.wav,song\n')
    assert check_error(path) == (
        f"manifest {path}: cannot read the header, check its quotes: unexpected end of data"
    )


def test_the_whole_file_is_checked_in_flat_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifest_module, "CHUNK", 1 << 16)
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("source,purpose\n")
        out.writelines(f"http://h/Café {i}.wav,song\n" for i in range(150_000))
    assert path.stat().st_size > 4_000_000
    tracemalloc.start()
    try:
        read_header(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


CELL = st.text(st.characters(codec="cp1252", exclude_characters="\0"), max_size=12)
NAME = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), min_size=3, max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    delimiter=st.sampled_from([",", ";", "\t"]),
    newline=st.sampled_from(["\r\n", "\n", "\r"]),
    codec=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
    names=st.lists(NAME, max_size=3, unique=True).filter(
        lambda names: not {"url", "path", "source", "purpose", "filename"} & set(names)
    ),
    cells=st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=1, max_size=5),
)
async def test_what_a_csv_writer_writes_is_read_back(
    delimiter: str, newline: str, codec: str, names: list[str], cells: list[list[str]]
) -> None:
    # The writer quotes a line break only when it is part of its own line end: quote everything
    # otherwise, as spreadsheets quote any cell with a break in it.
    quoting = csv.QUOTE_MINIMAL if newline == "\r\n" else csv.QUOTE_ALL
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(["source", "purpose", *names])
    written = [[f"f{i}.wav", "song", *row[: len(names)]] for i, row in enumerate(cells)]
    writer.writerows(written)
    encoding = None if codec.startswith("utf-8") else codec
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), buffer.getvalue().encode(codec))
        read_header(path, encoding)
        entries = await rows(path, encoding=encoding)
    assert [e.filename for e in entries] == [row[0] for row in written]
    assert [dict(e.extra or {}) for e in entries] == [
        dict(zip(names, r[2:], strict=True)) for r in written
    ]
    assert all(e.error is None for e in entries)
