"""The least a client of the design can do per big file: ingest's own read-hash-send path, and
nothing else. Each file is hashed (`read_and_hash`, no more at once than cores, as a run does)
and posted with ingest's multipart body (`build_form`: sendfile on plain HTTP); no config, ledger,
crawl, probe, retries or summary. Its time against curl's is the most a Python client on
aiohttp that knows each file's hash can reach; ingest's against it is what the rest of a run
costs. Run as `python -m tests.bench.send_only URL CONCURRENCY LISTFILE`, the key in
AIMLAPI_API_KEY; prints how many uploads succeeded and exits 1 unless all did.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from pipeline.content.hashing import read_and_hash
from pipeline.transport.multipart import build_form


async def _worker(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    paths: Iterator[str],
    hashing: asyncio.Semaphore,
) -> int:
    ok = 0
    for path in paths:  # one iterator shared by every worker: each path is taken once
        async with hashing:
            hashed = await asyncio.to_thread(read_and_hash, path)
        form = build_form("song", hashed.body, os.path.basename(path), "audio/wav")
        async with session.post(url, data=form, headers=headers) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:  # an error page, not JSON: a failed upload
                body = {}
        ok += resp.status == 200 and body.get("base_resp", {}).get("status_code") == 0
    return ok


async def post_all(url: str, key: str, paths: list[str], concurrency: int) -> int:
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    # The CPUs this process may use, as `pipeline.run.hashes.cores` counts them (not imported:
    # it brings the probe's modules, which this client has no use for).
    shared, hashing = iter(paths), asyncio.Semaphore(len(os.sched_getaffinity(0)))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        counts = await asyncio.gather(
            *(_worker(session, url, headers, shared, hashing) for _ in range(concurrency))
        )
    return sum(counts)


def main(argv: list[str]) -> int:
    url, concurrency, paths = argv[0], int(argv[1]), Path(argv[2]).read_text().splitlines()
    ok = asyncio.run(post_all(url, os.environ["AIMLAPI_API_KEY"], paths, concurrency))
    print(f"uploaded {ok} of {len(paths)}")
    return 0 if ok == len(paths) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
