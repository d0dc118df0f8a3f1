"""The one place where aiohttp's errors become ours.

`client_errors()` wraps any request (an upload or a download) and translates what aiohttp raises:

    a certificate the TLS check refused       RunFatal for uploads (every request would meet
                                              it: exit 5 at once), PermanentError for a download
    no connection made: refused, a name that  TransientError with `connect_failed`, the cause in
      does not resolve, a TLS handshake that  a few words: the request never reached the service
      failed, a proxy that could not be
      reached or could not connect onwards,
      a connect timeout
    a proxy that wants other credentials      RunFatal (407, or tinyproxy's 401, to a CONNECT)
    any other timeout or client error         TransientError (dropped, reset, malformed answer)
    a request aiohttp refused to write        PermanentError (a header it cannot carry)
    our own body's `SourceChanged`            itself, not the connection error aiohttp wraps

The certificate error is tested first: aiohttp's class for it is also a ValueError and an
ssl.SSLError. Every text that comes from aiohttp has its URLs' credentials hidden: a proxy
error's message holds the proxy URL, password and all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import aiohttp

from pipeline.core.errors import PermanentError, RunFatal, SourceChanged, TransientError
from pipeline.core.secret import hide_credentials
from pipeline.transport.proxies import mask

PROXY_AUTH = frozenset({401, 407})  # a proxy's answers to a CONNECT without good credentials
CA_HINT = (
    "if the service (or a proxy in front of it) uses a private CA, pass --ca-bundle FILE "
    "(or set SSL_CERT_FILE)"
)


@contextlib.contextmanager
def client_errors(what: str, *, timeout: float, proxy: str | None = None) -> Iterator[None]:
    """Translate aiohttp's errors raised inside the block. `what` starts each reason (`upload`
    or `download`); `proxy` is the proxy the request went through, if any."""
    try:
        yield
    except aiohttp.ClientConnectorCertificateError as exc:
        raise _certificate(what, exc) from exc
    except aiohttp.ConnectionTimeoutError as exc:  # before TimeoutError: it is one
        raise TransientError(
            f"{what} failed: no connection within {timeout:g} s",
            connect_failed=f"no connection within {timeout:g} s",
        ) from exc
    except TimeoutError as exc:  # before ClientConnectionError: socket timeouts are both
        raise TransientError(
            f"{what} timed out: no answer for {timeout:g} s", unreachable=True
        ) from exc
    except aiohttp.ClientError as exc:  # dropped, reset, refused, malformed answer
        if isinstance(exc.__cause__, SourceChanged):
            raise exc.__cause__ from None
        raise _client_error(what, exc, proxy) from exc
    except ValueError as exc:  # aiohttp refused to write the request
        raise PermanentError(f"{what} could not be written: {describe(exc)}") from exc


def _certificate(what: str, exc: aiohttp.ClientConnectorCertificateError) -> Exception:
    cert = exc.certificate_error
    why = getattr(cert, "verify_message", None) or describe(cert)
    said = f"the TLS certificate of {exc.host} was refused: {why}"
    if what == "upload":
        return RunFatal(f"{said}; {CA_HINT}")
    return PermanentError(f"{what} failed: {said}")


def _client_error(what: str, exc: aiohttp.ClientError, proxy: str | None) -> Exception:
    cause = connect_cause(exc, proxy)
    if cause is not None:
        return TransientError(f"{what} failed: {cause}", connect_failed=cause)
    if isinstance(exc, aiohttp.ClientHttpProxyError) and exc.status in PROXY_AUTH:
        return RunFatal(
            f"the proxy {mask(proxy or '?')} refused the credentials (HTTP {exc.status}): check "
            "the user and password of the proxy URL (--proxy, https_proxy, http_proxy)"
        )
    return TransientError(f"{what} failed: {describe(exc)}", unreachable=True)


def connect_cause(exc: aiohttp.ClientError, proxy: str | None = None) -> str | None:
    """Why no connection could be made, in a few words; None when one was made (the request
    reached something that then failed it)."""
    if isinstance(exc, aiohttp.ClientProxyConnectionError):  # before ClientConnectorError
        return f"cannot connect to the proxy {mask(proxy or '?')}: {_os_cause(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"name does not resolve ({exc.host}: {_os_cause(exc)})"
    if isinstance(exc, aiohttp.ClientSSLError):
        reason = getattr(exc.os_error, "reason", None) or _os_cause(exc)
        return f"TLS handshake with {exc.host} failed: {str(reason).lower().replace('_', ' ')}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_cause(exc)
    if isinstance(exc, aiohttp.ClientHttpProxyError) and exc.status not in PROXY_AUTH:
        return f"the proxy {mask(proxy or '?')} could not connect to it (HTTP {exc.status})"
    return None


def _os_cause(exc: aiohttp.ClientConnectorError) -> str:
    """`connection refused`, `name or service not known`: the system's words for errno."""
    error = exc.os_error
    if error.errno is not None and error.errno > 0:
        return os.strerror(error.errno).lower()
    return (error.strerror or describe(error)).lower()


def describe(exc: BaseException) -> str:
    text = hide_credentials(str(exc) or type(exc).__name__)
    return text if len(text) < 200 else text[:197] + "..."
