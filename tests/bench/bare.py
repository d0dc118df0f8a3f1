"""The floor for throughput: a bare aiohttp loop that posts files with N requests in flight.

No ledger, no hashing, no probe, no retries: read the file, post the multipart form ingest posts
(`purpose`, then `file` with its content type) with the bearer key, check that `base_resp` says 0.
Run as `python -m tests.bench.bare URL CONCURRENCY LISTFILE` with the key in AIMLAPI_API_KEY;
prints how many uploads succeeded and exits 1 unless all did.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp

PROXY = os.environ.get("BARE_PROXY") or None  # the proxy to post through, if any


async def _worker(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], paths: Iterator[str]
) -> int:
    ok = 0
    for path in paths:  # one iterator shared by every worker: each path is taken once
        form = aiohttp.FormData()
        form.add_field("purpose", "song")
        data = Path(path).read_bytes()
        form.add_field("file", data, filename=os.path.basename(path), content_type="audio/wav")
        async with session.post(url, data=form, headers=headers, proxy=PROXY) as resp:
            body = await resp.json()
        ok += resp.status == 200 and body.get("base_resp", {}).get("status_code") == 0
    return ok


async def post_all(url: str, key: str, paths: list[str], concurrency: int) -> int:
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    shared = iter(paths)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        counts = await asyncio.gather(
            *(_worker(session, url, headers, shared) for _ in range(concurrency))
        )
    return sum(counts)


def main(argv: list[str]) -> int:
    url, concurrency, listing = argv[0], int(argv[1]), Path(argv[2])
    paths = listing.read_text().splitlines()
    ok = asyncio.run(post_all(url, os.environ["AIMLAPI_API_KEY"], paths, concurrency))
    print(f"uploaded {ok} of {len(paths)}")
    return 0 if ok == len(paths) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
