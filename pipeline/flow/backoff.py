"""The one retry policy: which errors, how many attempts, how long between them and in all.

A policy is data (`RetryPolicy`) plus two pure functions: `backoff` (how long to wait after a
failed attempt) and `gives_up` (whether to stop). tenacity applies them where the retries run in
one task (`retrying`: downloads, and the ledger waiting out a database that restarts); the upload
step, whose waits happen outside any task (a parked job), asks `next_wait` after each attempt.

How long: full-jitter exponential backoff (`random() * min(cap, base * 2**(n-1))`), unless the
service sent Retry-After, which wins. The base depends on what failed, as in the AWS SDKs'
standard retry mode (2026): a slow-down (429, 1002, ...) says the service wants less, and waits
from `base` (1 s); any other transient fault (a dropped connection, a timeout, a 5xx) is most
likely over at once, and waits from `fault_base` (50 ms). A service that is down is the circuit
breaker's business, not the backoff's. When to stop: after `max_attempts` (the first included;
None for no limit), or when the next wait would take the waiting past `max_total_wait`, or once
`max_elapsed` seconds have passed since the first attempt. The sleep is injected so tests never
really wait.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from tenacity.stop import stop_base

from pipeline.core.errors import TransientError

Sleep = Callable[[float], Awaitable[None]]
RetryOn = Callable[[BaseException], bool]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int | None = 6  # the first included; None: as many as the time allows
    base: float = 1.0  # first backoff after a slow-down
    fault_base: float = 0.05  # first backoff after any other transient fault
    cap: float = 60.0  # longest single wait
    max_total_wait: float = 600.0  # waiting, summed over the attempts
    max_elapsed: float | None = None  # since the first attempt began, attempts included


def patience(seconds: float) -> RetryPolicy:
    """Waiting out a database that restarts or is briefly out of reach: no limit on attempts,
    from 50 ms up to 5 s apart, for `seconds` in all."""
    return RetryPolicy(
        max_attempts=None, base=0.05, fault_base=0.05, cap=5.0, max_total_wait=seconds,
        max_elapsed=seconds,
    )  # fmt: skip


def transient(error: BaseException) -> bool:
    """What uploads and downloads retry: a `TransientError`, never a permanent or fatal one."""
    return isinstance(error, TransientError)


def backoff(
    policy: RetryPolicy,
    attempt: int,
    error: BaseException | None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    if isinstance(error, TransientError) and error.retry_after is not None:
        return float(error.retry_after)
    fault = isinstance(error, TransientError) and error.slowdown is None
    base = policy.fault_base if fault else policy.base
    return float(rand() * min(policy.cap, base * 2 ** (attempt - 1)))


def gives_up(
    policy: RetryPolicy, attempt: int, *, waited: float, upcoming: float, elapsed: float
) -> bool:
    """Whether to stop after attempt `attempt`, having waited `waited` seconds so far, with the
    next wait `upcoming` seconds long and `elapsed` seconds since the first attempt began."""
    if policy.max_attempts is not None and attempt >= policy.max_attempts:
        return True
    if waited + upcoming > policy.max_total_wait:
        return True
    return policy.max_elapsed is not None and elapsed > policy.max_elapsed


def next_wait(
    policy: RetryPolicy,
    attempt: int,
    error: BaseException,
    waited: float,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None to give up: the error is not
    transient, or `gives_up` says so. For the upload step, whose waits are parked outside tasks."""
    if not transient(error):
        return None
    seconds = backoff(policy, attempt, error, rand)
    if gives_up(policy, attempt, waited=waited, upcoming=seconds, elapsed=0.0):
        return None
    return seconds


class _GivesUp(stop_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, state: RetryCallState) -> bool:
        return gives_up(
            self.policy,
            state.attempt_number,
            waited=state.idle_for,
            upcoming=state.upcoming_sleep or 0.0,
            elapsed=state.seconds_since_start or 0.0,
        )


def retrying(
    policy: RetryPolicy,
    *,
    sleep: Sleep,
    retry_on: RetryOn = transient,
    before_sleep: Callable[[BaseException, int, float], None] | None = None,
    rand: Callable[[], float] = random.random,
) -> AsyncRetrying:
    """An AsyncRetrying under `policy` that re-raises the last error when it gives up.
    `before_sleep(error, attempt, seconds)` is told of each wait, for a log line."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return backoff(policy, state.attempt_number, error, rand)

    def tell(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if before_sleep is not None and error is not None:
            before_sleep(error, state.attempt_number, state.upcoming_sleep or 0.0)

    return AsyncRetrying(
        retry=retry_if_exception(retry_on),
        stop=_GivesUp(policy),
        wait=wait,
        sleep=sleep,
        before_sleep=tell,
        reraise=True,
    )
