"""Multipart bodies read three ways, none of them aiohttp's: split by hand from the raw bytes
(each part's headers kept exactly as sent), by Werkzeug's multipart decoder (what Flask's
`request.files` uses) and by python-multipart's form parser (what Starlette and FastAPI use).
`busboy_parts` reads bodies with Node's busboy too (the parser behind multer), when node and
busboy are installed. `serialised` gives the bytes aiohttp itself writes for a form, so a test
can put the client's real output in front of the readers; `werkzeug_reads` and
`multipart_reads` say what each parser makes of a file name as it was sent (the text between
the quotes). Header bytes are given as latin-1 text (one character per byte:
`.encode("latin-1")` gives the bytes back).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import python_multipart
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData


@dataclasses.dataclass(frozen=True)
class RawPart:
    """One part as it is on the wire: header lines split at the first colon, values without the
    surrounding whitespace, and the data between the blank line and the next delimiter."""

    headers: list[tuple[bytes, bytes]]
    data: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def boundary_of(content_type: str) -> bytes:
    _, options = parse_options_header(content_type)
    if "boundary" not in options:
        raise ValueError(f"no boundary in Content-Type {content_type!r}")
    return options["boundary"].encode("latin-1")


def split_parts(body: bytes, boundary: bytes) -> list[RawPart]:
    """The parts of a multipart body, split by hand (RFC 2046). ValueError when the body does not
    end with the closing delimiter: it was cut short."""
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0:
        raise ValueError("no delimiter in the body")
    *parts, last = body[start + len(delimiter) :].split(b"\r\n" + delimiter)
    if not last.startswith(b"--"):
        raise ValueError("the body ends before the closing delimiter")
    return [_raw_part(segment) for segment in parts]


def _raw_part(segment: bytes) -> RawPart:
    head, found, data = segment.removeprefix(b"\r\n").partition(b"\r\n\r\n")
    if not found:
        raise ValueError("a part without the blank line that ends its headers")
    headers = []
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        headers.append((name.strip(b" \t"), value.strip(b" \t")))
    return RawPart(headers, data)


@dataclasses.dataclass(frozen=True)
class ParsedPart:
    """One part as a parser read it: `filename` None for a plain field."""

    name: str
    filename: str | None
    data: bytes


def werkzeug_parts(body: bytes, boundary: bytes) -> list[ParsedPart]:
    """The parts as Werkzeug's multipart decoder reads them, in order."""
    decoder = MultipartDecoder(boundary)
    decoder.receive_data(body)
    decoder.receive_data(None)
    parts: list[tuple[Field | File, bytearray]] = []
    while not isinstance(event := decoder.next_event(), Epilogue | NeedData):
        if isinstance(event, Field | File):
            parts.append((event, bytearray()))
        elif isinstance(event, Data):
            parts[-1][1].extend(event.data)
    return [
        ParsedPart(e.name, e.filename if isinstance(e, File) else None, bytes(d)) for e, d in parts
    ]


def multipart_parts(body: bytes, content_type: str) -> list[ParsedPart]:
    """The parts as python-multipart's form parser reads them, in order. It hands names over as
    the raw bytes of the header; they are shown as UTF-8, any byte that is not as `\\xNN`."""
    parts: list[ParsedPart] = []

    def on_field(field: python_multipart.multipart.Field) -> None:
        parts.append(ParsedPart(_text(field.field_name), None, field.value or b""))

    def on_file(file: python_multipart.multipart.File) -> None:
        file.file_object.seek(0)
        data = file.file_object.read()
        parts.append(ParsedPart(_text(file.field_name), _text(file.file_name), data))

    headers = {"Content-Type": content_type.encode("latin-1")}
    config = {"MAX_MEMORY_FILE_SIZE": float("inf")}
    parser = python_multipart.create_form_parser(headers, on_field, on_file, config)
    parser.write(body)
    parser.finalize()
    return parts


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", "backslashreplace")


def read_upload(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """Every part of an upload body as each reader saw it. ValueError when the body is not a
    whole multipart body (cut short, or no boundary) or the readers do not agree on its parts."""
    boundary = boundary_of(content_type)
    raw = split_parts(body, boundary)
    by_werkzeug = werkzeug_parts(body, boundary)
    by_multipart = multipart_parts(body, content_type)
    if not len(raw) == len(by_werkzeug) == len(by_multipart):
        raise ValueError(
            f"parts found: {len(raw)} by hand, {len(by_werkzeug)} by Werkzeug, "
            f"{len(by_multipart)} by python-multipart"
        )
    return [_part_record(*trio) for trio in zip(raw, by_werkzeug, by_multipart, strict=True)]


def _part_record(raw: RawPart, wz: ParsedPart, mp: ParsedPart) -> dict[str, Any]:
    return {
        "name": wz.name,
        "name_multipart": mp.name,
        "disposition": _latin1(raw.header(b"Content-Disposition")),
        "headers": [[_latin1(k), _latin1(v)] for k, v in raw.headers],
        "content_type": _latin1(raw.header(b"Content-Type")),
        "filename_werkzeug": wz.filename,
        "filename_multipart": mp.filename,
        "sha256": hashlib.sha256(wz.data).hexdigest(),
        "size": len(wz.data),
        "bytes_agree": raw.data == wz.data == mp.data,
        "value": wz.data.decode("utf-8", "backslashreplace") if wz.filename is None else None,
    }


def _latin1(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("latin-1")


def werkzeug_reads(sent: str) -> str | None:
    """What Werkzeug makes of a file name sent as `sent`: it looks for the closing quote with
    `\\\\` and `\\"` taken as pairs (None: the quote was escaped, no file name), then drops
    every backslash that escapes a character, and reads `%22` as a quote."""
    quoted, at = sent + '"', 0
    while quoted[at] != '"':
        at += 2 if quoted.startswith(("\\\\", '\\"'), at) else 1
        if at >= len(quoted):
            return None
    return re.sub(r"\\(.)", r"\g<1>", sent).replace("%22", '"')


def multipart_reads(sent: str) -> str:
    """What python-multipart makes of a file name sent as `sent`: `\\\\` is one backslash, and
    a name that looks like a Windows path keeps only what follows its last backslash."""
    value = sent.replace("\\\\", "\\")
    raw = value.encode()
    return value.rsplit("\\", 1)[-1] if raw[1:3] == b":\\" or raw[:2] == b"\\\\" else value


class _Collect:
    """Stands in for aiohttp's stream writer: keeps every byte a payload writes."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.data += chunk


def serialised(form: aiohttp.FormData | aiohttp.MultipartWriter) -> tuple[bytes, str]:
    """The body aiohttp writes for `form`, byte for byte, and its Content-Type."""
    writer = form() if isinstance(form, aiohttp.FormData) else form
    out = _Collect()
    asyncio.run(writer.write(out))  # type: ignore[arg-type]
    return bytes(out.data), writer.content_type


ROOT = Path(__file__).resolve().parents[1]
NODE = shutil.which("node")
BUSBOY_MODULES = ROOT / ".cache" / "node" / "node_modules"
BUSBOY_SCRIPT = ROOT / "tests" / "node" / "busboy_names.js"


def busboy_missing() -> str | None:
    """Why busboy cannot be run here, or None when it can."""
    if NODE is None:
        return "node is not installed (apt-get install nodejs npm; .ci/run does)"
    if not (BUSBOY_MODULES / "busboy").is_dir():
        return "busboy is missing: npm install --prefix .cache/node busboy@1.6.0 (.ci/run does)"
    return None


def busboy_parts(bodies: list[tuple[bytes, str]]) -> list[list[ParsedPart]]:
    """Each (body, Content-Type) as Node's busboy reads it (UTF-8 names, paths kept), in one
    Node process."""
    assert NODE is not None
    items = [
        {"body": base64.b64encode(body).decode(), "boundary": boundary_of(ctype).decode("latin-1")}
        for body, ctype in bodies
    ]
    done = subprocess.run(
        [NODE, str(BUSBOY_SCRIPT)],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(BUSBOY_MODULES)},
    )
    read = json.loads(done.stdout)["bodies"]
    return [
        [ParsedPart(p.get("name", ""), p.get("filename"), b"") for p in parts] for parts in read
    ]
