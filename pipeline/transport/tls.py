"""The TLS context of every connection the run makes.

Only the CAs of `--ca-bundle` (or `SSL_CERT_FILE`) are trusted when one is named, as
`curl --cacert` trusts only its file; else the system's. Reading a CA bundle costs 20-40 ms,
nearly all of it inside OpenSSL, which parses the file without holding the GIL, so `ingest run`
calls `tls_context` in a worker thread while its own modules are imported (`pipeline.cli`).
Only `ssl` is used here, which asyncio has already loaded: the thread imports nothing.
"""

from __future__ import annotations

import ssl

from pipeline.core.errors import UsageError


def tls_context(cafile: str | None, origin: str = "--ca-bundle") -> ssl.SSLContext:
    """The TLS context of every connection: only the CAs in `cafile` when given (`origin` names
    where it came from, for the error), else the system's. UsageError when it cannot be read."""
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise UsageError(
            f"{origin} {cafile}: cannot be read as PEM certificates: {reason}"
        ) from None
