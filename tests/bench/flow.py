"""Flow-control rows: ingest against a sandbox that slows it down the ways real services do.

- noisy: 8% of requests answered 429 (Retry-After: 1), 5% `base_resp` 1002, and 16% other
  faults (8% 503, 8% dropped connections), at random: the total time against the same catalogue
  with no faults (goal: within 3x); beside it, for reference, the same with 4% of the requests
  never answered instead of half the drops. A request never answered holds its slot for the
  whole `--timeout`: at 4% of about 850 requests, 3 s each over 16 slots, that alone is about
  6 s, more than 3x a fault-free run, for any client that keeps to `--concurrency`;
- a real limit, `--max-rps 10`: the accepted pace once settled (goal: 0.85 of the limit or more)
  and the share of 429s then (goal: under 5%);
- a limit on requests open at once, 4 with 200 ms latency, `--concurrency 16`: the accepted
  pace once settled against what the limit allows, 4 / 0.2 s = 20 a second (goal: 0.8 or more),
  and the share of refusals (`base_resp` 1041) then (goal: under 5%).

"Settled" is everything after the run's first seconds, from the sandbox's own log of requests.
Every run here caps one backoff at 1 s (`INGEST_BACKOFF_MAX=1`, as the flow tests do): these rows
measure the pace, and with the default cap (60 s) the few files unlucky several times in a row
would set the run's length instead.
A request that is never answered costs the client its `--timeout`; these rows set 3 s (the
default, 60 s, would make one unlucky file the whole run's length, faults or no faults).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tests.bench.context import Context
from tests.bench.harness import REPEATS, Sample, Sandbox, ingest_run, interleaved, median, scaled
from tests.bench.table import Goal, line, section

SLOW_DOWNS = ("--throttle-rate", "0.08", "--retry-after", "1", "--busy-rate", "0.05")
NOISY_FAULTS = (*SLOW_DOWNS, "--error-rate", "0.08", "--drop-rate", "0.08")
HANGING_FAULTS = (*SLOW_DOWNS, "--error-rate", "0.08", "--drop-rate", "0.04", "--hang-rate", "0.04")


def _run(ctx: Context, name: str, sandbox: Sandbox, files: int, *args: str) -> Sample:
    return ingest_run(
        str(ctx.tree(files)), "--db", str(ctx.ledger(name)), "--api-url", sandbox.url, *args,
        sandbox=sandbox, INGEST_BACKOFF_MAX="1",
    )  # fmt: skip


def settled(sandbox: Sandbox, skip: float) -> tuple[list[dict[str, Any]], float]:
    """The requests after the first `skip` seconds, and the seconds they span."""
    requests = sorted(sandbox.requests(), key=lambda r: float(r["ts"]))
    start = float(requests[0]["ts"])
    later = [r for r in requests if float(r["ts"]) - start >= skip]
    return later, float(later[-1]["ts"]) - float(later[0]["ts"])


def _share(requests: Sequence[dict[str, Any]], outcome: str) -> float:
    return sum(1 for r in requests if str(r["outcome"]).startswith(outcome)) / len(requests)


def _accepted_pace(requests: Sequence[dict[str, Any]], span: float) -> float:
    return sum(1 for r in requests if r["outcome"] == "ok") / span


def noisy(ctx: Context) -> list[Goal]:
    files, concurrency = scaled(600, 200), 16
    work = f"{files} files, 10 ms latency, c {concurrency}: 29% slow-downs and faults vs none"
    hung = f"{files} files, the same with 4% of the resets replaced by requests never answered"
    section(work)
    servers = {
        "no faults": Sandbox("--latency", "0.01"),
        "noisy": Sandbox("--latency", "0.01", *NOISY_FAULTS),
        "hangs too": Sandbox("--latency", "0.01", *HANGING_FAULTS),
    }
    args = ("--concurrency", str(concurrency), "--max-attempts", "12", "--timeout", "3")

    def variant(name: str, server: Sandbox) -> Callable[[int], Sample]:
        return lambda _: _run(ctx, name.replace(" ", "-"), server, files, *args)

    try:
        # Two rounds more than the other rows: each run's length is set by its unluckiest file.
        rounds = {n: variant(n, s) for n, s in servers.items()}
        results = interleaved(rounds, repeats=REPEATS + 2, budget=200)
    finally:
        for server in servers.values():
            server.stop()
    calm, rough, hanging = (median(results[name]) for name in servers)
    line(f"no faults {calm:.2f} s, noisy {rough:.2f} s: {rough / calm:.2f}x the time")
    line(f"with requests never answered (--timeout 3): {hanging:.2f} s, {hanging / calm:.2f}x")
    return [
        Goal(
            work, f"{rough:.2f} s", f"no faults {calm:.2f} s", f"{rough / calm:.2f}x the time",
            "<= 3x", rough <= 3 * calm,
        ),
        Goal(
            hung, f"{hanging:.2f} s", f"no faults {calm:.2f} s",
            f"{hanging / calm:.2f}x the time", "(kept for reference)", None,
        ),
    ]  # fmt: skip


def _held_limit(
    ctx: Context,
    work: str,
    sandbox: Sandbox,
    run: tuple[str, ...],
    *,
    files: int,
    skip: float,
    limit: float,
    refusal: str,
    least: float,
) -> list[Goal]:
    """Run against a limited sandbox; the accepted pace after `skip` seconds against `limit`,
    and the share of refusals (`refusal`, the sandbox's outcome) then (goal: under 5%)."""
    section(work)
    try:
        _run(ctx, refusal.split()[-1], sandbox, files, *run, "--max-attempts", "20")
        later, span = settled(sandbox, skip)
    finally:
        sandbox.stop()
    pace, refused = _accepted_pace(later, span) / limit, _share(later, refusal)
    line(f"after the first {skip:g} s: {pace:.2f} of {limit:g}/s accepted, {refused:.1%} refused")
    return [
        Goal(
            work,
            f"{pace * limit:.1f} accepted/s; {refused:.1%} refused",
            f"limit {limit:g}/s",
            f"{pace:.2f} of the limit",
            f">= {least} of the limit, < 5% refused",
            pace >= least and refused < 0.05,
        )
    ]


def rate_limit(ctx: Context) -> list[Goal]:
    files, limit = scaled(400, 150), 10
    return _held_limit(
        ctx,
        f"{files} files, a limit of {limit} requests/s (429 past it), c 8",
        Sandbox("--max-rps", str(limit), "--retry-after", "1"),
        ("--concurrency", "8"),
        files=files,
        skip=4.0,
        limit=limit,
        refusal="http 429",
        least=0.85,
    )


def in_flight_limit(ctx: Context) -> list[Goal]:
    files, allowed, latency = scaled(500, 200), 4, 0.2
    return _held_limit(
        ctx,
        f"{files} files, {allowed} open allowed (1041 past it), 200 ms latency, c 16",
        Sandbox("--max-in-flight", str(allowed), "--latency", str(latency)),
        ("--concurrency", "16"),
        files=files,
        skip=2.0,
        limit=allowed / latency,
        refusal="base_resp 1041",
        least=0.8,
    )
