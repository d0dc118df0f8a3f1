"""The command line: parse -> Settings -> run; the outcome is the exit code. Kept thin on purpose.

The exit codes are listed in `pipeline.core.exits` (and README.md): a command that runs to its end
returns its own code; one that cannot, raises an `IngestError` that carries its code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from pipeline import __version__
from pipeline.core.exits import Exit
from pipeline.core.states import PURPOSES

if TYPE_CHECKING:
    from pipeline.config import Settings


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line, with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(Exit.USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ingest",
        description="Upload audio catalogues to the MiniMax music "
        "upload API and remember what was done.",
    )
    parser.add_argument("--version", action="version", version=f"ingest {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="upload every entry of folders and manifests")
    run.add_argument("sources", nargs="*", metavar="SOURCE", help="a folder or a .csv manifest")
    run.add_argument(
        "--manifest",
        action="append",
        default=[],
        metavar="FILE",
        help="a CSV manifest, whatever its name",
    )
    run.add_argument(
        "--manifest-encoding",
        dest="manifest_encoding",
        metavar="NAME",
        help="encoding of manifests without a byte-order mark (cp1252, latin-1; default UTF-8)",
    )
    run.add_argument("--purpose", help=f"one of {', '.join(PURPOSES)} for every entry")
    run.add_argument("--api-url", dest="api_url", help="upload endpoint")
    run.add_argument("--concurrency", help="uploads in flight (default 8)")
    run.add_argument("--max-attempts", dest="max_attempts", help="attempts per entry (default 6)")
    run.add_argument("--timeout", help="seconds to connect / of silence (default 60)")
    run.add_argument("--max-file-size", dest="max_file_size", help="largest download (200MB)")
    run.add_argument("--rate", help="at most this many requests per second")
    run.add_argument("--grace", help="seconds for in-flight uploads after a signal (default 10)")
    run.add_argument(
        "--lease", help="a shared ledger's claim lasts this long without a heartbeat (60s)"
    )
    run.add_argument(
        "--max-outage",
        dest="max_outage",
        help="stop (exit 6) when the service stays unreachable this long (default 10m)",
    )
    run.add_argument(
        "--max-duration", dest="max_duration", help="stop taking new work after this long (2h, 90m)"
    )
    run.add_argument(
        "--min-age", dest="min_age", help="leave files modified less than this long ago (30s, 5m)"
    )
    run.add_argument(
        "--metrics-file",
        dest="metrics_file",
        metavar="PATH",
        help="write the run's figures for Prometheus (node_exporter textfile) here",
    )
    run.add_argument("--progress", choices=["auto", "always", "never"])
    run.add_argument(
        "-v", "--verbose", action="store_true", help="one line per file, also on a terminal"
    )
    run.add_argument(
        "-q", "--quiet", action="store_true", help="only errors and the summary; no live display"
    )
    for flag, help_text in (
        ("--dry-run", "walk, probe and hash; upload nothing, change nothing"),
        ("--retry-failed", "retry entries that failed for good earlier"),
        ("--wait", "wait for another run holding the ledger instead of exiting 3"),
    ):
        run.add_argument(
            flag, dest=flag[2:].replace("-", "_"), action="store_const", const=True, help=help_text
        )
    _common(run)

    status = commands.add_parser("status", help="counts by status and purpose, and the last runs")
    status.add_argument("--json", action="store_true", help="the same figures as JSON")
    _common(status)

    export = commands.add_parser("export", help="one record per source, as JSON lines or CSV")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--status", choices=["done", "failed", "pending"])
    export.add_argument("-o", "--output", help="write to this file (atomically) instead of stdout")
    export.add_argument("--force", action="store_true", help="replace --output if it exists")
    export.add_argument(
        "--excel",
        action="store_true",
        help="CSV for Excel: UTF-8 with a byte-order mark and CRLF line ends (implies csv)",
    )
    _common(export)

    sandbox = commands.add_parser("sandbox", help="run the local stand-in for the upload API")
    _sandbox_arguments(sandbox)

    db = commands.add_parser("db", help="ledger schema: upgrade, or show its revision")
    db.add_argument("action", choices=["upgrade", "current"])
    _common(db)
    return parser


def _sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to answers")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped connections")
    parser.add_argument(
        "--hang-rate", type=float, default=0.0, help="share of requests never answered"
    )
    parser.add_argument("--error-rate", type=float, default=0.0, help="share answered HTTP 503")
    parser.add_argument(
        "--throttle-rate", type=float, default=0.0, help="share answered HTTP 429 with Retry-After"
    )
    parser.add_argument(
        "--busy-rate",
        type=float,
        default=0.0,
        help="share answered HTTP 200 with base_resp 1002 (rate limit)",
    )
    parser.add_argument(
        "--reject-rate",
        type=float,
        default=0.0,
        help="share answered HTTP 200 with base_resp 1026 (sensitive content, final)",
    )
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds")
    parser.add_argument(
        "--max-rps",
        type=float,
        default=None,
        help="answer 429 beyond this many requests per second",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        help="refuse requests beyond this many open at once",
    )
    parser.add_argument(
        "--in-flight-answer",
        type=int,
        choices=(1041, 429),
        default=1041,
        help="that refusal: base_resp 1041 (connection limit) or HTTP 429 with Retry-After",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for fault injection")
    parser.add_argument("--log", default=None, help="append each request as a JSON line here")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="ledger: SQLAlchemy URL or SQLite file (default ingest.db)")
    parser.add_argument("--config", metavar="FILE", help="TOML config file")
    parser.add_argument(
        "--log-level", dest="log_level", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", dest="log_format", choices=["text", "json"])


FLAG_SETTINGS = (
    "purpose",
    "db",
    "api_url",
    "concurrency",
    "max_attempts",
    "timeout",
    "max_file_size",
    "rate",
    "grace",
    "max_outage",
    "lease",
    "max_duration",
    "min_age",
    "manifest_encoding",
    "metrics_file",
    "progress",
    "dry_run",
    "retry_failed",
    "wait",
    "log_level",
    "log_format",
)


def console() -> NoReturn:
    """The `ingest` command (and `python -m pipeline`): `main`, then exit.

    Before exiting, every object alive is moved out of the garbage collector's sight
    (`gc.freeze`): the interpreter's last full collection at exit walks everything the imports
    built (SQLAlchemy, aiohttp, Alembic), which cost 0.2 s of every command, a quarter of a
    short run. Nothing is left undone by it: files, connections and threads are closed by then."""
    code = main()
    import gc

    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":
        from pipeline.sandbox.server import serve

        return serve(args, environ=os.environ)
    flags = {k: getattr(args, k) for k in FLAG_SETTINGS if getattr(args, k, None) is not None}
    if getattr(args, "verbose", False):
        flags.setdefault("log_level", "info")
    if getattr(args, "quiet", False):
        flags.setdefault("log_level", "error")
        flags.setdefault("progress", "never")
    from pipeline.config import load_settings
    from pipeline.core.errors import IngestError

    try:
        settings = load_settings(
            environ=os.environ,
            config_file=args.config,
            flags=flags,
            need_key=args.command == "run" and not flags.get("dry_run"),
        )
        import asyncio  # here, not at the top: `ingest --help` should not pay for it

        return asyncio.run(_dispatch(args, settings, argv))
    except IngestError as exc:
        return _fail(exc.exit_code, str(exc))
    except KeyboardInterrupt:
        return _fail(Exit.SIGINT, "interrupted")
    except BrokenPipeError:
        # The reader went away (`ingest export | head`): stop quietly, like any Unix filter.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(Exit.OK)


async def _dispatch(
    args: argparse.Namespace, settings: Settings, argv: Sequence[str] | None
) -> int:
    """Run the command, importing only its own module (status never loads aiohttp)."""
    if args.command == "run":
        from pipeline.commands import run

        given = list(argv if argv is not None else sys.argv[1:])
        return await run.run(settings, args.sources, args.manifest, argv=given)
    from pipeline.commands import reading

    if args.command == "status":
        return await reading.status(settings, as_json=args.json)
    if args.command == "export":
        return await reading.export(
            settings,
            fmt=args.format,
            status=args.status,
            output=args.output,
            force=args.force,
            excel=args.excel,
        )
    return await reading.db(settings, args.action)


def _fail(code: Exit, message: str) -> int:
    print(f"ingest: {message}", file=sys.stderr)
    return int(code)
