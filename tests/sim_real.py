"""The simulation's scenarios against the real thing: `python -m tests.sim_flow --real`.

The same pool as `tests/sim_flow.py` (the runner's intended loop, the real Throttle and Breaker), on
a real asyncio loop, posting real multipart uploads with `pipeline.transport.client.UploadClient` to
an `ingest sandbox` subprocess on loopback, with the sandbox's own fault modes standing in for the
service. Each answer is turned into a Signal from the client's typed error (the runner will get it
from the client itself); refusals are counted from the sandbox's own request log. Takes a few
minutes: the rate-limited catalogue alone takes 40 s or more.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import socket
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from pipeline.content.body import Body
from pipeline.core.errors import PermanentError, TransientError
from pipeline.core.secret import Secret
from pipeline.flow.backoff import RetryPolicy
from pipeline.flow.breaker import Breaker
from pipeline.flow.signals import Signal, signal_of
from pipeline.sandbox.samples import write_wav
from pipeline.sandbox.server import DEMO_KEY, UPLOAD_PATH
from pipeline.transport.client import UploadClient
from pipeline.transport.routes import Routes
from tests.conftest import SandboxServer, start_sandbox, stop_sandbox
from tests.sim_flow import QUICK, Answer, Outcome, Pool, Scenario, ServiceSpec, measure
from tests.sim_rivals import Flow, MainAimd, Ours

RANDOM_FLAGS = (
    "--throttle-rate 0.08 --busy-rate 0.05 --error-rate 0.08 --drop-rate 0.05 --hang-rate 0.03"
)


@dataclasses.dataclass(frozen=True)
class Real:
    scenario: Scenario
    flags: str  # the sandbox's
    open_limit: int | None = None  # --max-in-flight: what it allows depends on the real latency
    timeout: float = 2.0  # the client's
    outage: float | None = None  # None: a live sandbox; else seconds before it starts
    breaker: bool = False
    max_outage: float = 600.0


REAL = {
    "calm": Real(Scenario("no faults, no limit", ServiceSpec()), "--latency 0.01"),
    "random": Real(
        Scenario("random slow-downs, no limit", ServiceSpec()),
        f"--latency 0.01 {RANDOM_FLAGS} --retry-after 1",
    ),
    "rate": Real(
        Scenario("--max-rps 10", ServiceSpec(), files=400, allowed=10.0),
        "--latency 0.01 --max-rps 10",
    ),
    "inflight": Real(
        Scenario("--max-in-flight 4 (1041)", ServiceSpec(), settle=3.0, allowed=20.0),
        "--latency 0.2 --max-in-flight 4",
        open_limit=4,
    ),
    "inflight429": Real(
        Scenario("--max-in-flight 4 --in-flight-answer 429", ServiceSpec(), allowed=20.0),
        "--latency 0.2 --max-in-flight 4 --in-flight-answer 429 --retry-after 1",
        open_limit=4,
    ),
    "dead": Real(
        Scenario("nothing listening; max_outage 20 s", ServiceSpec(), files=600),
        "",
        outage=1e9,
        breaker=True,
        max_outage=20.0,
    ),
    "outage": Real(
        Scenario("the sandbox starts after 15 s", ServiceSpec(), files=300),
        "--latency 0.01",
        outage=15.0,
        breaker=True,
    ),
}


def answer_of(error: BaseException | None, kind: str) -> Answer:
    """What an upload's outcome says, from the client's typed error."""
    if error is None:
        return Answer(Signal.OK, None, "ok")
    if isinstance(error, PermanentError):
        return Answer(Signal.OK, None, "ok")  # answered: the service is up
    assert isinstance(error, TransientError), error
    signal = signal_of(error)
    return Answer(signal, error.retry_after, kind if signal is not Signal.FAILURE else "fault")


def uploader(client: UploadClient, path: Path, kind: str) -> Callable[[], Awaitable[Answer]]:
    async def request() -> Answer:
        try:
            body = Body(size=path.stat().st_size, path=str(path), mtime_ns=path.stat().st_mtime_ns)
            await client.upload(body, purpose="song", filename=path.name, content_type="audio/wav")
        except (TransientError, PermanentError) as exc:
            return answer_of(exc, kind)
        return answer_of(None, kind)

    return request


async def drive(real: Real, url: str, path: Path, make: Callable[[], Flow]) -> Outcome:
    kind = "limit" if real.scenario.allowed else "fault"
    async with aiohttp.ClientSession() as session:
        routes = Routes.direct(session)
        client = UploadClient(routes, url=url, key=Secret(DEMO_KEY), timeout=real.timeout)
        breaker = Breaker(max_outage=real.max_outage) if real.breaker else None
        pool = Pool(
            make(),
            uploader(client, path, kind),
            files=real.scenario.files,
            concurrency=real.scenario.concurrency,
            rng=random.Random(1),
            breaker=breaker,
            policy=QUICK if not real.breaker else RetryPolicy(),
            client_cost=0.0,
        )
        return await pool.run()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_one(real: Real, make: Callable[[], Flow], folder: Path) -> tuple[Outcome, str]:
    path = write_wav(folder / "track.wav", 10.5, rate=2000)
    port = free_port()
    servers: list[SandboxServer] = []
    url = f"http://127.0.0.1:{port}{UPLOAD_PATH}"

    def start() -> None:
        flags = [*real.flags.split(), "--seed", "7", "--port", str(port)]
        servers.append(start_sandbox(folder, *flags))

    async def main() -> Outcome:
        if real.outage is None:
            start()
        elif real.outage < 1e6:  # starting it blocks for a while: not on the loop's thread
            loop = asyncio.get_running_loop()
            loop.call_later(real.outage, loop.run_in_executor, None, start)
        return await drive(real, url, path, make)

    try:
        out = asyncio.run(main())
        served = servers[0].requests() if servers else []
        outcomes = collections.Counter(r["outcome"] for r in served)
    finally:
        for server in servers:
            stop_sandbox(server)
    return out, ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items()))


def main(only: str | None) -> int:
    def clock() -> float:
        return asyncio.get_running_loop().time()

    designs: dict[str, Callable[[], Flow]] = {
        "main AIMD": lambda: MainAimd(16, clock),
        "ours": lambda: Ours(16, clock),
    }
    for key, real in REAL.items():
        if only not in (None, key):
            continue
        print(f"\n## {key} (real sandbox): {real.scenario.name}; flags: {real.flags or '-'}")
        for name, make in designs.items():
            if real.breaker and name != "ours":
                continue
            with tempfile.TemporaryDirectory(prefix="sim-real-") as folder:
                out, served = run_one(real, make, Path(folder))
            print(_line(name, out, real))
            print(f"   sandbox saw: {served or 'nothing'}", flush=True)
            if out.stopped:
                print(f"   stopped: {out.stopped}")
    return 0


def allowed(out: Outcome, real: Real) -> float | None:
    """Accepted requests per second the limit allows: for a limit on open requests, that many
    over the time an accepted request really took (the sandbox's latency plus the upload)."""
    took = [s.took for s in out.sent if s.kind == "ok"]
    if real.open_limit is None or not took:
        return real.scenario.allowed
    return real.open_limit / statistics.mean(took)


def _line(name: str, out: Outcome, real: Real) -> str:
    m = measure(out, real.scenario)
    limit = allowed(out, real)
    share = f"{m.settled_rate / limit:.2f} of {limit:.1f}/s" if limit else "-"
    pace = f"{m.pace:.1f}" if m.pace is not None else "none"
    return (
        f"{name:<10} {out.elapsed:6.1f} s  done {len(out.finished)}  left {out.left}  "
        f"requests {len(out.sent)}  settled {m.settled_rate:.1f}/s ({share} allowed)  "
        f"refused once settled {m.settled_refusals:.1%}  refused in all {m.refusals}  "
        f"pace {pace}  attempts spent {out.attempts_spent}"
    )
