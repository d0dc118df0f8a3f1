"""The live progress display for terminals (rich). Off a terminal (cron) it is never shown.

It only reads the run's `Tally` a few times a second; the runner knows nothing about it. The
total is unknown while sources are still being read (a crawl is streamed), so the bar is
indeterminate until the crawl ends, then shows files left and an ETA.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipeline.report import Tally, human_size


def _line(tally: Tally, started: float) -> str:
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = tally.uploaded_bytes / elapsed
    return (
        f"up {tally.uploaded} ({human_size(tally.uploaded_bytes)}, {human_size(rate)}/s) · "
        f"skipped {tally.skipped_done + tally.skipped_failed + tally.deduplicated} · "
        f"failed {tally.failed_total} · retries {tally.retries} · in flight {tally.in_flight}"
    )


@contextlib.asynccontextmanager
async def show(tally: Tally, *, enabled: bool, interval: float = 0.25) -> AsyncIterator[None]:
    if not enabled:
        yield
        return
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    )
    started = time.monotonic()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=None)

        def draw(total: int | None) -> None:
            description = _line(tally, started)
            progress.update(task, completed=tally.processed, total=total, description=description)

        async def refresh() -> None:
            while True:
                draw(tally.seen if tally.sources_done else None)
                await asyncio.sleep(interval)

        ticker = asyncio.create_task(refresh())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            draw(tally.seen)
