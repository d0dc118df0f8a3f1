"""One exception tree for the whole pipeline.

    IngestError
    ├── UsageError            bad command line, config or surroundings: exit 2, nothing run
    │   └── ConfigError       a setting that cannot be parsed or is out of range
    ├── LedgerError           the ledger cannot be opened, is not ours, or is newer (exit 2)
    │   ├── LedgerHeld        another live run holds the ledger (exit 3)
    │   └── LedgerWriteError  the ledger cannot be written any more: disk full, read-only (exit 7)
    │       └── LedgerUnreachable  the ledger's server stayed out of reach too long (exit 6)
    ├── EntryError            one entry cannot be uploaded; the run goes on
    │   ├── TransientError    worth retrying: network, timeouts, 408/429/5xx, busy codes; may carry
    │   │                     `retry_after` seconds from the service
    │   ├── PermanentError    retrying cannot help: bad file, rejected content, invalid params
    │   └── SourceChanged     the file changed while it was read or sent: left for the next run
    ├── RunFatal              nothing more can be uploaded in this run: the key or the account was
    │                         refused, or a bucket is missing or refuses our credentials (exit 5);
    │                         entries stay pending for the next run
    ├── ServiceDown           the service stayed unreachable past --max-outage: stop taking work
    │   │                     (exit 6); entries stay pending
    │   └── NeverReached      no request of this run ever reached the service (refused, a name
    │                         that does not resolve, TLS) for --max-unreached: a wrong URL
    ├── StoreUnreachable      an object store's listing kept failing (connection, 5xx) past the
    │                         retries: stop taking work (exit 6); a rerun should help
    └── Stopped               the run stopped before a step finished (the step was cancelled);
                              what it was doing stays pending

Errors of the libraries below (aiohttp, botocore, sqlite, asyncpg) are translated into these
once, at the boundary that meets them, with `raise ... from exc`. An error that ends a command
carries the exit code it ends with (`exit_code`, see `pipeline.core.exits`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pipeline.core.exits import Exit
from pipeline.core.times import local_time


class IngestError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code: ClassVar[Exit] = Exit.USAGE


class UsageError(IngestError):
    """The command line, configuration or surroundings are wrong; nothing was run."""


class ConfigError(UsageError):
    """A setting could not be parsed or is out of range."""


class LedgerError(IngestError):
    """The ledger cannot be used: not a ledger, newer schema, or not writable."""


class LedgerHeld(LedgerError):
    """Another live run holds the ledger."""

    exit_code = Exit.HELD


class LedgerWriteError(LedgerError):
    """The ledger could not be written (the database's or the system's reason in the message).
    What was committed before stays; the run stops."""

    exit_code = Exit.LEDGER


class LedgerUnreachable(LedgerWriteError):
    """The ledger's database server stayed out of reach (restarting, network down) for longer
    than the run waits for it. What was committed stays; a rerun resumes."""

    exit_code = Exit.TRANSIENT


class EntryError(IngestError):
    """One entry failed; `reason` is a short, user-facing sentence. `trace_id` is the service's
    id for the request that failed, when it sent one: support asks for it."""

    def __init__(self, reason: str, *, trace_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.trace_id = trace_id


# What a "slow down" answer says is too much: the pace of requests, or how many are open at once.
Slowdown = Literal["rate", "concurrency"]


class TransientError(EntryError):
    """Retrying later may succeed. `retry_after` is the service's own hint, in seconds;
    `slowdown` is set when the service asked us to slow down (429, 1002, 1041, ...);
    `unreachable` when it did not answer at all, or answered 5xx (the service may be down);
    `connect_failed` says, in a few words, why no connection to it could be made at all
    (`connection refused`, `name does not resolve`): the request never reached it."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        slowdown: Slowdown | None = None,
        unreachable: bool = False,
        connect_failed: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(reason, trace_id=trace_id)
        self.retry_after = retry_after
        self.slowdown = slowdown
        self.unreachable = unreachable or connect_failed is not None
        self.connect_failed = connect_failed


class PermanentError(EntryError):
    """Retrying cannot help; the entry is recorded failed with this reason."""


class SourceChanged(EntryError):
    """The file is not the one that was hashed any more (still being written, replaced). Nothing
    was sent; the entry is left for the next run, which hashes it again."""


class RunFatal(IngestError):
    """Stop the run: the key or the account was refused, or a bucket is missing or refuses our
    credentials. Entries stay pending."""

    exit_code = Exit.REFUSED


class StoreUnreachable(IngestError):
    """An object store could not be listed, after retries: stop taking work (exit 6)."""

    exit_code = Exit.TRANSIENT


class ServiceDown(IngestError):
    """The service has been unreachable for longer than `max_outage`: stop taking work (exit 6)."""

    exit_code = Exit.TRANSIENT

    def __init__(self, since: float, outage: float) -> None:
        super().__init__(
            f"the service has been unreachable since {local_time(since)} ({outage:.0f} s)"
        )
        self.since = since  # wall-clock epoch seconds of the first failure of the outage
        self.outage = outage


class NeverReached(ServiceDown):
    """No request of this run has reached the service, for `outage` seconds: every one failed
    to connect (`cause`, e.g. `connection refused`). Most likely a wrong URL, a name that does
    not resolve, or a proxy or firewall in the way: stop taking work (exit 6)."""

    def __init__(self, since: float, outage: float, cause: str) -> None:
        super().__init__(since, outage)
        self.args = (f"no request reached the service in {outage:.0f} s: {cause}",)
        self.cause = cause


class Stopped(IngestError):
    """The run stopped before a step finished (the step was cancelled)."""
