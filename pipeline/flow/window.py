"""The window: how many requests the pool keeps open at once, learnt from the service's refusals.

The user's `--concurrency` is the ceiling; the window starts there. A CONCURRENCY refusal (base_resp
1041, "connection limit") for a request that was sent with `k` requests open (itself included)
says the service allows fewer than `k`: the window becomes `k - 1`. That is a measurement, not a
guess. Refusals do not stack: a refusal for a request sent under a larger window than the
current one has been answered already by the shrink, and changes nothing. A random, isolated
refusal (a shared key) costs the slots above `k - 1`, which the next rounds regain.

    refused (k, sent under a window of w <= size)  ->  size = k - 1;
                                                      w is tried again only after `gap`
    OK with the window full for a round (`size` answers)  ->  size + 1
        (but not to the size last refused before its gap has passed)
    refused again under the same w  ->  the gap doubles (up to `max_gap`), so a limit that
                                        holds costs one refusal per gap, fewer as the run goes on

A limit on open requests answered with a plain slow-down (HTTP 429) is told from a rate limit
or random slow-downs by where the slow-downs fall: per epoch of the pace, the answers are counted
by the number of requests open when each was sent. When nearly all were accepted up to some count
`K` and most were refused above it, the service allows `K`, and that is treated as a refusal at
`K + 1`. Random slow-downs fall at every count alike, and so do a rate limit's. Once such a limit
is learnt, a slow-down for a request sent with `K` or more open is a refusal like a 1041 (at `K`,
another request overtook it), and `K` follows the window up as larger sizes hold. Those
slow-downs are then the window's alone: the pace (`throttle.py`) does not learn from them.

Requests overtake each other on the way, so the refused one may have been sent with `k` at the
limit rather than above it: the window then lands one below the limit and regains it within a
round, since the gap holds back only the size that was actually tried.

Like TCP's congestion window, it grows by one per round while it is what limits the pool, and
shrinks on a congestion signal; unlike TCP it shrinks to what the refusal measured rather than
by half. Everything here is a pure function of a frozen `Window` value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class WindowPolicy:
    first_gap: float = 2.0  # seconds before a size that was refused is tried again
    max_gap: float = 60.0  # the longest such wait, after repeated refusals at the same size
    clean: float = 0.05  # slow-down share tolerated below an in-flight limit told from 429s
    refused: float = 0.5  # slow-down share needed above it


@dataclasses.dataclass(frozen=True)
class Window:
    size: int  # requests that may be open at once
    ceiling: int  # the user's --concurrency: never more
    refused_at: int = 0  # the window under which the last refusal was sent (0: none yet)
    gap: float = 0.0  # current wait before `refused_at` is tried again
    retry_at: float = 0.0  # clock time from which `refused_at` may be tried again
    oks: int = 0  # answers with the window full since it last changed
    learnt: int = 0  # an in-flight limit told from slow-downs (0: none): see limit_of()

    @classmethod
    def start(cls, ceiling: int) -> Window:
        return cls(size=ceiling, ceiling=ceiling)


WINDOW_POLICY = WindowPolicy()


def refused(
    policy: WindowPolicy, window: Window, sent_with: int, sent_under: int, now: float
) -> Window:
    """The service refused a request sent with `sent_with` requests open (itself included)
    while the window was `sent_under`: it allows fewer."""
    if sent_under > window.size:
        return window  # sent before the window shrank: already accounted for
    again = sent_under == window.refused_at
    gap = min(policy.max_gap, window.gap * 2) if again else policy.first_gap
    return dataclasses.replace(
        window,
        size=max(1, min(window.size, sent_with) - 1),
        refused_at=sent_under,
        gap=gap,
        retry_at=now + gap,
        oks=0,
    )


def answered(window: Window, in_flight: int, now: float) -> Window:
    """A request the service accepted; `in_flight` counts it. Grows after a full round."""
    if window.size >= window.ceiling or in_flight < window.size:
        return window  # the window is not what limits the pool: growing it proves nothing
    if window.oks + 1 < window.size:
        return dataclasses.replace(window, oks=window.oks + 1)
    if window.size + 1 >= window.refused_at > 0 and now < window.retry_at:
        return window  # the size last refused: not before its gap has passed
    learnt = max(window.learnt, window.size) if window.learnt else 0
    return dataclasses.replace(window, size=window.size + 1, oks=0, learnt=learnt)


def is_refusal(window: Window, slowed: bool, concurrency: bool, sent_with: int) -> bool:
    """Whether an answer refuses the window: a 1041, or a slow-down for a request sent with at
    least the learnt limit open (at it: another request overtook it on the way)."""
    return concurrency or (slowed and 0 < window.learnt <= sent_with)


def learn_limit(policy: WindowPolicy, window: Window, limit: int, now: float) -> Window:
    """An in-flight limit told from where slow-downs fall (`limit_of`)."""
    shrunk = refused(policy, window, limit + 1, window.size, now)
    return dataclasses.replace(shrunk, learnt=limit)


def limit_of(policy: WindowPolicy, profile: Mapping[int, tuple[int, int]]) -> int | None:
    """The largest count `K` of open requests up to which (almost) every request was accepted
    and above which most were slowed down; None when the slow-downs do not fall that way.
    `profile` maps requests open at send (itself included) to (answers, slow-downs)."""
    answers = sum(a for a, _ in profile.values())
    slow = sum(s for _, s in profile.values())
    below_answers = below_slow = 0
    found = None
    for k in sorted(profile):
        below_answers += profile[k][0]
        below_slow += profile[k][1]
        above_answers, above_slow = answers - below_answers, slow - below_slow
        if (
            above_slow >= 2
            and above_slow >= policy.refused * above_answers
            and below_slow <= policy.clean * below_answers
        ):
            found = k
    return found
