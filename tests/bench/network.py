"""Network rows: the same run through a real proxy, and over HTTPS, beside the plain one.

- proxy: small files, 10 ms latency, `--concurrency 16`, straight to the sandbox and through
  tinyproxy on loopback (`http_proxy`), interleaved. Plain HTTP through a proxy goes as
  absolute-URI requests on connections that are never reused (tinyproxy closes each one after
  its answer), so this is the costly case; HTTPS through the same proxy (CONNECT tunnels, kept
  open like any pooled connection: the service's own case) beside it. Goal, for each: >= 0.8 of
  the direct run's speed. The proxy's own log must hold every request; the CPU that ingest, the
  sandbox and tinyproxy spent is shown, as the machine has two cores for the three of them, and
  `xargs -P 16 curl` posting the same files direct and through the proxy, for what the proxy
  costs a client that makes a connection per request anyway. The same two runs go through
  Squid too (Debian's package, no cache): tinyproxy relays a tunnel through a small buffer, and
  a kept connection's requests stall in it for tens of milliseconds each, as they do for a
  bare aiohttp loop; Squid's tunnels and kept plain-HTTP connections do not.
- https: the same files to a sandbox serving HTTPS (a CA made by trustme, given with
  SSL_CERT_FILE) and to one serving plain HTTP. Goal: >= 0.8 of plain HTTP's speed. TLS
  handshakes are counted as the distinct connections the sandbox saw: with connections reused,
  about one per slot of the pool, not one per file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable

from tests.bench import data
from tests.bench.context import Context
from tests.bench.harness import (
    Sample,
    Sandbox,
    ingest_env,
    ingest_run,
    interleaved,
    measure,
    median,
    scaled,
    summary_count,
)
from tests.bench.references import curl_xargs, tool
from tests.bench.table import Goal, line, section, skipped, speed
from tests.netlab import TlsFiles, make_ca, squid, tinyproxy

CONCURRENCY = 16
LATENCY = "0.01"


def _run(ctx: Context, name: str, sandbox: Sandbox, files: int, **env: str) -> Sample:
    sample = ingest_run(
        str(ctx.tree(files)), "--db", str(ctx.ledger(name)), "--api-url", sandbox.url,
        "--concurrency", str(CONCURRENCY), sandbox=sandbox, **env,
    )  # fmt: skip
    if summary_count(sample, "uploaded") != files:
        raise RuntimeError(f"{name}: uploaded {summary_count(sample, 'uploaded')} of {files}")
    return sample


def _variant(
    ctx: Context, name: str, sandbox: Sandbox, files: int, **env: str
) -> Callable[[int], Sample]:
    return lambda _: _run(ctx, name, sandbox, files, **env)


def _secure(tls: TlsFiles) -> Sandbox:
    """The sandbox over HTTPS, with a certificate from the CA in `tls`."""
    flags = ("--tls-cert", str(tls.cert), "--tls-key", str(tls.key))
    return Sandbox("--latency", LATENCY, *flags, ca=tls.ca)


def proxy_row(ctx: Context) -> list[Goal]:
    files = scaled(2000, 400)
    work = f"{files:,} files, 10 ms latency, c {CONCURRENCY}: through tinyproxy vs direct"
    section(work)
    goal = ">= 0.8 of direct"
    if shutil.which("tinyproxy") is None:
        line("skipped: tinyproxy is not installed")
        return [skipped(work, goal, "tinyproxy is not installed")]
    tls = make_ca(ctx.work / "tls-proxy")
    plain = Sandbox("--latency", LATENCY)
    secure = _secure(tls)
    ca = {"SSL_CERT_FILE": str(tls.ca)}
    proxy_cpu: dict[str, list[float]] = {"http": [], "https": []}
    has_squid = tool("squid") is None
    try:
        with contextlib.ExitStack() as stack, tinyproxy(ctx.work / "tinyproxy") as proxy:

            def proxied(kind: str, **env: str) -> Callable[[int], Sample]:
                def run(_: int) -> Sample:
                    before = proxy.cpu()
                    sample = _run(ctx, kind, plain if kind == "http" else secure, files, **env)
                    proxy_cpu[kind].append(proxy.cpu() - before)
                    return sample

                return run

            listing = data.file_list(ctx.tree(files), ctx.work / "proxy-row.list")
            squid_url = stack.enter_context(squid()) if has_squid else ""
            squid_variants = {
                "squid": _variant(ctx, "squid", plain, files, http_proxy=squid_url),
                "https squid": _variant(ctx, "ssquid", secure, files, https_proxy=squid_url, **ca),
            } if has_squid else {}  # fmt: skip

            def bare(url: str, **env: str) -> Callable[[int], Sample]:
                argv = [sys.executable, "-m", "tests.bench.bare", url, str(CONCURRENCY),
                        str(listing)]  # fmt: skip
                return lambda _: measure(argv, env=ingest_env(**ca, **env), sandbox=secure)

            def curl(**env: str) -> Callable[[int], Sample]:
                environ = {**os.environ, **env}
                return lambda _: curl_xargs(plain.url, listing, CONCURRENCY, plain, environ)

            results = interleaved(
                {
                    "direct": _variant(ctx, "direct", plain, files),
                    "proxy": proxied("http", http_proxy=proxy.url),
                    "curl direct": curl(),
                    "curl proxy": curl(http_proxy=proxy.url),
                    "https direct": _variant(ctx, "sdirect", secure, files, **ca),
                    "https proxy": proxied("https", https_proxy=proxy.url, **ca),
                    "bare https direct": bare(secure.url),
                    "bare https proxy": bare(secure.url, BARE_PROXY=proxy.url),
                    **squid_variants,
                },
                budget=300,
            )
            logged = proxy.requests()
    finally:
        plain.stop()
        secure.stop()
    rounds = len(results["proxy"])
    posts = sum(1 for r in logged if r.startswith("POST "))
    tunnels = sum(1 for r in logged if r.startswith("CONNECT "))
    direct, proxied = median(results["direct"]), median(results["proxy"])
    sdirect, sproxied = median(results["https direct"]), median(results["https proxy"])
    ratio, sratio = speed(direct, proxied), speed(sdirect, sproxied)
    line(f"plain HTTP: direct {direct:.2f} s, proxied {proxied:.2f} s: {ratio:.2f} of direct")
    cdirect, cproxied = median(results["curl direct"]), median(results["curl proxy"])
    line(f"curl, plain HTTP: direct {cdirect:.2f} s, proxied {cproxied:.2f} s: "
         f"{speed(cdirect, cproxied):.2f} of direct")  # fmt: skip
    line(f"HTTPS: direct {sdirect:.2f} s, proxied {sproxied:.2f} s: {sratio:.2f} of direct")
    bdirect, bproxied = median(results["bare https direct"]), median(results["bare https proxy"])
    shown = f"{speed(bdirect, bproxied):.2f} of direct (the tunnel's stalls are the proxy's)"
    line(f"bare aiohttp loop, HTTPS: direct {bdirect:.2f} s, through tinyproxy {bproxied:.2f} s:"
         f" {shown}")  # fmt: skip
    line(f"the proxy logged {posts:,} POSTs ({rounds} rounds of {files:,}, ingest and curl) and "
         f"{tunnels} CONNECTs")  # fmt: skip
    for name, runs in results.items():
        line(
            f"{name:<13} {median(runs):6.2f} s; CPU: ingest {median(runs, 'cpu'):5.2f} s, "
            f"sandbox {median(runs, 'server_cpu'):5.2f} s"
        )
    for kind, spent in proxy_cpu.items():
        line(f"tinyproxy CPU per {kind} run: {sorted(spent)[len(spent) // 2]:.2f} s")
    if posts < 2 * rounds * files:  # ingest's and curl's
        raise RuntimeError(f"the proxy logged {posts} POSTs for {rounds} x {files} files")
    rows = [
        Goal(
            work, f"{proxied:.2f} s", f"direct {direct:.2f} s", f"{ratio:.2f} of direct", goal,
            ratio >= 0.8,
        ),
        Goal(
            f"{files:,} files, the same over HTTPS (CONNECT tunnels) vs direct HTTPS",
            f"{sproxied:.2f} s",
            f"direct {sdirect:.2f} s; a bare aiohttp loop through it: "
            f"{speed(bdirect, bproxied):.2f} of its direct run",
            f"{sratio:.2f} of direct", goal, sratio >= 0.8,
        ),
    ]  # fmt: skip
    if not has_squid:
        line(f"no Squid rows: {tool('squid')}")
        return rows
    for kind, name, base in (("plain HTTP", "squid", direct), ("HTTPS", "https squid", sdirect)):
        through = median(results[name])
        line(f"{kind} through Squid: {through:.2f} s, {speed(base, through):.2f} of direct")
        rows.append(
            Goal(
                f"{files:,} files, the same through Squid, {kind}, vs direct",
                f"{through:.2f} s",
                f"direct {base:.2f} s",
                f"{speed(base, through):.2f} of direct",
                goal,
                speed(base, through) >= 0.8,
            )  # fmt: skip
        )
    return rows


def https_row(ctx: Context) -> list[Goal]:
    files = scaled(2000, 400)
    work = f"{files:,} files, 10 ms latency, c {CONCURRENCY}: HTTPS vs plain HTTP"
    section(work)
    tls = make_ca(ctx.work / "tls")
    plain = Sandbox("--latency", LATENCY)
    secure = _secure(tls)
    handshakes: list[int] = []

    def over_https(_: int) -> Sample:
        before = len(secure.requests())
        sample = _run(ctx, "https", secure, files, SSL_CERT_FILE=str(tls.ca))
        handshakes.append(len({r.get("conn") for r in secure.requests()[before:]}))
        return sample

    try:
        results = interleaved(
            {"http": _variant(ctx, "http", plain, files), "https": over_https}, budget=200
        )
    finally:
        plain.stop()
        secure.stop()
    http, https = median(results["http"]), median(results["https"])
    ratio = speed(http, https)
    shakes = sorted(handshakes)[len(handshakes) // 2]
    line(f"plain HTTP {http:.2f} s, HTTPS {https:.2f} s: {ratio:.2f} of plain HTTP's speed")
    line(f"TLS handshakes per run: {handshakes} (median {shakes}) for {files:,} files")
    return [
        Goal(
            work, f"{https:.2f} s; {shakes} handshakes", f"plain HTTP {http:.2f} s",
            f"{ratio:.2f} of plain HTTP", ">= 0.8 of plain HTTP", ratio >= 0.8,
        )
    ]  # fmt: skip
