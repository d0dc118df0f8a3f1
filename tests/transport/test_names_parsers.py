"""What four multipart parsers read back from the names the client sends, as README's table says.

The client sends a name as browsers do (the HTML standard: `"` as `%22`, CR and LF as `%0D` and
`%0A`, a backslash as it is), which is what servers are tested against; the parsers then differ
among themselves. Each row is a name, the text that goes between the quotes of
`filename="..."`, and what aiohttp's reader (`BodyPartReader.filename`), Werkzeug (Flask),
python-multipart (Starlette, FastAPI) and Node's busboy (multer; with UTF-8 names and paths kept)
read from the real upload body. `None`: the parser lost the file name (Werkzeug hands the part
over as a plain field, busboy drops it). busboy runs when node and busboy are installed
(`.ci/run` installs them).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import BodyPartReader, ClientSession, web

from pipeline.content.body import Body
from pipeline.core.names import wire_filename
from pipeline.transport.multipart import build_form, multipart_bytes
from tests.multipart_readers import (
    ParsedPart,
    busboy_missing,
    busboy_parts,
    multipart_parts,
    serialised,
    werkzeug_parts,
)

DATA = b"RIFF-not-really-audio"

# name: (on the wire, aiohttp, Werkzeug, python-multipart, busboy)
TABLE: dict[str, tuple[str, str | None, str | None, str | None, str | None]] = {
    'a"b.wav': ("a%22b.wav", "a%22b.wav", 'a"b.wav', "a%22b.wav", "a%22b.wav"),
    "a\\b.wav": ("a\\b.wav", "ab.wav", "ab.wav", "a\\b.wav", "a\\b.wav"),
    "end\\": ("end\\", "end\\", None, "end\\", None),
    "a\rb.wav": ("a%0Db.wav", "a%0Db.wav", "a%0Db.wav", "a%0Db.wav", "a%0Db.wav"),
    "a\nb.wav": ("a%0Ab.wav", "a%0Ab.wav", "a%0Ab.wav", "a%0Ab.wav", "a%0Ab.wav"),
    "a%22b.wav": ("a%22b.wav", "a%22b.wav", 'a"b.wav', "a%22b.wav", "a%22b.wav"),
    "Café 日本 🎵.wav": ("Café 日本 🎵.wav",) * 5,
    "a;b=c.wav": ("a;b=c.wav",) * 5,
    'x"; name="purpose.wav': (
        "x%22; name=%22purpose.wav",
        "x%22; name=%22purpose.wav",
        'x"; name="purpose.wav',
        "x%22; name=%22purpose.wav",
        "x%22; name=%22purpose.wav",
    ),
}
NAMES = list(TABLE)


def bodies() -> list[tuple[bytes, str]]:
    """The real upload body for each name, as the client sends a file read whole."""
    return [multipart_bytes("song", DATA, name, "audio/wav") for name in NAMES]


def file_name(parts: list[ParsedPart]) -> str | None:
    """The `file` part's name; None when the parser took it for a plain field, or dropped it."""
    found = [p for p in parts if p.name == "file"]
    assert len(found) <= 1
    return found[0].filename if found else None


@pytest.mark.parametrize("name", NAMES)
def test_the_name_goes_out_as_browsers_send_it_both_ways_alike(name: str) -> None:
    wire = TABLE[name][0]
    assert wire_filename(name) == wire
    disposition = f'Content-Disposition: form-data; name="file"; filename="{wire}"\r\n'
    body, _ = multipart_bytes("song", DATA, name, "audio/wav")
    assert disposition.encode() in body
    streamed, _ = serialised(build_form("song", Body(len(DATA), data=DATA), name, "audio/wav"))
    assert disposition.encode() in streamed


def test_werkzeug_and_python_multipart_read_what_the_table_says() -> None:
    for name, (body, content_type) in zip(NAMES, bodies(), strict=True):
        boundary = content_type.split("boundary=")[1].encode()
        assert file_name(werkzeug_parts(body, boundary)) == TABLE[name][2], name
        assert file_name(multipart_parts(body, content_type)) == TABLE[name][3], name


@contextlib.asynccontextmanager
async def aiohttp_reader() -> AsyncIterator[str]:
    """A server that answers with the file name its BodyPartReader read (or null)."""

    async def read(request: web.Request) -> web.Response:
        found: str | None = None
        async for part in await request.multipart():
            if isinstance(part, BodyPartReader) and part.name == "file":
                found = part.filename
            await part.release()
        return web.json_response({"filename": found})

    app = web.Application()
    app.router.add_post("/", read)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()


async def test_aiohttp_s_reader_reads_what_the_table_says() -> None:
    async with aiohttp_reader() as url, ClientSession() as session:
        for name, (body, content_type) in zip(NAMES, bodies(), strict=True):
            headers = {"Content-Type": content_type}
            async with session.post(url, data=body, headers=headers) as resp:
                assert (await resp.json())["filename"] == TABLE[name][1], name


@pytest.mark.skipif(busboy_missing() is not None, reason=str(busboy_missing()))
def test_busboy_reads_what_the_table_says() -> None:
    read = busboy_parts(bodies())
    got = {name: file_name(parts) for name, parts in zip(NAMES, read, strict=True)}
    assert got == {name: row[4] for name, row in TABLE.items()}
