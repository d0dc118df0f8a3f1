"""`ingest run`: check the sources, hold the ledger, wire the steps into the runner, report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shlex
import signal
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.config import KEY_ENV, Convert, Settings
from pipeline.core.entry import Entry
from pipeline.core.errors import (
    LedgerUnreachable,
    LedgerWriteError,
    NeverReached,
    RunFatal,
    StoreUnreachable,
)
from pipeline.core.exits import RUN_STATUS, Exit, run_exit
from pipeline.core.names import shown
from pipeline.core.secret import Secret, hide_credentials, public_url
from pipeline.core.states import RunStatus, StopReason
from pipeline.core.stop import Stop
from pipeline.flow.backoff import RetryPolicy, Sleep
from pipeline.flow.breaker import Breaker
from pipeline.flow.throttle import Throttle
from pipeline.ledger import Location, open_ledger
from pipeline.ledger.dry import DryWriter
from pipeline.ledger.files import check_file
from pipeline.ledger.location import parse_location
from pipeline.ledger.lock import held
from pipeline.ledger.repository import RunLedger
from pipeline.ledger.unchanged import UnchangedFiles
from pipeline.ledger.writer import Writer
from pipeline.output import logs, progress
from pipeline.output.summary import render_summary
from pipeline.run import heap
from pipeline.run.convert import Converter
from pipeline.run.fleet import Fleet
from pipeline.run.plan import Policy
from pipeline.run.prepare import Preparer
from pipeline.run.runner import Runner
from pipeline.run.tally import Tally
from pipeline.run.upload import DrySender, Sender
from pipeline.sources import Source, check_sources, iter_batches
from pipeline.sources.census import Census, take_census
from pipeline.transport.proxies import Proxies, mask
from pipeline.transport.s3 import Downloads, S3Fetcher, S3Store
from pipeline.transport.session import Http, open_http, upload_proxy

if TYPE_CHECKING:
    from pipeline.output.metrics import MetricsFile

log = logging.getLogger("pipeline")


async def run(
    settings: Settings,
    raw_sources: Sequence[str],
    manifests: Sequence[str],
    *,
    argv: Sequence[str],
    tls: Awaitable[ssl.SSLContext],
) -> int:
    """Run `ingest run` to its exit code. `tls` is the TLS context of `settings.trusted_cas`,
    being read beside the start-up (`pipeline.cli`); a CA file that cannot be read is
    reported here, after the sources are checked."""
    roots = check_sources(raw_sources, manifests, encoding=settings.manifest_encoding)
    display = _progress_wanted(settings)
    level = settings.log_level or ("warning" if display else "info")
    logs.configure(level, settings.log_format, _secrets(settings))
    _warn_short_key(settings)
    # A CA file that cannot be read, or a proxy that cannot be used, stops it before it starts.
    context = await tls
    proxies = Proxies(settings.proxy_environ, settings.proxy)
    if not settings.dry_run:
        upload_proxy(proxies, settings.api_url)
    location = settings.db
    async with contextlib.AsyncExitStack() as stack:
        if settings.dry_run:
            location = _dry_run_location(location, stack)  # reads only: no lock needed
        else:
            check_file(location)  # before the lock: no lock file beside a file that is not ours
            await stack.enter_async_context(held(location, wait=settings.wait))
        ledger = await open_ledger(location, check=False)
        stack.push_async_callback(ledger.close)
        if not settings.dry_run:
            crashed = await ledger.close_abandoned_runs()
            if crashed:
                log.info("%d earlier run(s) ended without finishing; resuming their work", crashed)
        network = (proxies, context)
        return await _run_with_ledger(
            settings, roots, ledger, argv=argv, display=display, network=network
        )


def _secrets(settings: Settings) -> list[Secret]:
    """What the log filter masks: the key, the ledger's password, the proxies' passwords."""
    found = [] if settings.api_key is None else [settings.api_key]
    passwords = [settings.db.password]
    for proxy in (settings.proxy, *settings.proxy_environ.values()):
        passwords.append(_password(proxy) if proxy else None)
    return found + [Secret(str(p)) for p in passwords if p] + settings.aws.secrets()


def _password(url: str) -> str | None:
    """The password in a proxy URL (`[scheme://]user:password@host:port`), if any."""
    userinfo = url.rpartition("@")[0]
    return userinfo.split("://", 1)[-1].partition(":")[2] or None


def _say_network(settings: Settings, proxies: Proxies) -> None:
    """Once the run has started: which CAs it trusts, which proxy its uploads take."""
    cafile, origin = settings.trusted_cas
    if cafile is not None:
        log.info("trusting only the certificate authorities in %s (%s)", cafile, origin)
    proxy = proxies.for_url(settings.api_url)
    if proxy is not None:
        log.info("uploads go through the proxy %s", mask(proxy))


def _warn_short_key(settings: Settings) -> None:
    key = settings.api_key
    if key is not None and len(key.reveal()) < logs.SHORTEST_REAL_KEY:
        log.warning(
            "the API key is only %d characters long; a real key is longer: check %s",
            len(key.reveal()),
            KEY_ENV,
        )


def _dry_run_location(
    location: Location, stack: contextlib.ExitStack | contextlib.AsyncExitStack
) -> Location:
    """A dry run reads the real ledger if there is one, else an empty throwaway one: it never
    creates or changes the real one."""
    path = location.path
    if path is None or path.exists():
        return location
    folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="ingest-dry-"))
    return parse_location(f"{folder}/dry-run.db")


@dataclasses.dataclass(frozen=True)
class _Parts:
    """A run, wired: what drives it, and what the end of it reports on."""

    runner: Runner
    sender: Sender | DrySender
    writer: Writer | None  # None in a dry run
    fleet: Fleet | None
    metrics: MetricsFile | None
    halt: _Halt
    converter: Converter | None  # None with --convert never


@dataclasses.dataclass
class _Halt:
    """A source that cannot be read any more (a bucket missing, credentials refused, a store
    out of reach): the run stops taking work, and this is its last line."""

    stop: Stop
    error: RunFatal | StoreUnreachable | None = None

    def __call__(self, error: RunFatal | StoreUnreachable) -> None:
        if self.error is None:
            self.error = error
            log.debug("stopping: %s", error)
        fatal = isinstance(error, RunFatal)
        self.stop.request(StopReason.FATAL if fatal else StopReason.OUTAGE)

    async def guard(self, batches: AsyncIterator[list[Entry]]) -> AsyncIterator[list[Entry]]:
        """`batches` until a source fails as a whole."""
        try:
            async for batch in batches:
                yield batch
        except (RunFatal, StoreUnreachable) as exc:
            self(exc)


async def _run_with_ledger(
    settings: Settings,
    roots: Sequence[Source],
    ledger: RunLedger,
    *,
    argv: Sequence[str],
    display: bool,
    network: tuple[Proxies, ssl.SSLContext],
) -> int:
    started = time.monotonic()
    tally, stop = Tally(), Stop()
    run_id = 0
    if not settings.dry_run:
        # A --db or --proxy URL on the command line may carry a password: never kept.
        command = hide_credentials(shown(shlex.join(["ingest", *argv])))
        host, pid = socket.gethostname(), os.getpid()
        run_id = await ledger.start_run(pid=pid, host=host, command=command, lease=settings.lease)

    def figures() -> dict[str, Any]:
        return tally.as_dict(time.monotonic() - started)

    async with contextlib.AsyncExitStack() as stack:
        _say_network(settings, network[0])
        http = await stack.enter_async_context(
            open_http(
                concurrency=settings.concurrency,
                timeout=settings.timeout,
                proxies=network[0],
                tls=network[1],
            )
        )
        store = _store(settings, stop, network[0])  # its client is made if a bucket is met
        stack.push_async_callback(store.close)
        unchanged = _unchanged(settings, ledger, tally)
        if unchanged is not None:
            stack.callback(unchanged.close)
        parts = _assemble(
            settings, ledger, run_id, (http, store), roots, tally, stop, figures, unchanged
        )
        if parts.converter is not None:
            stack.callback(parts.converter.close)  # its WAVs go, whatever ends the run
        if parts.writer is not None:
            await stack.enter_async_context(parts.writer.running())
        if parts.fleet is not None:
            await stack.enter_async_context(parts.fleet.beating())
        await stack.enter_async_context(heap.trimming())
        converter = parts.converter
        with (
            _signals(stop, converter.remove_files if converter else None),
            _deadline(settings, stop),
        ):
            async with (
                _census(settings, roots, display, store) as census,
                progress.show(tally, enabled=display, census=census),
            ):
                await parts.runner.run()
    writer = parts.writer
    code = run_exit(
        stop.reasons,
        finished=parts.runner.finished,
        failed=tally.failed_total,
        left=tally.left_total,
        ledger=None if writer is None or writer.failure is None else writer.failure.exit_code,
    )
    if writer is not None and writer.failure is None:
        await _finish(ledger, run_id, code, figures())
    if parts.metrics is not None:
        parts.metrics.write(figures(), exit_code=int(code))
    status = RUN_STATUS.get(code, RunStatus.FINISHED)
    elapsed = time.monotonic() - started
    print(render_summary(tally, elapsed=elapsed, outcome=status, dry_run=settings.dry_run))
    _say_why(settings, parts, tally)  # last: the line a person (or cron) sees
    return int(code)


def _metrics(settings: Settings, ledger: RunLedger) -> MetricsFile | None:
    if settings.metrics_file is None or settings.dry_run:
        return None
    from pipeline.output.metrics import MetricsFile  # prometheus_client: only when asked for

    return MetricsFile(settings.metrics_file, ledger=ledger.location.shown)


def _unchanged(settings: Settings, ledger: RunLedger, tally: Tally) -> UnchangedFiles | None:
    """On an SQLite file, the crawl leaves out done, unchanged files itself (one query a
    listing); a shared ledger is asked the usual way (a fleet's claims need every entry)."""
    path = ledger.location.path
    if path is None or ledger.dialect != "sqlite":
        return None
    min_age_ns = None if settings.min_age is None else int(settings.min_age * 1e9)
    return UnchangedFiles(path, min_age_ns=min_age_ns, on_skipped=tally.count_unchanged)


def _writer_for(settings: Settings, ledger: RunLedger, run_id: int, stop: Stop) -> Writer:
    def stop_on(failure: LedgerWriteError) -> None:
        gone = isinstance(failure, LedgerUnreachable)
        stop.request(StopReason.LEDGER_GONE if gone else StopReason.LEDGER)

    shared = ledger.dialect == "postgresql"  # many runs may share it: claims with leases
    return Writer.for_ledger(
        ledger,
        run_id,
        patience=settings.max_outage,
        on_failure=stop_on,
        lease=settings.lease if shared else None,
    )


def _assemble(
    settings: Settings,
    ledger: RunLedger,
    run_id: int,
    transport: tuple[Http, S3Store],
    roots: Sequence[Source],
    tally: Tally,
    stop: Stop,
    figures: Callable[[], dict[str, Any]],
    unchanged: UnchangedFiles | None = None,
) -> _Parts:
    """Every step of the run built whole, each given what it needs. A dry run gets a writer
    that records nothing and a sender that sends nothing, and no fleet."""
    http, store = transport
    halt = _Halt(stop)
    throttle = Throttle(rate=settings.rate, max_in_flight=settings.concurrency)
    writer = None if settings.dry_run else _writer_for(settings, ledger, run_id, stop)
    recorder = DryWriter(ledger) if writer is None else writer
    sender: Sender | DrySender = DrySender(tally)
    if writer is not None and settings.api_key is not None:
        sender = Sender(
            uploader=http.uploader(url=settings.api_url, key=settings.api_key),
            writer=writer,
            throttle=throttle,
            breaker=Breaker(max_outage=settings.max_outage, max_unreached=settings.max_unreached),
            policy=policy_from(settings),
            stop=stop,
            tally=tally,
        )
    converter = None
    if settings.convert is Convert.AUTO:
        converter = Converter(
            max_held=settings.concurrency * 2,  # decoded WAVs on disk at once
            timeout=settings.decode_timeout,
            stopping=stop.event,
        )
    preparer = Preparer(
        ledger=ledger,
        converter=converter,
        writer=recorder,
        fetcher=_fetcher(settings, http, store, stop),
        tally=tally,
        policy=Policy(
            retry_failed=settings.retry_failed,
            min_age_ns=None if settings.min_age is None else int(settings.min_age * 1e9),
        ),
        patience=settings.max_outage,
        on_fatal=halt,
    )
    batches = iter_batches(
        roots,
        purpose=settings.purpose,
        stats=tally.crawl,
        encoding=settings.manifest_encoding,
        lister=store,
        unchanged=unchanged,
    )
    metrics = _metrics(settings, ledger)
    fleet = None
    if writer is not None:
        fleet = Fleet(
            writer=writer,
            lease=settings.lease,
            rate=settings.rate,
            throttle=throttle,
            figures=figures,
            on_beat=metrics.write if metrics is not None else None,
        )
        origins = [root.origin for root in roots]
        batches = _chain(batches, fleet.leftovers(origins, stop))
    runner = Runner(
        batches=halt.guard(batches),
        preparer=preparer,
        sender=sender,
        stop=stop,
        concurrency=settings.concurrency,
        grace=settings.grace,
        on_sources_done=tally.mark_sources_done,
    )
    return _Parts(runner, sender, writer, fleet, metrics, halt, converter)


async def _chain(*parts: AsyncIterator[list[Entry]]) -> AsyncIterator[list[Entry]]:
    for part in parts:
        async for batch in part:
            yield batch


def _say_why(settings: Settings, parts: _Parts, tally: Tally) -> None:
    sender, writer = parts.sender, parts.writer
    if parts.halt.error is not None:
        print(f"ingest: {parts.halt.error} (entries stay pending)", file=sys.stderr)
    if sender.fatal is not None:
        print(f"ingest: {sender.fatal} (entries stay pending)", file=sys.stderr)
    never = sender.never_reached
    if isinstance(sender.outage, NeverReached) or (never is not None and tally.left_total):
        print(
            f"ingest: cannot reach {public_url(settings.api_url)}: {never}; check --api-url",
            file=sys.stderr,
        )
    elif sender.outage is not None:
        left = tally.seen - tally.processed
        more = "" if tally.sources_done else ", and the sources not yet read"
        print(
            f"ingest: {sender.outage}; stopped taking work: {left:,} entries seen{more} are "
            "left for the next run",
            file=sys.stderr,
        )
    if writer is not None and writer.failure is not None:
        fix = "free space (or fix the ledger's folder)" if writer.watching else "fix it"
        print(
            f"ingest: {writer.failure}; the run stopped. What was recorded before is kept: "
            f"{fix} and run again to resume",
            file=sys.stderr,
        )


async def _finish(ledger: RunLedger, run_id: int, code: Exit, summary: dict[str, Any]) -> None:
    """Record how the run ended; a ledger that cannot be written any more is reported, once."""
    try:
        await ledger.finish_run(
            run_id,
            status=RUN_STATUS.get(code, RunStatus.FINISHED),
            exit_code=int(code),
            summary=summary,
        )
    except LedgerWriteError as exc:
        log.warning("could not record how the run ended: %s", exc)


@contextlib.asynccontextmanager
async def _census(
    settings: Settings, roots: Sequence[Source], display: bool, store: S3Store
) -> AsyncIterator[Census | None]:
    """Count the sources ahead of the run, for the live display's total and ETA."""
    if not display:
        yield None
        return
    census = Census()
    task = asyncio.create_task(
        take_census(roots, census, encoding=settings.manifest_encoding, lister=store)
    )
    try:
        yield census
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _progress_wanted(settings: Settings) -> bool:
    if settings.progress == "auto":
        return sys.stderr.isatty() and settings.log_format == "text"
    return settings.progress == "always"


def policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base=settings.backoff_base,
        fault_base=settings.fault_backoff_base,
        cap=settings.backoff_max,
        max_total_wait=settings.max_backoff,
    )


def _napper(stop: Stop) -> Sleep:
    async def sleep(seconds: float) -> None:
        await stop.nap(seconds)  # backoff between download attempts ends with the run

    return sleep


def _store(settings: Settings, stop: Stop, proxies: Proxies) -> S3Store:
    """The buckets' store: the same proxies (chosen for its endpoint) and CAs as the API's."""
    return S3Store(
        settings.aws,
        timeout=settings.timeout,
        max_connections=settings.concurrency * 2 + 4,  # as the HTTP session's pool
        policy=policy_from(settings),
        sleep=_napper(stop),
        proxies=proxies,
        ca_file=settings.trusted_cas[0],
    )


def _fetcher(settings: Settings, http: Http, store: S3Store, stop: Stop) -> Downloads:
    policy, sleep = policy_from(settings), _napper(stop)
    return Downloads(
        http.fetcher(max_size=settings.max_file_size, policy=policy, sleep=sleep),
        S3Fetcher(store, max_size=settings.max_file_size, policy=policy, sleep=sleep),
        max_held=settings.concurrency * 4,  # downloads on disk at once, of both kinds
    )


@contextlib.contextmanager
def _signals(stop: Stop, on_abort: Callable[[], None] | None = None) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop taking work, let in-flight uploads finish. Second: abort
    (`on_abort` first: the decoded WAVs are removed)."""
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.reason in (StopReason.SIGINT, StopReason.SIGTERM):
            print(f"ingest: second {name}: aborting now", file=sys.stderr)
            if on_abort is not None:
                on_abort()
            os._exit(Exit.SIGINT if signum == signal.SIGINT else Exit.SIGTERM)
        print(
            f"ingest: {name}: finishing uploads in flight (send it again to abort)", file=sys.stderr
        )
        stop.request(StopReason(name))

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
    handle = asyncio.get_running_loop().call_later(
        settings.max_duration, stop.request, StopReason.DEADLINE
    )
    try:
        yield
    finally:
        handle.cancel()
