"""Property tests of file names, from the bytes on disk to what other people's parsers read.

A POSIX name is any 1 to 255 bytes but `/` and NUL. Each name goes: filesystem bytes ->
`os.fsdecode` -> the ledger's `source_key` (and back, exactly, with `path_bytes`; and out through
`ingest export`) -> `wire_filename` -> the real upload form, serialised by aiohttp itself -> read
by Werkzeug's and python-multipart's multipart parsers, which we did not write.

The name goes out as browsers send it (`"` as `%22`, CR and LF as `%0D` and `%0A`, a backslash
as it is), and each parser reads some names differently from how they were sent; the
properties predict exactly how rather than skip them:

- Werkzeug reads a backslash as escaping the character after it (which stays, the backslash
  goes), and `%22` as `"`; a name that ends in an unpaired backslash escapes the closing quote,
  so the part arrives with no file name at all;
- python-multipart reads `\\\\` as one backslash, and strips everything up to the last backslash
  from a name that looks like a Windows path (its second and third bytes are `:\\`, or it starts
  with `\\\\`): an old Internet Explorer sent whole client paths.
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.content.body import Body
from pipeline.core.names import is_plain, path_bytes, source_key, wire_filename
from pipeline.ledger.queries import EXPORT_COLUMNS
from pipeline.output.export import Exporter
from pipeline.transport.multipart import build_form
from tests.multipart_readers import multipart_reads, read_upload, serialised, werkzeug_reads

FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow],
)

# Pieces that parsers and encoders treat specially, in bytes: any mix of them is a legal name.
FRAGMENTS = [
    b'"',
    b"\\",
    b"%",
    b"%22",
    b"%41",
    b"%2F",
    b";",
    b"=",
    b" ",
    b"name=",
    b'filename="',
    b"x:",
    b":\\",
    b"\\\\",
    b"a",
    b".wav",
    b"\xe9",  # Latin-1 e-acute: not UTF-8
    b"\xff\xfe",
    b"\xc3",  # a UTF-8 lead byte cut short
    "\u00e9".encode(),  # NFC e-acute
    "e\u0301".encode(),  # NFD e-acute
    "\U0001f3b5".encode(),  # an emoji, 4 bytes
    "\u2028".encode(),  # LINE SEPARATOR: valid UTF-8, a line break to str.splitlines
    "\u0085".encode(),  # NEL, a C1 control
    "\ufeff".encode(),
    "\u202e".encode(),  # right-to-left override
    b"\x01",
    b"\x1b",
    b"\t",
    b"\n",
    b"\r",
    b"\x7f",
]

_NOT_IN_NAMES = str.maketrans({"/": "_", "\0": "_"})
_CONTROLS_TO_FFFD = {c: "\ufffd" for c in [*range(0x20), 0x7F]}
_WHATWG = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


def _legal(raw: bytes) -> bytes:
    return raw.replace(b"/", b"_").replace(b"\0", b"_")[:255] or b"_"


def _texts() -> st.SearchStrategy[bytes]:
    """Unicode text, NFC or NFD, as UTF-8."""
    text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=80)
    form = st.sampled_from(["NFC", "NFD", None])
    return st.builds(
        lambda t, f: (unicodedata.normalize(f, t) if f else t).translate(_NOT_IN_NAMES).encode(),
        text,
        form,
    )


NAMES = (
    st.one_of(
        st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=24).map(b"".join),
        _texts(),
        st.binary(min_size=1, max_size=255),
        st.sampled_from(FRAGMENTS).map(lambda f: f * (255 // len(f))),  # long names, to the limit
    )
    .map(_legal)
    .filter(lambda raw: raw not in (b".", b".."))
)


def upload_as_read(name: str) -> dict[str, Any]:
    """The `file` part of the real upload form for `name`, as aiohttp serialises it, read back by
    hand, by Werkzeug and by python-multipart."""
    data = b"RIFF-not-really"
    body, content_type = serialised(
        build_form("song", Body(len(data), data=data), name, "audio/wav")
    )
    (part,) = [p for p in read_upload(body, content_type) if p["name"] == "file"]
    assert part["bytes_agree"] and part["size"] == len(data)
    return part


@FAST
@given(raw=NAMES)
def test_every_name_crosses_the_wire_and_both_parsers_read_it_as_sent(raw: bytes) -> None:
    name = os.fsdecode(raw)
    sent = wire_filename(name)
    if is_plain(name):
        assert sent == name.replace('"', "%22")
    else:  # bytes that are not UTF-8 and other control characters as U+FFFD
        decoded = raw.decode("utf-8", "replace")
        assert sent == decoded.translate(_WHATWG).translate(_CONTROLS_TO_FFFD)
    part = upload_as_read(name)
    disposition = b'form-data; name="file"; filename="' + sent.encode() + b'"'
    assert part["disposition"].encode("latin-1") == disposition  # raw UTF-8, as browsers send
    assert part["filename_werkzeug"] == werkzeug_reads(sent)
    assert part["filename_multipart"] == multipart_reads(sent)


@pytest.mark.parametrize(
    ("name", "werkzeug", "multipart"),
    [
        ('a"b.wav', 'a"b.wav', "a%22b.wav"),
        ("50%22 off.wav", '50" off.wav', "50%22 off.wav"),
        ("%2522.wav", "%2522.wav", "%2522.wav"),
        ("a\nb.wav", "a%0Ab.wav", "a%0Ab.wav"),
        ("end\\", None, "end\\"),  # Werkzeug: the closing quote is escaped, no file name
        ("x:\\a.wav", "x:a.wav", "a.wav"),
        ("C:\\Music\\Take 1.wav", "C:MusicTake 1.wav", "Take 1.wav"),
        ("\\\\server\\share\\a.wav", "\\serversharea.wav", "\\server\\share\\a.wav"),
        ("\\\\", "\\", "\\"),
        ("\u00e9:\\a.wav", "\u00e9:a.wav", "\u00e9:\\a.wav"),  # a 2-byte first character
        ("ab:\\c.wav", "ab:c.wav", "ab:\\c.wav"),
        ("\\a\\b.wav", "ab.wav", "\\a\\b.wav"),
    ],
)
def test_the_parsers_quirks_are_exactly_these(
    name: str, werkzeug: str | None, multipart: str
) -> None:
    part = upload_as_read(name)
    assert (part["filename_werkzeug"], part["filename_multipart"]) == (werkzeug, multipart)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One folder for every example: each creates its file, lists it and removes it."""
    return str(tmp_path_factory.mktemp("names"))


@FAST
@given(raw=NAMES)
def test_a_name_on_disk_keys_the_ledger_and_comes_back_as_its_exact_bytes(
    folder: str, raw: bytes
) -> None:
    folder_bytes = os.fsencode(folder)
    with open(folder_bytes + b"/" + raw, "wb"):
        pass
    try:
        (listed,) = os.listdir(folder)  # the str the crawler gets, surrogates and all
    finally:
        os.unlink(folder_bytes + b"/" + raw)
    assert os.fsencode(listed) == raw
    key = source_key(os.path.join(folder, listed))
    key.encode("utf-8")  # storable in SQLite, JSON, logs: no lone surrogates
    assert not any(ch in key for ch in "\n\r\t\x00")
    assert path_bytes(key) == folder_bytes + b"/" + raw


@FAST
@given(raw=NAMES)
def test_an_exported_key_is_one_utf8_line_that_reads_back_to_the_key(raw: bytes) -> None:
    key = source_key(os.fsdecode(b"/catalogue/" + raw))
    record = {"source": key, "purpose": "song", "status": "done", "kind": "file"}
    row = [record.get(column) for column in EXPORT_COLUMNS]
    as_jsonl = Exporter("jsonl", EXPORT_COLUMNS, []).text([row]).removesuffix("\n")
    as_csv = Exporter("csv", EXPORT_COLUMNS, []).text([row]).removesuffix("\n")
    for line in (as_jsonl, as_csv):
        line.encode("utf-8")
        assert "\n" not in line and "\r" not in line
    assert json.loads(as_jsonl)["source"] == key
    assert next(csv.reader(io.StringIO(as_csv, newline="")))[0] == key
    assert path_bytes(json.loads(as_jsonl)["source"]) == b"/catalogue/" + raw
