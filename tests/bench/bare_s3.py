"""The floor for fetching a bucket: a bare aiobotocore loop that lists it and GETs every object
`CONCURRENCY` at a time, reading the bytes and dropping them (no hashing, no file, no ledger, no
upload). Run against the same moto server as `ingest run s3://...`, it says how fast the server
itself serves; the credentials and endpoint come from the AWS_* variables the bench sets.

    python -m tests.bench.bare_s3 BUCKET CONCURRENCY
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session


async def _get(client: Any, bucket: str, key: str, slots: asyncio.Semaphore) -> int:
    async with slots:
        reply = await client.get_object(Bucket=bucket, Key=key)
        async with reply["Body"] as body:
            return len(await body.read())


async def main(bucket: str, concurrency: int) -> None:
    config = AioConfig(max_pool_connections=concurrency, retries={"max_attempts": 1})
    async with get_session().create_client("s3", config=config) as client:
        keys = []
        async for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys += [item["Key"] for item in page.get("Contents", [])]
        slots = asyncio.Semaphore(concurrency)
        sizes = await asyncio.gather(*(_get(client, bucket, key, slots) for key in keys))
    print(f"fetched {len(sizes)} objects, {sum(sizes)} bytes")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
