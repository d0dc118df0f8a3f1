"""What each subcommand does, once the CLI has built Settings. This is the edge where I/O is
built (aiohttp session, ledger engine, signal handlers, progress display) and passed inward.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import aiohttp

from pipeline import logs, progress
from pipeline.api import UploadClient
from pipeline.cli import Exit
from pipeline.config import Settings
from pipeline.errors import UsageError
from pipeline.fetch import HttpFetcher
from pipeline.ledger import Ledger, lock, migrate, open_ledger
from pipeline.ledger.migrate import check_sqlite_file, sqlite_path, upgrade
from pipeline.report import Tally, export_header, export_line, render_status, render_summary
from pipeline.runner import Fetcher, Runner, Stop, policy_from
from pipeline.sources import Source, check_sources, iter_entries
from pipeline.throttle import Throttle

log = logging.getLogger("pipeline")


def exit_code(runner: Runner, tally: Tally) -> Exit:
    """The outcome of a run, most urgent first."""
    if runner.fatal is not None:
        return Exit.REFUSED
    reason = runner.stop.reason
    if reason in ("SIGINT", "SIGTERM"):
        return Exit.SIGINT if reason == "SIGINT" else Exit.SIGTERM
    if reason == "deadline" and not runner.finished:
        return Exit.TIME_BUDGET
    # A bad file needs a person; transient leftovers only need a rerun (which happens anyway).
    if tally.failed_total:
        return Exit.FAILED
    if tally.left_total:
        return Exit.TRANSIENT
    return Exit.OK


async def run(
    settings: Settings, raw_sources: Sequence[str], manifests: Sequence[str], *, argv: Sequence[str]
) -> int:
    roots = check_sources(raw_sources, manifests)
    logs.configure(settings.log_level, settings.log_format, settings.api_key)
    async with contextlib.AsyncExitStack() as stack:
        if settings.dry_run:
            url = _dry_run_url(settings.db, stack)  # reads only: no lock needed
        else:
            url = settings.db
            await stack.enter_async_context(_held(settings.db, wait=settings.wait))
        ledger = await open_ledger(url)
        stack.push_async_callback(ledger.close)
        if not settings.dry_run:
            crashed = await ledger.close_abandoned_runs()
            if crashed:
                log.info("%d earlier run(s) ended without finishing; resuming their work", crashed)
        return await _run_with_ledger(settings, roots, ledger, argv=argv)


def _held(url: str, *, wait: bool) -> contextlib.AbstractAsyncContextManager[None]:
    """This process's hold on the ledger at `url` (see ledger/lock.py). A file that is not a
    ledger is refused first, so no lock file is ever created beside it."""
    path = sqlite_path(url)
    if path is not None:
        check_sqlite_file(path)
    return lock.hold(
        path,
        wait=wait,
        describe_holder=lambda: asyncio.to_thread(_describe_holder, path),
        on_wait=lambda holder: log.info("ledger held by %s; waiting (--wait)", holder),
    )


def _describe_holder(path: Path | None) -> str:
    """Who holds the ledger, read without taking any lock (SQLite WAL readers never block)."""
    if path is None or not path.exists():
        return "another run"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute(
                "SELECT id, pid, host, started_at FROM runs WHERE status = 'running' "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        row = None
    if row is None:
        return "another run (starting up)"
    run_id, pid, host, started = row
    return f"run #{run_id} (pid {pid} on {host}, started {_fmt_time(started)})"


def _dry_run_url(url: str, stack: contextlib.AsyncExitStack) -> str:
    """A dry run reads the real ledger if there is one, else an empty throwaway one: it never
    creates or changes the real one."""
    path = sqlite_path(url)
    if path is None or path.exists():
        return url
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="ingest-dry-"))
    return f"sqlite+aiosqlite:///{folder}/dry-run.db"


async def _run_with_ledger(
    settings: Settings, roots: Sequence[Source], ledger: Ledger, *, argv: Sequence[str]
) -> int:
    started = time.monotonic()
    run_id = (
        0
        if settings.dry_run
        else await ledger.start_run(
            pid=os.getpid(), host=socket.gethostname(), command=" ".join(["ingest", *argv])
        )
    )
    tally = Tally()
    stop = Stop()
    entries = iter_entries(roots, purpose=settings.purpose, stats=tally.crawl)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.timeout, sock_read=settings.timeout
    )
    connector = aiohttp.TCPConnector(limit=settings.concurrency * 2 + 4)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        uploader = None
        if settings.api_key is not None:
            uploader = UploadClient(
                session, url=settings.api_url, key=settings.api_key, timeout=settings.timeout
            )
        runner = Runner(
            settings,
            ledger=ledger,
            uploader=uploader,
            entries=entries,
            tally=tally,
            stop=stop,
            run_id=run_id,
            throttle=Throttle(settings.rate),
            fetcher=_fetcher(settings, session, stop),
        )
        with _signals(stop), _deadline(settings, stop):
            async with progress.show(tally, enabled=_progress_wanted(settings)):
                await runner.run()
    code = exit_code(runner, tally)
    elapsed = time.monotonic() - started
    if runner.fatal is not None:
        print(f"ingest: {runner.fatal} (entries stay pending)", file=sys.stderr)
    outcome = _outcome(code)
    if not settings.dry_run:
        await ledger.finish_run(
            run_id, status=outcome, exit_code=int(code), summary=tally.as_dict(elapsed)
        )
    print(render_summary(tally, elapsed=elapsed, outcome=outcome, dry_run=settings.dry_run))
    return int(code)


def _progress_wanted(settings: Settings) -> bool:
    if settings.progress == "auto":
        return sys.stderr.isatty() and settings.log_format == "text"
    return settings.progress == "always"


def _outcome(code: Exit) -> str:
    return {
        Exit.OK: "finished",
        Exit.FAILED: "finished",
        Exit.TRANSIENT: "finished",
        Exit.TIME_BUDGET: "time-budget",
        Exit.REFUSED: "refused",
        Exit.SIGINT: "interrupted",
        Exit.SIGTERM: "interrupted",
    }.get(code, "finished")


def _fetcher(settings: Settings, session: aiohttp.ClientSession, stop: Stop) -> Fetcher:
    async def sleep(seconds: float) -> None:
        # Backoff between download attempts ends early when the run is stopping.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.event.wait(), timeout=seconds)

    return HttpFetcher(
        session,
        max_size=settings.max_file_size,
        timeout=settings.timeout,
        policy=policy_from(settings),
        sleep=sleep,
    )


@contextlib.contextmanager
def _signals(stop: Stop) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop taking work, let in-flight uploads finish. Second: abort."""
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.requested and stop.reason in ("SIGINT", "SIGTERM"):
            print(f"ingest: second {name}: aborting now", file=sys.stderr)
            os._exit(Exit.SIGINT if signum == signal.SIGINT else Exit.SIGTERM)
        print(
            f"ingest: {name}: finishing uploads in flight (send it again to abort)", file=sys.stderr
        )
        stop.request(name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle, sig)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def _deadline(settings: Settings, stop: Stop) -> Iterator[None]:
    if settings.max_duration is None:
        yield
        return
    handle = asyncio.get_running_loop().call_later(settings.max_duration, stop.request, "deadline")
    try:
        yield
    finally:
        handle.cancel()


def _require_existing(url: str) -> None:
    """Commands that only read never create a ledger."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise UsageError(f"no ledger at {path} (run `ingest run` first, or pass --db)")


async def _open_existing(settings: Settings) -> Ledger:
    _require_existing(settings.db)
    return await open_ledger(settings.db)


async def status(settings: Settings) -> int:
    ledger = await _open_existing(settings)
    try:
        counts = await ledger.counts()
        runs = await ledger.last_runs(5)
        errors = await ledger.top_errors(5)
    finally:
        await ledger.close()
    print(render_status(counts, runs, errors, fmt_time=_fmt_time))
    return Exit.OK


def _fmt_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


async def export(
    settings: Settings, *, fmt: str, status: str | None, output: str | None, force: bool
) -> int:
    if output is not None and os.path.exists(output) and not force:
        raise UsageError(f"{output} exists; pass --force to replace it")
    ledger = await _open_existing(settings)
    try:
        extra_columns: list[str] = []
        if fmt == "csv":
            keys: dict[str, None] = {}
            async for record in ledger.export_rows(status):
                keys.update(dict.fromkeys(record["extra"]))
            extra_columns = list(keys)
        with _writer(output) as out:
            if fmt == "csv":
                out.write(export_header(extra_columns) + "\n")
            async for record in ledger.export_rows(status):
                out.write(export_line(record, fmt, extra_columns) + "\n")
    finally:
        await ledger.close()
    return Exit.OK


@contextlib.contextmanager
def _writer(output: str | None) -> Iterator[TextIO]:
    """stdout, or a file written beside its target and renamed into place when complete."""
    if output is None:
        yield sys.stdout
        return
    target = Path(output)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


async def db(settings: Settings, action: str) -> int:
    if action == "upgrade":
        async with _held(settings.db, wait=False):
            revision = await asyncio.to_thread(upgrade, settings.db)
        print(f"ledger at revision {revision}")
        return Exit.OK
    _require_existing(settings.db)
    at, head = await asyncio.to_thread(migrate.current, settings.db)
    state = "up to date" if at == head else f"`ingest db upgrade` brings it to {head}"
    print(f"ledger at revision {at or '(empty)'}; {state}")
    return Exit.OK
