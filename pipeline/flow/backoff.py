"""Retry policy as data plus pure functions: applied with tenacity to downloads (`retrying`), and
by the upload step's own loop (`next_wait`), whose every attempt goes through the throttle and
the circuit breaker and is on the hot path of a run.

Which errors: `TransientError` only (permanent and fatal errors are never retried). How many:
`max_attempts`, the first included. How long: full-jitter exponential backoff
(`random() * min(cap, base * 2**(n-1))`), unless the service sent Retry-After, which wins. The
base depends on what failed, as in the AWS SDKs' standard retry mode (2026): a slow-down (429,
1002, ...) says the service wants less, and waits from `base` (1 s); any other transient fault (a
dropped connection, a timeout, a 5xx) is most likely over at once, and waits from `fault_base`
(50 ms). A service that is down is the circuit breaker's business, not the backoff's. A cap on
the total time one entry waits (`max_total_wait`) stops retrying early, leaving the entry for the
next run. The sleep is injected so tests never really wait.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base

from pipeline.core.errors import TransientError

Sleep = Callable[[float], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base: float = 1.0  # first backoff after a slow-down
    fault_base: float = 0.05  # first backoff after any other transient fault
    cap: float = 60.0
    max_total_wait: float = 600.0


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


def next_wait(
    policy: RetryPolicy,
    attempt: int,
    error: BaseException,
    waited: float,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None to give up: the error is not
    transient, the attempts are spent, or the wait would take the entry past `max_total_wait`.
    The same policy as `retrying`, as one pure function, for the upload path's own loop."""
    if not isinstance(error, TransientError) or attempt >= policy.max_attempts:
        return None
    seconds = backoff(policy, attempt, error, rand)
    return None if waited + seconds > policy.max_total_wait else seconds


class _WaitedTooLong(stop_base):
    """Stop when the next wait would take this entry's total waiting past the cap."""

    def __init__(self, max_total_wait: float) -> None:
        self.max_total_wait = max_total_wait

    def __call__(self, retry_state: RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep or 0.0
        return bool(retry_state.idle_for + upcoming > self.max_total_wait)


def retrying(
    policy: RetryPolicy,
    *,
    sleep: Sleep,
    rand: Callable[[], float] = random.random,
) -> AsyncRetrying:
    """An AsyncRetrying that re-raises the last TransientError when it gives up."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return backoff(policy, state.attempt_number, error, rand)

    return AsyncRetrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_any(
            stop_after_attempt(policy.max_attempts), _WaitedTooLong(policy.max_total_wait)
        ),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )
