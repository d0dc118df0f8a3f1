"""Bucket rows: `ingest run s3://bucket/prefix/` beside the same work from a local folder, and
what listing and skipping an unchanged bucket costs.

- upload: 2,000 small objects from an S3 server on loopback vs the same 2,000 files from a
  local folder, both sent to one sandbox answering after 100 ms, `--concurrency 32`,
  interleaved, a fresh ledger every time; beside them, how fast the server serves those
  objects to a bare aiobotocore loop that only GETs them (`bare_s3.py`), the floor of any S3
  client. The goal row's server is `rclone serve s3` (`rclone_s3.py`); moto's, which serves
  GETs no faster than the sandbox takes uploads, is kept for reference;
- no-op rerun: every object already done in the ledger (made to match, row by row), listed
  and skipped. The goal (20,000 objects/s) is about ingest's side: moto lists about 1,000 keys
  a second (each page scans and sorts its whole bucket), so it is measured against the canned
  listing stub (`stub_s3.py`), at 2,000 and 20,000 objects so that start-up drops out
  ((t_large - t_small) / 18,000 objects), the raw rate at 20,000 beside it; and, for
  reference, the same 20,000-object rerun end to end against moto;
- memory: peak RSS of no-op reruns of 10,000 and 100,000 objects listed from the stub.

moto's server and the stub run as subprocesses of their own; the ingest runs get only the AWS
variables they need, and `AWS_EC2_METADATA_DISABLED=true`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.bench.context import Context
from tests.bench.harness import (
    INGEST,
    REPEATS,
    Sample,
    Sandbox,
    ingest_env,
    ingest_run,
    interleaved,
    measure,
    median,
    scaled,
    summary_count,
)
from tests.bench.rclone_s3 import RcloneS3
from tests.bench.stub_s3 import expected
from tests.bench.table import Goal, line, section
from tests.processes import stop_process
from tests.s3server import S3Server, start_s3

CONCURRENCY = 32


def bucket_upload(ctx: Context) -> list[Goal]:
    moto = start_s3(auth=False)
    rclone = RcloneS3(ctx.work / "rclone-s3")
    try:
        return _upload_rows(ctx, moto, rclone)
    finally:
        rclone.stop()
        moto.stop()


def bucket_rerun(ctx: Context) -> list[Goal]:
    moto, stub = start_s3(auth=False), _Stub()
    try:
        return _rerun_rows(ctx, moto, stub)
    finally:
        stub.stop()
        moto.stop()


def bucket_memory(ctx: Context) -> list[Goal]:
    stub = _Stub()
    try:
        return [_memory_row(ctx, stub)]
    finally:
        stub.stop()


# --- upload: moto vs a local folder -------------------------------------------------------------


def _upload_rows(ctx: Context, moto: S3Server, rclone: RcloneS3) -> list[Goal]:
    files = scaled(2000, 200)
    work = f"{files:,} objects from S3 (%s, loopback) vs the same files from a folder"
    section(f"{work % 'rclone serve s3; moto'}: 100 ms latency, --concurrency {CONCURRENCY}")
    tree = ctx.tree(files)
    started = time.monotonic()
    moto.bucket("upload")
    moto.put("upload", ((str(p.relative_to(tree)), p.read_bytes()) for p in _files(tree)))
    folder = rclone.bucket("upload")
    for path in _files(tree):
        (folder / path.relative_to(tree)).parent.mkdir(parents=True, exist_ok=True)
        os.link(path, folder / path.relative_to(tree))
    line(f"filled the buckets with {files:,} objects in {time.monotonic() - started:.1f} s")
    sandbox = ctx.sandbox(0.1)
    bare = [sys.executable, "-m", "tests.bench.bare_s3", "upload", str(CONCURRENCY)]
    results = interleaved(
        {
            "folder": lambda _: _upload(ctx, sandbox, files, str(tree)),
            "rclone s3": lambda _: _upload(ctx, sandbox, files, "s3://upload/", **rclone.aws_env()),
            "rclone GETs": lambda _: measure(bare, env=ingest_env(**rclone.aws_env())),
            "moto s3": lambda _: _upload(ctx, sandbox, files, "s3://upload/", **moto.aws_env()),
            "moto GETs": lambda _: measure(bare, env=ingest_env(**_aws(moto.aws_env()))),
        },
        budget=600,
    )
    for name, runs in results.items():
        secs = median(runs)
        line(
            f"{name:<12}{secs:8.2f} s {files / secs:8.1f} files/s   client CPU "
            f"{median(runs, 'cpu'):6.2f} s   peak RSS {median(runs, 'rss_mb'):6.1f} MB"
        )
    times = {name: median(runs) for name, runs in results.items()}
    folder_s = times["folder"]
    for server in ("rclone", "moto"):
        line(
            f"{server} serves {files / times[f'{server} GETs']:.0f} GETs/s to a bare aiobotocore "
            "loop (no upload at all)"
        )
    rows = []
    for server, goal in (("rclone", True), ("moto", False)):
        ours, floor = times[f"{server} s3"], times[f"{server} GETs"]
        rows.append(
            Goal(
                work % ("rclone serve s3" if server == "rclone" else "moto"),
                f"{ours:.2f} s",
                f"folder {folder_s:.2f} s; {server}'s GETs alone {floor:.2f} s",
                f"{ours / folder_s:.2f}x the time",
                "<= 1.5x the time" if goal else "(kept for reference)",
                ours / folder_s <= 1.5 if goal else None,
            )
        )
    return rows


def _files(tree: Path) -> list[Path]:
    return sorted(p for p in tree.rglob("*.wav"))


def _upload(ctx: Context, sandbox: Sandbox, files: int, source: str, **env: str) -> Sample:
    db = ctx.ledger("bucket-upload")
    args = [source, "--db", str(db), "--api-url", sandbox.url, "--concurrency", str(CONCURRENCY)]
    sample = ingest_run(*args, sandbox=sandbox, **_aws(env))
    if summary_count(sample, "uploaded") != files:
        raise RuntimeError(f"{source}: uploaded {summary_count(sample, 'uploaded')} of {files}")
    return sample


def _aws(env: dict[str, str]) -> dict[str, str]:
    return {"AWS_EC2_METADATA_DISABLED": "true"} | env


# --- no-op reruns -------------------------------------------------------------------------------


def _rerun_rows(ctx: Context, moto: S3Server, stub: _Stub) -> list[Goal]:
    small, large = scaled(2000, 200), scaled(20000, 2000)
    section(f"no-op rerun of a bucket: {small:,} and {large:,} objects, all done earlier")
    dbs = {n: _done_ledger(ctx, f"n{n}", n, expected) for n in (small, large)}
    variants = {
        f"stub {n}": functools.partial(_rerun, dbs[n], f"s3://n{n}/", n, stub.env())
        for n in (small, large)
    }
    results = interleaved(variants, REPEATS + 2, budget=120)  # short runs: a few more
    for name, runs in results.items():
        line(
            f"{name:<12}{median(runs):8.3f} s   CPU {median(runs, 'cpu'):6.2f} s   "
            f"peak RSS {median(runs, 'rss_mb'):6.1f} MB"
        )
    extra = median(results[f"stub {large}"]) - median(results[f"stub {small}"])
    rate = (large - small) / extra if extra > 0 else float("inf")
    raw = large / median(results[f"stub {large}"])
    cpu = median(results[f"stub {large}"], "cpu") - median(results[f"stub {small}"], "cpu")
    line(
        f"listing stub: {rate:,.0f} objects/s past start-up ({(large - small) / cpu:,.0f} per "
        f"CPU-second of ingest's); {raw:,.0f} objects/s in all, start-up included"
    )
    goals = [
        Goal(
            f"no-op rerun of {large:,} objects (listing stub: client side only)",
            f"{rate:,.0f} objects/s",
            f"{large:,} in {median(results[f'stub {large}']):.2f} s with start-up ({raw:,.0f}/s)",
            f"{rate / 20000:.2f} of the goal",
            ">= 20,000 objects/s",
            rate >= 20000,
        )
    ]
    return goals + [_moto_rerun(ctx, moto, large)]


def _moto_rerun(ctx: Context, moto: S3Server, objects: int) -> Goal:
    work = f"no-op rerun of {objects:,} objects, end to end against moto"
    started = time.monotonic()
    moto.bucket("rerun")
    moto.put("rerun", ((_moto_key(i), _moto_body(i)) for i in range(objects)))
    line(f"filled moto with {objects:,} objects in {time.monotonic() - started:.1f} s")
    db = _done_ledger(ctx, "rerun", objects, _moto_object)
    runs = interleaved(
        {"moto": functools.partial(_rerun, db, "s3://rerun/", objects, moto.aws_env())},
        budget=150,
    )["moto"]
    secs = median(runs)
    line(f"moto        {secs:8.3f} s   {objects / secs:,.0f} objects/s (moto's listing sets it)")
    return Goal(
        work,
        f"{objects / secs:,.0f} objects/s",
        "moto lists ~1,000 keys/s (its own cost)",
        "-",
        "(kept for reference)",
        None,
    )


def _moto_key(i: int) -> str:
    return f"song/{i:08d}.wav"


def _moto_body(i: int) -> bytes:
    return b"%d" % i


def _moto_object(i: int) -> tuple[str, int, str]:
    body = _moto_body(i)
    return _moto_key(i), len(body), hashlib.md5(body).hexdigest()  # a single PUT's ETag


def _rerun(db: Path, url: str, objects: int, env: dict[str, str], _round: int = 0) -> Sample:
    sample = ingest_run(url, "--db", str(db), "--api-url", "http://127.0.0.1:9/unused", **_aws(env))
    if summary_count(sample, "skipped, done") != objects:
        raise RuntimeError(f"rerun skipped {summary_count(sample, 'skipped, done')} of {objects}")
    return sample


def _done_ledger(ctx: Context, bucket: str, objects: int, which) -> Path:  # type: ignore[no-untyped-def]
    """A ledger in which object 0 to `objects` - 1 of `bucket` (`which(i)`: key, size, ETag)
    are done: what a first run leaves behind, made directly."""
    db = ctx.ledger(f"done-{bucket}")
    measure([INGEST, "db", "upgrade", "--db", str(db)], env=None)
    now = time.time()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO contents (sha256, purpose, size, status, attempts, voice_id, "
            "created_at, updated_at, done_at) VALUES (?, 'song', 1, 'done', 1, 'v', ?, ?, ?)",
            ("0" * 64, now, now, now),
        )
        rows = (
            (f"s3://{bucket}/{key}", key.rsplit("/", 1)[-1], size, etag, f"s3://{bucket}/", now)
            for key, size, etag in map(which, range(objects))
        )
        conn.executemany(
            "INSERT INTO sources (source, purpose, kind, filename, size, sha256, content_id, "
            "content_status, status, etag, origin, run_id, created_at, updated_at) "
            "VALUES (?, 'song', 's3', ?, ?, '" + "0" * 64 + "', 1, 'done', 'ok', ?, ?, 1, ?, ?)",
            ((*row, row[-1]) for row in rows),
        )
    return db


# --- memory -------------------------------------------------------------------------------------


def _memory_row(ctx: Context, stub: _Stub) -> Goal:
    small, large = scaled(10000, 1000), scaled(100000, 10000)
    work = f"memory: no-op rerun listing {large:,} vs {small:,} objects (listing stub)"
    section(work)
    dbs = {n: _done_ledger(ctx, f"n{n}", n, expected) for n in (small, large)}
    results = interleaved(
        {
            f"{n}": functools.partial(_rerun, dbs[n], f"s3://n{n}/", n, stub.env())
            for n in (small, large)
        },
        budget=120,
    )
    rss = {n: median(results[f"{n}"], "rss_mb") for n in (small, large)}
    for n in (small, large):
        line(f"{n:>7,} objects: {median(results[f'{n}']):7.2f} s, peak RSS {rss[n]:6.1f} MB")
    ratio = rss[large] / rss[small]
    return Goal(
        work,
        f"{rss[large]:.1f} MB",
        f"{rss[small]:.1f} MB",
        f"{ratio:.2f}x",
        "within 1.2x",
        ratio <= 1.2,
    )


class _Stub:
    """`stub_s3.py` as a subprocess on a free loopback port."""

    def __init__(self) -> None:
        from tests.conftest import free_port

        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.stub_s3", str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.endpoint = self.process.stdout.readline().strip().rsplit(" ", 1)[-1]
        time.sleep(0.3)  # the banner comes just before the socket listens

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "stub",
            "AWS_SECRET_ACCESS_KEY": "stub-secret",
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        }

    def stop(self) -> None:
        stop_process(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
