"""Which proxy a URL goes through: curl's rules, case by case.

The expected values are what curl 7.88.1 did in each case (run against these very cases, with
`--resolve` and `-v` showing where it connected), or, where later curl changed (marked `curl
>= 8.9` / `>= 8.18`), what curl's current source does. Python's own readers (urllib, aiohttp's
`trust_env`) differ from curl in a dozen of them; the comments say where.
"""

from __future__ import annotations

import pytest

from pipeline.core.secret import hide_credentials, public_url
from pipeline.transport.proxies import Proxies, mask, no_proxy_matches, proxy_for, unsupported

PX = "http://127.0.0.1:3128"
UP = "http://127.0.0.1:3129"
AP = "http://127.0.0.1:3130"

CASES = [
    # url, environ, explicit proxy (--proxy), expected
    ("http://h.example/", {"http_proxy": PX}, None, PX),
    ("http://h.example/", {"HTTP_PROXY": UP}, None, None),  # httpoxy: never upper for http
    ("https://h.example/", {"HTTPS_PROXY": UP}, None, UP),
    ("https://h.example/", {"https_proxy": PX, "HTTPS_PROXY": UP}, None, PX),
    ("https://h.example/", {"https_proxy": "", "HTTPS_PROXY": UP}, None, UP),  # empty = unset
    ("http://h.example/", {"https_proxy": PX}, None, None),
    ("http://h.example/", {"ALL_PROXY": AP}, None, AP),
    ("https://h.example/", {"all_proxy": AP, "ALL_PROXY": UP}, None, AP),
    ("http://h.example/", {"HTTP_PROXY": UP, "all_proxy": AP}, None, AP),
    ("http://h.example/", {"http_proxy": "127.0.0.1:3128"}, None, PX),  # no scheme -> http
    ("http://h.example/", {"http_proxy": "http://127.0.0.1"}, None, "http://127.0.0.1:1080"),
    ("http://h.example/", {"http_proxy": "https://p.example"}, None, "https://p.example:443"),
    (
        "http://h.example/",
        {"http_proxy": "http://u:p%40ss@127.0.0.1:3128"},
        None,
        "http://u:p%40ss@127.0.0.1:3128",
    ),
    ("http://h.example/", {"http_proxy": PX, "NO_PROXY": "h.example"}, None, None),
    (
        "http://h.example/",
        {"http_proxy": PX, "no_proxy": "x.org", "NO_PROXY": "h.example"},
        None,
        PX,
    ),
    ("http://h.example/", {"http_proxy": PX, "no_proxy": "", "NO_PROXY": "h.example"}, None, None),
    ("http://h.example/", {"http_proxy": PX, "NO_PROXY": ".h.example"}, None, None),
    ("http://api.h.example/", {"http_proxy": PX, "NO_PROXY": "h.example"}, None, None),
    ("http://noth.example/", {"http_proxy": PX, "NO_PROXY": "h.example"}, None, PX),
    ("http://H.EXAMPLE/", {"http_proxy": PX, "NO_PROXY": "h.Example"}, None, None),
    ("http://h.example./", {"http_proxy": PX, "NO_PROXY": "h.example"}, None, None),
    ("http://h.example/", {"http_proxy": PX, "NO_PROXY": "h.example."}, None, None),
    ("http://h.example/", {"http_proxy": PX, "NO_PROXY": "*"}, None, None),
    ("http://h.example/", {"http_proxy": PX, "NO_PROXY": "*,x.org"}, None, PX),
    ("http://h.example/", {"http_proxy": PX, "NO_PROXY": " *"}, None, PX),
    ("http://a.h.example/", {"http_proxy": PX, "NO_PROXY": "*.h.example"}, None, PX),
    ("http://h.example:8080/", {"http_proxy": PX, "NO_PROXY": "h.example:8080"}, None, PX),
    ("http://h.example/", {"http_proxy": PX, "NO_PROXY": "x.org, h.example"}, None, None),
    ("http://h.example/", {"http_proxy": PX, "NO_PROXY": " x.org ,\th.example "}, None, None),
    ("http://h.example/", {"http_proxy": PX, "NO_PROXY": "x.org h.example"}, None, PX),  # curl>=8.9
    ("http://h.example/", {"http_proxy": PX, "NO_PROXY": ",,h.example,"}, None, None),
    ("http://127.0.0.1/", {"http_proxy": PX, "NO_PROXY": "127.0.0.1"}, None, None),
    ("http://127.0.0.1/", {"http_proxy": PX, "NO_PROXY": "0.0.1"}, None, PX),
    ("http://127.0.0.1/", {"http_proxy": PX, "NO_PROXY": "127.0.0.0/8"}, None, None),
    ("http://127.0.1.5/", {"http_proxy": PX, "NO_PROXY": "127.0.0.0/24"}, None, PX),
    ("http://127.0.0.1/", {"http_proxy": PX, "NO_PROXY": "127.0.0.1/33"}, None, PX),
    ("http://127.0.0.1/", {"http_proxy": PX, "NO_PROXY": "localhost"}, None, PX),
    ("http://localhost/", {"http_proxy": PX, "NO_PROXY": "127.0.0.1"}, None, PX),
    ("http://[::1]:8/", {"http_proxy": PX, "NO_PROXY": "::1"}, None, None),
    ("http://[::1]:8/", {"http_proxy": PX, "NO_PROXY": "[::1]"}, None, PX),
    ("http://[::1]:8/", {"http_proxy": PX, "NO_PROXY": "::/64"}, None, None),  # curl>=8.18
    ("http://[::1]:8/", {"http_proxy": PX, "NO_PROXY": "::/127"}, None, None),  # curl>=8.18
    ("http://[::1]:8/", {"http_proxy": PX, "NO_PROXY": "::2/127"}, None, PX),
    ("http://[2001:db8::5]/", {"http_proxy": PX, "NO_PROXY": "2001:db8::/32"}, None, None),
    ("http://127.0.0.1/", {"http_proxy": PX, "NO_PROXY": "::ffff:127.0.0.1"}, None, PX),
    ("http://h.example/", {"NO_PROXY": "h.example"}, "http://127.0.0.1:9", None),  # -x + NO_PROXY
    ("http://h.example/", {"http_proxy": PX}, "http://127.0.0.1:9", "http://127.0.0.1:9"),
    ("http://bücher.example/", {"http_proxy": PX, "NO_PROXY": "xn--bcher-kva.example"}, None, None),
]


@pytest.mark.parametrize(("url", "environ", "explicit", "expected"), CASES)
def test_proxy_for_decides_as_curl_does(
    url: str, environ: dict[str, str], explicit: str | None, expected: str | None
) -> None:
    assert proxy_for(url, environ, proxy=explicit) == expected
    assert Proxies(environ, explicit).for_url(url) == expected


def test_an_empty_host_is_never_matched() -> None:
    assert not no_proxy_matches("", "*")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("http://user:secret@127.0.0.1:3128", "http://***:***@127.0.0.1:3128"),
        ("http://token@p.example:3128", "http://***:***@p.example:3128"),
        ("http://127.0.0.1:3128", "http://127.0.0.1:3128"),
        ("u:p@w@p.example:1", "http://***:***@p.example:1"),
    ],
)
def test_mask_hides_the_user_and_password(url: str, masked: str) -> None:
    assert mask(url) == masked


def test_only_http_and_https_proxies_can_be_used() -> None:
    assert unsupported("http://p:1") is None and unsupported("https://p:1") is None
    assert "socks5:// proxies are not supported" in str(unsupported("socks5://p:1080"))


def test_credentials_are_hidden_in_any_text() -> None:
    text = (
        "401, message='Unauthorized', url='http://ingest:s3cr3t@127.0.0.1:41413' "
        "and postgresql://u:p@w@db/x, not http://host/a@b"
    )
    assert hide_credentials(text) == (
        "401, message='Unauthorized', url='http://***:***@127.0.0.1:41413' "
        "and postgresql://***:***@db/x, not http://host/a@b"
    )


def test_a_url_is_shown_without_credentials_or_query_values() -> None:
    shown = public_url("https://u:p@cdn.example/a/b.wav?X-Amz-Signature=abc&X-Amz-Expires=60&x")
    assert shown == "https://cdn.example/a/b.wav?X-Amz-Signature=***&X-Amz-Expires=***&x"
    assert public_url("http://127.0.0.1:9/v2/upload") == "http://127.0.0.1:9/v2/upload"
