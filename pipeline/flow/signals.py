"""What one answered (or failed) request says about the service: the signal that the circuit
breaker, the window and the pace all learn from."""

from __future__ import annotations

import enum

from pipeline.core.errors import TransientError


class Signal(enum.StrEnum):
    """What one answered (or failed) request says about the service."""

    OK = "ok"  # any answer that is not a slow-down: 2xx, 4xx, base_resp errors not below
    RATE = "rate"  # HTTP 429, base_resp 1002, 1039, 2045: too fast
    CONCURRENCY = "concurrency"  # base_resp 1041: too many open requests
    FAILURE = "failure"  # connection refused/reset/dropped, timeout, HTTP 5xx: maybe down


def signal_of(error: BaseException | None) -> Signal:
    """What a request's outcome (None: it succeeded) says about the service. The client has
    already classified the answer: slow-downs carry what to slow, a service that did not answer
    (or answered 5xx) is `unreachable`."""
    if isinstance(error, TransientError):
        if error.slowdown == "rate":
            return Signal.RATE
        if error.slowdown == "concurrency":
            return Signal.CONCURRENCY
        if error.unreachable:
            return Signal.FAILURE
    return Signal.OK  # it answered: a success, a refusal, a bad file, an unknown error code
