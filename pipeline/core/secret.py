"""The API key and passwords: a type that never shows itself, and URLs shown without them."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# A URL's user information: from the scheme's `//` to the last `@` before the path. Greedy, so a
# password holding a bare `@` (`u:p@ss@host`) is hidden whole.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@")


def hide_credentials(text: str) -> str:
    """`text` with the user name and password of every URL in it replaced by `***:***`:
    `http://u:secret@proxy:3128` -> `http://***:***@proxy:3128`. For text that may hold a proxy
    or database URL: a command line, a library's error message."""
    return _USERINFO.sub(r"\1***:***@", text)


def public_url(url: str) -> str:
    """`url` as it may be shown: no user name or password, and every query value replaced by
    `***` (a signed URL's signature, a token), the names kept:
    `https://u:p@host/a?sig=abc&e=1` -> `https://host/a?sig=***&e=***`."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        name + ("=***" if has_value else "")
        for name, has_value, _ in (field.partition("=") for field in parts.query.split("&"))
        if name or has_value
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
