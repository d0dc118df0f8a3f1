"""Catalogue-size rows: a first run at two sizes (peak RSS at 10x the files), then the rerun of
each, now unchanged and all done, beside `rclone copy` to an up-to-date local mirror and
`find -printf` over the same tree.

The rerun's start-up drops out of the per-file cost: (time at the large size - time at the small
size) / the difference in files, for ingest and each reference alike.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tests.bench import references
from tests.bench.context import Context
from tests.bench.harness import (
    REPEATS,
    Sample,
    ingest_run,
    interleaved,
    median,
    scaled,
    summary_count,
)
from tests.bench.table import Goal, line, section


def _first_run(ctx: Context, tree: Path, files: int) -> tuple[Path, Sample]:
    sandbox = ctx.sandbox(0.0)
    db = ctx.ledger(f"first-{files}")
    sample = ingest_run(
        str(tree),
        "--db",
        str(db),
        "--api-url",
        sandbox.url,
        "--concurrency",
        "64",
        sandbox=sandbox,
    )
    line(
        f"first run, {files:>6,} files: {sample.seconds:7.2f} s, "
        f"{files / sample.seconds:6.1f} files/s, peak RSS {sample.rss_mb:6.1f} MB"
    )
    return db, sample


def _rclone(tree: Path, mirror: Path, config: Path, _round: int) -> Sample:
    return references.rclone_copy(tree, mirror, config)


def _find(tree: Path, _round: int) -> Sample:
    return references.find_printf(tree)


def _rerun(tree: Path, db: Path, files: int, _round: int = 0) -> Sample:
    sample = ingest_run(str(tree), "--db", str(db), "--api-url", "http://127.0.0.1:9/unused")
    if summary_count(sample, "skipped, done") != files:
        raise RuntimeError(f"rerun skipped {summary_count(sample, 'skipped, done')} of {files}")
    return sample


def _mirror(ctx: Context, tree: Path) -> tuple[Path, Path]:
    """An up-to-date local copy of `tree`, made by rclone itself, and an empty rclone config."""
    config = ctx.work / "rclone.conf"
    config.touch()
    mirror = ctx.work / f"mirror-{tree.name}"
    references.rclone_copy(tree, mirror, config)
    return mirror, config


def _per_file_us(
    results: dict[str, list[Sample]], small: int, large: int, name: str, field: str = "seconds"
) -> float:
    extra = median(results[f"{name} {large}"], field) - median(results[f"{name} {small}"], field)
    return extra / (large - small) * 1e6


def memory_and_rerun(ctx: Context) -> list[Goal]:
    small, large = scaled(2000, 200), scaled(20000, 2000)
    section(f"catalogue size: first runs and reruns of {small:,} and {large:,} files")
    trees = {n: ctx.tree(n) for n in (small, large)}
    first = {n: _first_run(ctx, trees[n], n) for n in (small, large)}
    rss_ratio = first[large][1].rss_mb / first[small][1].rss_mb
    goals = [
        Goal(
            f"memory: first run of {large:,} vs {small:,} files (10x)",
            f"{first[large][1].rss_mb:.1f} MB",
            f"{first[small][1].rss_mb:.1f} MB",
            f"{rss_ratio:.2f}x",
            "within 1.2x",
            rss_ratio <= 1.2,
        )
    ]
    return goals + [_rerun_goal(ctx, trees, {n: db for n, (db, _) in first.items()})]


def _rerun_goal(ctx: Context, trees: dict[int, Path], dbs: dict[int, Path]) -> Goal:
    small, large = sorted(trees)
    work = f"rerun, unchanged catalogue ({small:,} and {large:,} files)"
    goal = "as fast as rclone or faster (<= 1.0x its cost per file)"
    variants = {f"ingest {n}": functools.partial(_rerun, trees[n], dbs[n], n) for n in trees}
    why = references.tool("rclone")
    if why:
        line(f"skipped the rclone reference: {why}")
    else:
        for n, tree in trees.items():
            mirror, config = _mirror(ctx, tree)
            variants[f"rclone {n}"] = functools.partial(_rclone, tree, mirror, config)
    if not references.tool("find"):
        for n, tree in trees.items():
            variants[f"find {n}"] = functools.partial(_find, tree)
    results = interleaved(variants, REPEATS + 2, budget=120)
    for name, runs in results.items():
        line(f"{name:<14}{median(runs):8.3f} s   peak RSS {median(runs, 'rss_mb'):6.1f} MB")
    ours = _per_file_us(results, small, large, "ingest")
    shown = [
        f"{t} {_per_file_us(results, small, large, t):.1f} us"
        for t in ("rclone", "find")
        if f"{t} {small}" in results
    ]
    line(f"per extra file: ingest {ours:.1f} us; " + "; ".join(shown))
    cpu = [
        f"{t} {_per_file_us(results, small, large, t, 'cpu'):.1f} us"
        for t in ("ingest", "rclone")
        if f"{t} {small}" in results
    ]
    line("per extra file, CPU (less hurt by a loaded machine): " + "; ".join(cpu))
    if why:
        return Goal(work, f"{ours:.1f} us/file", why, "-", goal, None)
    rclone = _per_file_us(results, small, large, "rclone")
    ratio = ours / rclone if rclone > 0 else float("inf")
    return Goal(
        work,
        f"{ours:.1f} us/file",
        "; ".join(shown),
        f"{ratio:.2f}x rclone's cost",
        goal,
        ratio <= 1.0,
    )
