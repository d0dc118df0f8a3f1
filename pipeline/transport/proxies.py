"""Which proxy a request goes through, decided from the environment as curl decides it.

Pure: no I/O, no `os.environ` (the variables are read by `pipeline.config` and handed in).
`Proxies.for_url(url)` gives the proxy URL (credentials kept, scheme and port spelled out) or
None for a direct connection; `mask()` hides the credentials for anything shown.

curl's rules (lib/proxy.c and lib/noproxy.c, current releases), followed here because users
know them from curl, and Python's own (urllib, aiohttp's `trust_env`) differ in a dozen places:

- for `http://` URLs only `http_proxy` is read, never upper-case `HTTP_PROXY` (in a CGI process
  a client's `Proxy:` header sets that variable: "httpoxy"); for `https://`, `https_proxy` then
  `HTTPS_PROXY`; then `all_proxy`, then `ALL_PROXY`. An empty variable counts as unset, so an
  empty lower-case one falls through to the upper-case one;
- `no_proxy`, then `NO_PROXY`, lists hosts reached directly. It applies to an explicit proxy
  (`--proxy`, like `curl -x`) too. `*` alone means every host (inside a list it matches nothing).
  Entries are separated by commas, blanks around them skipped; a blank with no comma ends the
  list. Names match case-insensitively, the host itself or any name ending in `.entry`; one
  leading and one trailing dot are ignored; no wildcards, no ports. An IP address in the URL is
  compared with IP entries only, with an optional `/bits` (CIDR), IPv6 written without
  brackets; names are never resolved for this. A non-ASCII host is compared in its IDNA form;
- a proxy without a scheme is `http://`; without a port, 1080 (http) or 443 (https).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

# The variables read, in the order they are looked at; `pipeline.config` passes these on.
PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
)
DEFAULT_PORT = {"http": 1080, "https": 443}
SUPPORTED = frozenset(DEFAULT_PORT)  # aiohttp speaks to http and https proxies, not SOCKS

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclasses.dataclass(frozen=True)
class Proxies:
    """The proxy variables that were set, and `--proxy` (which replaces the `*_proxy` ones)."""

    environ: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    proxy: str | None = dataclasses.field(default=None, repr=False)

    def for_url(self, url: str) -> str | None:
        """The proxy for `url`, normalised, credentials kept; None to connect directly."""
        return proxy_for(url, self.environ, proxy=self.proxy)


def _getenv(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name) or None  # curl: "" is the same as unset


def env_proxy(scheme: str, environ: Mapping[str, str]) -> str | None:
    """The proxy variable curl reads for a URL of `scheme` (before NO_PROXY is looked at)."""
    names = {"http": ["http_proxy"], "https": ["https_proxy", "HTTPS_PROXY"]}.get(scheme, [])
    for name in [*names, "all_proxy", "ALL_PROXY"]:
        if (value := _getenv(environ, name)) is not None:
            return value
    return None


def env_no_proxy(environ: Mapping[str, str]) -> str | None:
    return _getenv(environ, "no_proxy") or _getenv(environ, "NO_PROXY")


def proxy_for(url: str, environ: Mapping[str, str], *, proxy: str | None = None) -> str | None:
    """The proxy for `url` (normalised, credentials kept), or None to connect directly.
    `proxy` is an explicit one: it replaces the `*_proxy` variables, and NO_PROXY still
    applies to it, as to `curl -x`."""
    if no_proxy_matches(url_host(url), env_no_proxy(environ)):
        return None
    chosen = proxy or env_proxy(urlsplit(url).scheme.lower(), environ)
    return normalise(chosen) if chosen else None


def normalise(proxy: str) -> str:
    """`scheme://[user:password@]host:port`, as curl reads a proxy; any path is dropped."""
    if "://" not in proxy:
        proxy = "http://" + proxy
    parts = urlsplit(proxy)
    scheme, netloc = parts.scheme.lower(), parts.netloc
    try:
        port = parts.port
    except ValueError:
        port = None  # left as written: the request fails and says so
    if port is None and scheme in DEFAULT_PORT and not netloc.endswith(":"):
        netloc += f":{DEFAULT_PORT[scheme]}"
    return f"{scheme}://{netloc}"


def unsupported(proxy: str) -> str | None:
    """Why `proxy` (normalised) cannot be used, or None when it can."""
    parts = urlsplit(proxy)
    if parts.scheme not in SUPPORTED:
        return f"{parts.scheme}:// proxies are not supported (only http:// and https://)"
    if not parts.hostname:
        return "no host in the proxy URL"
    return None


def mask(proxy: str) -> str:
    """The proxy URL with its user name and password replaced, for logs and errors."""
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    if "@" not in parts.netloc:
        return proxy
    return f"{parts.scheme}://***:***@{parts.netloc.rpartition('@')[2]}"


def url_host(url: str) -> str:
    """The host of `url` as NO_PROXY compares it: IPv6 in brackets, a non-ASCII name in IDNA."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1]
    host = netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def no_proxy_matches(host: str, no_proxy: str | None) -> bool:
    """Whether curl goes directly to `host` (as in a URL: IPv6 in brackets) under `no_proxy`."""
    if not host or not no_proxy:
        return False
    if no_proxy == "*":
        return True
    ip = _ip(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
    name = host.lower().removesuffix(".")
    for token in _tokens(no_proxy):
        if _match_ip(ip, token) if ip is not None else _match_name(name, token):
            return True
    return False


def _ip(text: str) -> IP | None:
    if "%" in text:  # a zone id: curl does not take it as an address
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _tokens(no_proxy: str) -> list[str]:
    """The entries: separated by commas, blanks around them skipped; a blank that no comma
    follows ends the list (curl 8.9 and later)."""
    tokens: list[str] = []
    for chunk in no_proxy.split(","):
        words = chunk.split()
        tokens += words[:1]
        if len(words) > 1:
            break
    return tokens


def _match_name(name: str, token: str) -> bool:
    token = token.lower().removesuffix(".").removeprefix(".")
    return bool(token) and (name == token or name.endswith("." + token))


def _match_ip(host: IP, token: str) -> bool:
    address, slash, bits_text = token.partition("/")
    network = _ip(address)
    if network is None or network.version != host.version:
        return False
    width = network.max_prefixlen
    bits = int(bits_text) if slash and bits_text.isdigit() else (0 if not slash else -1)
    if bits < 0 or bits > width:
        return False
    bits = bits or width  # curl: no prefix (or /0) compares the whole address
    shift = width - bits
    return int(host) >> shift == int(network) >> shift
