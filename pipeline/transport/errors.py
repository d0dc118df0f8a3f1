"""The one place where aiohttp's errors become ours.

`client_errors()` wraps any request (an upload or a download) and translates what aiohttp raises:
a timeout or any client error is a `TransientError`; a request aiohttp refused to write (a header
it cannot carry) is a `PermanentError`; and a failure our own request body raised on purpose
(`SourceChanged`: the file changed under us) comes out as itself, not as the connection error
aiohttp wraps it in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import aiohttp

from pipeline.core.errors import PermanentError, SourceChanged, TransientError


@contextlib.contextmanager
def client_errors(what: str, *, timeout: float) -> Iterator[None]:
    """Translate aiohttp's errors raised inside the block. `what` starts each reason."""
    try:
        yield
    except TimeoutError as exc:  # before ClientConnectionError: socket timeouts are both
        raise TransientError(
            f"{what} timed out: no answer for {timeout:g} s", unreachable=True
        ) from exc
    except aiohttp.ClientError as exc:  # dropped, reset, refused, malformed answer
        if isinstance(exc.__cause__, SourceChanged):
            raise exc.__cause__ from None
        raise TransientError(f"{what} failed: {describe(exc)}", unreachable=True) from exc
    except ValueError as exc:  # aiohttp refused to write the request
        raise PermanentError(f"{what} could not be written: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."
