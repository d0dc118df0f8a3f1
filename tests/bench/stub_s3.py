"""A canned ListObjectsV2 endpoint on loopback, to measure the client's side of a listing only.

Not an S3 implementation (moto is, in tests/s3server.py, but it lists about 1,000 keys a
second: each page scans and sorts the whole bucket). This answers `GET /<bucket>?list-type=2`
with pages of synthetic keys in the exact XML S3 sends, URL-encoded as asked, ignores
signatures and serves nothing else. The bucket's name says how many keys it holds: `n20000`
holds `song/00000000.wav` to `song/00019999.wav`, ETag `"<i as 32 hex digits>"`, size
`1000 + i` (`expected(i)` gives the same, for a ledger made to match). Pages are made once and
kept, so the stub's own CPU drops out after the first listing.

    python -m tests.bench.stub_s3 PORT      (prints "stub listening on http://127.0.0.1:PORT")
"""

from __future__ import annotations

import sys
from xml.sax.saxutils import escape

from aiohttp import web

_PAGES: dict[tuple[str, str, int, int], bytes] = {}


def expected(i: int) -> tuple[str, int, str]:
    """Key, size and ETag (without quotes) of object `i` of a stub bucket."""
    return f"song/{i:08d}.wav", 1000 + i, f"{i:032x}"


def _page(bucket: str, prefix: str, start: int, max_keys: int) -> bytes:
    total = int(bucket[1:])
    end = min(start + max_keys, total)
    items = []
    for i in range(start, end):
        key, size, etag = expected(i)
        items.append(
            f"<Contents><Key>{escape(key)}</Key>"
            f"<LastModified>2026-11-01T10:00:00.000Z</LastModified>"
            f"<ETag>&quot;{etag}&quot;</ETag><Size>{size}</Size>"
            f"<StorageClass>STANDARD</StorageClass></Contents>"
        )
    truncated = end < total
    token = f"<NextContinuationToken>{end}</NextContinuationToken>" if truncated else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{end - start}"
        f"</KeyCount><MaxKeys>{max_keys}</MaxKeys><EncodingType>url</EncodingType>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{token}"
        + "".join(items)
        + "</ListBucketResult>"
    ).encode()


async def _list(request: web.Request) -> web.Response:
    query = request.query
    if query.get("list-type") != "2":
        return web.Response(status=501)
    key = (
        request.match_info["bucket"],
        query.get("prefix", ""),
        int(query.get("continuation-token", "0")),
        min(int(query.get("max-keys", "1000")), 1000),
    )
    body = _PAGES.get(key)
    if body is None:
        body = _PAGES[key] = _page(*key)
    return web.Response(body=body, content_type="application/xml")


def main(port: int) -> None:
    app = web.Application()
    app.router.add_get("/{bucket}", _list)
    print(f"stub listening on http://127.0.0.1:{port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
