"""One exception tree for the whole pipeline.

    IngestError
    ├── UsageError            bad command line, config or surroundings: exit 2, nothing run
    │   └── ConfigError       a setting that cannot be parsed or is out of range
    ├── LedgerError           the ledger cannot be opened, is not ours, or is newer (exit 2)
    │   └── LedgerHeld        another live run holds the ledger (exit 3)
    ├── EntryError            one entry cannot be uploaded; the run goes on
    │   ├── TransientError    worth retrying: network, timeouts, 408/429/5xx, busy codes; may carry
    │   │                     `retry_after` seconds from the service
    │   └── PermanentError    retrying cannot help: bad file, rejected content, invalid params
    └── RunFatal              nothing more can be uploaded in this run: the key or the account was
        refused (exit 5); entries stay pending for the next run

Errors of the libraries below (aiohttp, sqlite) are translated into these once, at the
boundary that meets them, with `raise ... from exc`.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error this package raises on purpose."""


class UsageError(IngestError):
    """The command line, configuration or surroundings are wrong; nothing was run."""


class ConfigError(UsageError):
    """A setting could not be parsed or is out of range."""


class LedgerError(IngestError):
    """The ledger cannot be used: not a ledger, newer schema, or not writable."""


class LedgerHeld(LedgerError):
    """Another live run holds the ledger."""


class EntryError(IngestError):
    """One entry failed; `reason` is a short, user-facing sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(EntryError):
    """Retrying later may succeed. `retry_after` is the service's own hint, in seconds."""

    def __init__(self, reason: str, *, retry_after: float | None = None, throttled: bool = False):
        super().__init__(reason)
        self.retry_after = retry_after
        # True when the service said "slow down" (429, 1002, 2045): the whole pool backs off.
        self.throttled = throttled


class PermanentError(EntryError):
    """Retrying cannot help; the entry is recorded failed with this reason."""


class RunFatal(IngestError):
    """Stop the run: the key or the account was refused. Entries stay pending."""
