"""Throughput rows: ingest against the sandbox beside a reference posting the same files.

- latency: small files, the sandbox answering after 100 ms, `--concurrency 32`; against the
  ideal N x latency / concurrency and `xargs -P 32 curl`;
- floor: small files, no latency, `--concurrency 64`; against the bare aiohttp loop, with the
  sandbox's own CPU shown (one core at 100% means the sandbox, not the client, sets the pace);
- big files: 53 MB WAVs, `--concurrency 4`; against `xargs -P 4 curl`, with ingest's own
  hash-and-send path alone beside them (`send_only.py`: what the rest of a run costs); and
  ingest's peak RSS there beside its peak RSS with small files.

Every ingest repetition starts from a fresh ledger and must upload every file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from tests.bench import data, references
from tests.bench.context import Context
from tests.bench.harness import (
    Sample,
    Sandbox,
    ingest_run,
    interleaved,
    median,
    scaled,
    summary_count,
)
from tests.bench.table import Goal, line, section, skipped, speed


def _ingest(ctx: Context, tree: Path, sandbox: Sandbox, concurrency: int, files: int) -> Sample:
    db = ctx.ledger(f"c{concurrency}")
    sample = ingest_run(
        str(tree),
        "--db",
        str(db),
        "--api-url",
        sandbox.url,
        "--concurrency",
        str(concurrency),
        sandbox=sandbox,
    )
    if summary_count(sample, "uploaded") != files:
        raise RuntimeError(f"ingest uploaded {summary_count(sample, 'uploaded')} of {files}")
    return sample


def show(results: Mapping[str, list[Sample]], files: int) -> None:
    """Medians per variant: time, files/s, client CPU, sandbox CPU (share of one core), RSS."""
    for name, runs in results.items():
        secs, server = median(runs), median(runs, "server_cpu")
        line(
            f"{name:<16}{secs:8.2f} s {files / secs:8.1f} files/s   client CPU "
            f"{median(runs, 'cpu'):6.2f} s   sandbox CPU {server:6.2f} s "
            f"({server / secs:4.0%} of a core)   peak RSS {median(runs, 'rss_mb'):6.1f} MB"
        )


Reference = Callable[[str, Path, int, Sandbox], Sample]


def _side_by_side(
    ctx: Context,
    tree: Path,
    sandbox: Sandbox,
    concurrency: int,
    reference: Reference,
    *,
    budget: float,
) -> tuple[list[Sample], list[Sample]]:
    """Ingest and the reference on the same files, interleaved; the samples of each."""
    listing = data.file_list(tree, ctx.work / f"{tree.name}.list")
    files = len(listing.read_text().splitlines())
    results = interleaved(
        {
            "ingest": lambda _: _ingest(ctx, tree, sandbox, concurrency, files),
            "reference": lambda _: reference(sandbox.url, listing, concurrency, sandbox),
        },
        budget=budget,
    )
    name = "bare aiohttp" if reference is references.bare_loop else f"xargs -P {concurrency} curl"
    show({"ingest": results["ingest"], name: results["reference"]}, files)
    return results["ingest"], results["reference"]


def latency_row(ctx: Context) -> list[Goal]:
    files, latency, concurrency = scaled(2000, 400), 0.1, 32
    work = f"{files:,} small files, {latency * 1000:.0f} ms latency, --concurrency {concurrency}"
    section(work)
    goal = ">= 0.9 of ideal and faster than curl"
    why = references.tool("curl") or references.tool("xargs")
    if why:
        line(f"skipped the curl reference: {why}")
        return [skipped(work, goal, why)]
    sandbox = ctx.sandbox(latency)
    runs, refs = _side_by_side(
        ctx, ctx.tree(files), sandbox, concurrency, references.curl_xargs, budget=150
    )
    ours, curl = median(runs), median(refs)
    ctx.notes["small files RSS"] = median(runs, "rss_mb")
    ideal = files * latency / concurrency
    of_ideal, vs_curl = speed(ideal, ours), speed(curl, ours)
    line(f"ideal {ideal:.2f} s: ingest reaches {of_ideal:.2f} of it; {vs_curl:.2f}x curl's speed")
    return [
        Goal(
            work,
            f"{ours:.2f} s",
            f"ideal {ideal:.2f} s; curl {curl:.2f} s",
            f"{of_ideal:.2f} of ideal; {vs_curl:.2f}x curl",
            goal,
            of_ideal >= 0.9 and vs_curl > 1.0,
        )
    ]


def floor_row(ctx: Context) -> list[Goal]:
    files, concurrency = scaled(8000, 800), 64
    work = f"{files:,} small files, no latency, --concurrency {concurrency}"
    section(work)
    sandbox = ctx.sandbox(0.0)
    runs, refs = _side_by_side(
        ctx, ctx.tree(files), sandbox, concurrency, references.bare_loop, budget=200
    )
    ours, bare = median(runs), median(refs)
    ratio = speed(bare, ours)
    line(f"ingest reaches {ratio:.2f} of the bare loop's speed")
    return [
        Goal(
            work,
            f"{ours:.2f} s",
            f"bare aiohttp loop {bare:.2f} s",
            f"{ratio:.2f} of bare",
            ">= 0.8 of bare",
            ratio >= 0.8,
        )
    ]


def big_row(ctx: Context) -> list[Goal]:
    count, concurrency = scaled(12, 3), 4
    work = f"{count} WAVs of 53 MB, --concurrency {concurrency}"
    section(work)
    goal = ">= 0.8 of curl"
    why = references.tool("curl") or references.tool("xargs")
    if why:
        line(f"skipped the curl reference: {why}")
        return [skipped(work, goal, why)]
    tree = data.big_files(ctx.work / "big", count)
    sandbox = ctx.sandbox(0.0)
    listing = data.file_list(tree, ctx.work / f"{tree.name}.list")
    results = interleaved(
        {
            "ingest": lambda _: _ingest(ctx, tree, sandbox, concurrency, count),
            f"xargs -P {concurrency} curl": lambda _: references.curl_xargs(
                sandbox.url, listing, concurrency, sandbox
            ),
            "send only": lambda _: references.send_only(sandbox.url, listing, concurrency, sandbox),
        },
        budget=150,
    )
    show(results, count)
    names = ("ingest", f"xargs -P {concurrency} curl", "send only")
    ours, curl, least = (median(results[name]) for name in names)
    ratio, bound = speed(curl, ours), speed(curl, least)
    line(
        f"ingest reaches {ratio:.2f} of curl's speed; hashing and sending alone "
        f"(tests/bench/send_only.py) reach {bound:.2f}"
    )
    big, small = median(results["ingest"], "rss_mb"), ctx.notes.get("small files RSS")
    return [
        Goal(
            work, f"{ours:.2f} s", f"curl {curl:.2f} s", f"{ratio:.2f} of curl", goal, ratio >= 0.8
        ),
        Goal(
            f"{work}: hash and send only, no ledger, crawl or probe",
            f"{least:.2f} s",
            f"curl {curl:.2f} s",
            f"{bound:.2f} of curl",
            "(kept for reference)",
            None,
        ),
        Goal(
            "peak RSS, 53 MB files (c 4) vs 21 KB files (c 32)",
            f"{big:.1f} MB",
            f"{small:.1f} MB" if small else "-",
            f"{big / small:.2f}x" if small else "-",
            "(kept for reference)",
            None,
        ),
    ]
