"""How long a request may take, said once for uploads, downloads and the session.

A large body may take long to send, so there is no total timeout: `sock_connect` bounds the
connection (waiting for a free pool slot included) and `sock_read` a silent server.
"""

from __future__ import annotations

import aiohttp


def timeouts(seconds: float) -> aiohttp.ClientTimeout:
    """No total limit; `seconds` to connect, and `seconds` of silence while sending or reading."""
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
