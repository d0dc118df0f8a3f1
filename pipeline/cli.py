"""The command line: parse -> Settings -> run; the outcome is the exit code. Kept thin on purpose.

The exit codes are listed in `pipeline.core.exits` (and README.md): a command that runs to its end
returns its own code; one that cannot, raises an `IngestError` that carries its code.
"""

from __future__ import annotations

import argparse
import enum
import functools
import os
import sys
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from pipeline import __version__
from pipeline.core.exits import Exit

if TYPE_CHECKING:
    from pipeline.config import Flag, Settings


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

    run = commands.add_parser("run", help="upload every entry of folders, manifests and buckets")
    run.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="a folder, a .csv manifest or an s3://bucket/prefix/",
    )
    run.add_argument(
        "--manifest",
        action="append",
        default=[],
        metavar="FILE",
        help="a CSV manifest, whatever its name",
    )
    run.add_argument(
        "-v", "--verbose", action="store_true", help="one line per file, also on a terminal"
    )
    run.add_argument(
        "-q", "--quiet", action="store_true", help="only errors and the summary; no live display"
    )
    _settings(run, everywhere_only=False)

    status = commands.add_parser("status", help="counts by status and purpose, and the last runs")
    status.add_argument("--json", action="store_true", help="the same figures as JSON")
    _settings(status)

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
    _settings(export)

    sandbox = commands.add_parser("sandbox", help="run the local stand-in for the upload API")
    _sandbox_arguments(sandbox)

    db = commands.add_parser("db", help="ledger schema: upgrade, or show its revision")
    db.add_argument("action", choices=["upgrade", "current"])
    _settings(db)
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
    parser.add_argument(
        "--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate (chain)"
    )
    parser.add_argument(
        "--tls-key", metavar="FILE", help="the certificate's PEM key (if not in --tls-cert)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for fault injection")
    parser.add_argument("--log", default=None, help="append each request as a JSON line here")


def _settings(parser: argparse.ArgumentParser, *, everywhere_only: bool = True) -> None:
    """A flag for each setting given on the command line (all of them for `run`), built from
    the settings' own declaration: name, type, choices, default and help in one place."""
    from pipeline.config import Settings, parse_bool, shown_default

    parser.add_argument("--config", metavar="FILE", help="TOML config file")
    for field, flag in Settings.flags():
        if everywhere_only and not flag.everywhere:
            continue
        name = "--" + field.name.replace("_", "-")
        default = shown_default(field) if flag.show_default else None
        help_text = flag.help
        if default is not None:
            help_text = f"{help_text} (default {default})"
        if field.metadata["parse"] is parse_bool:
            parser.add_argument(
                name, dest=field.name, action="store_const", const=True, help=help_text
            )
            continue
        choices = _choices_of(field.name, flag)
        parser.add_argument(
            name,
            dest=field.name,
            metavar=None if choices else flag.metavar or field.name.upper(),
            choices=choices,
            help=help_text,
        )


@functools.cache
def _setting_types() -> dict[str, object]:
    from pipeline.config import Settings

    return typing.get_type_hints(Settings)


def _choices_of(name: str, flag: Flag) -> list[str] | None:
    """The values a setting typed as an enum takes (`LogLevel`, `Progress | None`, ...), unless
    its flag names a metavar instead (a purpose is matched without regard to case)."""
    hint = _setting_types()[name]
    for kind in typing.get_args(hint) or (hint,):
        if isinstance(kind, type) and issubclass(kind, enum.StrEnum) and flag.metavar is None:
            return [member.value for member in kind]
    return None


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
    from pipeline.config import Settings

    names = [field.name for field, _ in Settings.flags()]
    flags = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
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
        if args.command == "status":  # an SQLite ledger's needs no event loop
            from pipeline.commands import reading

            code = reading.status_at_once(settings, as_json=args.json)
            if code is not None:
                return code
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
    import asyncio  # loaded by main already

    if args.command == "run":
        from pipeline.transport.tls import tls_context

        # The CA file is read in a worker thread while the run's modules are imported below:
        # OpenSSL parses it without holding the GIL, so its 20-40 ms come off the start.
        tls = asyncio.get_running_loop().run_in_executor(None, tls_context, *settings.trusted_cas)
        try:
            from pipeline.commands import run

            given = list(argv if argv is not None else sys.argv[1:])
            return await run.run(settings, args.sources, args.manifest, argv=given, tls=tls)
        finally:
            # A run that failed first still collects the thread's outcome: no error is left
            # unretrieved.
            await asyncio.wait([tls])
            if not tls.cancelled():
                tls.exception()
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
