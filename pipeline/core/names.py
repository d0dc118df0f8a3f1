"""File names three ways: as the filesystem holds them, as the ledger keys them, as they are sent.

A POSIX file name is any bytes but `/` and NUL. Python hands names that are not valid UTF-8 to us
as `str` with lone surrogates (`Caf\\udce9.wav` for the Latin-1 byte 0xE9), which print, but which
no database driver, JSON encoder or HTTP header accepts. So a name takes one of three forms:

- **on disk**: the `str` that `os.scandir` gave, surrogates and all; only ever passed back to the
  operating system (`open`, `stat`), which turns it into the same bytes again;
- **in the ledger, logs and exports** (`source_key`): the text itself when it is valid UTF-8 with
  no control characters, which is every name in most catalogues; otherwise the whole path in
  double quotes with C escapes, as git shows such paths (`"/cat/Caf\\351.wav"`,
  `"/cat/a\\nb.wav"`). A plain key never starts with `"` (paths are absolute, URLs start with a
  scheme), so the two forms cannot be confused, and `path_bytes` turns either back into the exact
  bytes;
- **on the wire** (`wire_filename`): what goes between the quotes of the multipart form's
  `filename="..."`, as browsers send it (the HTML standard's multipart/form-data encoding, which
  servers are tested against): raw UTF-8, with `"` as `%22`, CR as `%0D`, LF as `%0A`, and a
  backslash as it is. What HTTP cannot carry at all is replaced by U+FFFD: bytes that are not
  UTF-8 and the other control characters (C0 but CR and LF, and DEL), for which the standard
  has no escape.
"""

from __future__ import annotations

import os
import re

REPLACEMENT = "\ufffd"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The HTML standard's escapes for names in multipart/form-data; it makes no other.
_WHATWG = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})
# C escapes for the quoted key form: the usual named ones, octal for any other byte below 0x20,
# DEL, and every byte that is not part of valid UTF-8.
_NAMED = {0x07: "a", 0x08: "b", 0x09: "t", 0x0A: "n", 0x0B: "v", 0x0C: "f", 0x0D: "r"}
_NAMED_BACK = {v: k for k, v in _NAMED.items()} | {'"': 0x22, "\\": 0x5C}


def is_plain(text: str) -> bool:
    """True when `text` can be stored and shown as it is: valid UTF-8, no control characters."""
    if text.isascii():
        return text.isprintable()  # for ASCII: exactly "no control characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return _CONTROL.search(text) is None


def source_key(path: str) -> str:
    """The ledger's (and the logs') text for a local path: itself, or C-quoted when it must be."""
    if is_plain(path):
        return path
    return '"' + _c_escape(os.fsencode(path)) + '"'


def _c_escape(raw: bytes) -> str:
    out: list[str] = []
    for chunk in _utf8_runs(raw):
        if isinstance(chunk, str):
            out.append(_escape_text(chunk))
        else:
            out.extend(f"\\{byte:03o}" for byte in chunk)
    return "".join(out)


def _escape_text(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return _CONTROL.sub(_escape_control, escaped)


def _escape_control(match: re.Match[str]) -> str:
    code = ord(match.group())
    return "\\" + _NAMED[code] if code in _NAMED else f"\\{code:03o}"


def _utf8_runs(raw: bytes) -> list[str | bytes]:
    """`raw` split into runs of valid UTF-8 text (str) and of bytes that are not (bytes)."""
    runs: list[str | bytes] = []
    while raw:
        try:
            runs.append(raw.decode("utf-8"))
            break
        except UnicodeDecodeError as exc:
            if exc.start:
                runs.append(raw[: exc.start].decode("utf-8"))
            runs.append(raw[exc.start : exc.end])
            raw = raw[exc.end :]
    return runs


def path_bytes(key: str) -> bytes:
    """The exact bytes of the path a `source_key` stands for (the inverse of `source_key`)."""
    if not (len(key) >= 2 and key.startswith('"') and key.endswith('"')):
        return os.fsencode(key)
    body, out, i = key[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode("utf-8")
            i += 1
        elif body[i + 1] in _NAMED_BACK:
            out.append(_NAMED_BACK[body[i + 1]])
            i += 2
        else:
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
    return bytes(out)


def wire_filename(name: str) -> str:
    """The `filename` sent with an upload, as it stands between the quotes on the wire: raw
    UTF-8, `"` as `%22`, CR as `%0D`, LF as `%0A`, a backslash as it is; bytes that are not
    UTF-8 and other control characters as U+FFFD. Idempotent, so it can be applied at every
    layer."""
    if is_plain(name) and '"' not in name:
        return name  # nothing to replace (most names): no regular expression run
    text = os.fsencode(name).decode("utf-8", "replace") if not is_plain(name) else name
    return _CONTROL.sub(REPLACEMENT, text.translate(_WHATWG))


def shown(text: str) -> str:
    """Any text made safe for one log line or message: surrogates as `\\xNN`, controls escaped."""
    safe = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], safe)
