"""Where the ledger lives, parsed once from `--db` into a `Location` that every layer uses.

`--db` takes a file path (an SQLite file) or an SQLAlchemy URL: `sqlite:///path`,
`postgresql://user@host/db` or `postgresql+asyncpg://...`. Drivers are chosen here: aiosqlite and
asyncpg for the async engine. `shown` is the only form that goes into messages: the file path, or
the URL without its user name and password.

A file path is understood without SQLAlchemy, which is imported only when a URL is given or the
ledger is really opened: the settings hold a Location, and `ingest --help` should not pay for it.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


@dataclasses.dataclass(frozen=True)
class Location:
    # A file path, or a URL with the async driver set and credentials included: never shown.
    target: str = dataclasses.field(repr=False)
    dialect: str  # sqlite | postgresql

    @functools.cached_property
    def url(self) -> URL:
        from sqlalchemy.engine import URL, make_url

        if self.is_file:
            return URL.create(ASYNC_DRIVERS["sqlite"], database=self.target)
        return make_url(self.target)

    @property
    def is_file(self) -> bool:
        """Given as a plain file path (no URL)."""
        return "://" not in self.target

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None for a server database (or an in-memory SQLite one)."""
        if self.is_file:
            return Path(self.target)
        if self.dialect != "sqlite" or self.url.database in (None, "", ":memory:"):
            return None
        return Path(self.url.database)

    @property
    def password(self) -> str | None:
        return None if self.is_file else self.url.password

    @property
    def shown(self) -> str:
        if self.path is not None:
            return str(self.path)
        from sqlalchemy.engine import URL

        url = self.url
        bare = URL.create(url.drivername, host=url.host, port=url.port, database=url.database)
        return bare.render_as_string()  # no user, no password, no query (it may hold either)

    def __str__(self) -> str:
        return self.shown


def parse_location(raw: str | Location) -> Location:
    """A Location from a path or URL; ValueError with a short reason when it is neither."""
    if isinstance(raw, Location):
        return raw
    text = str(raw).strip()
    if not text:
        raise ValueError("empty ledger location")
    if "://" not in text:
        return Location(str(Path(text).expanduser()), "sqlite")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError("not a file path or database URL") from None
    backend = url.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise ValueError(
            f"unsupported database {backend!r} (use a file path, sqlite:// or postgresql://)"
        )
    if url.get_driver_name() in ("", "pysqlite", "psycopg2", "psycopg", "pg8000"):
        url = url.set(drivername=ASYNC_DRIVERS[backend])
    return Location(url.render_as_string(hide_password=False), backend)
