"""Settings: typed, frozen, built once at the edge.

Precedence, lowest first: the defaults below < `--config FILE` (TOML) < environment
(`INGEST_<NAME>`, and `AIMLAPI_API_KEY` for the key) < command-line flags. A bucket's
credentials, region and endpoint are the standard `AWS_*` variables, read here too
(`pipeline.core.aws`).
`config/default.toml` documents every field with its default; a test keeps it in step with
this module. Nothing below this module reads `os.environ`: the other variables the network
honours are read here too and handed down with the settings (the proxy variables as curl reads
them, `SSL_CERT_FILE` under `--ca-bundle`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pipeline.core.aws import AwsAccess, aws_access
from pipeline.core.errors import ConfigError, UsageError
from pipeline.core.secret import Secret
from pipeline.core.states import PURPOSES, Purpose
from pipeline.ledger.location import Location, parse_location
from pipeline.transport.proxies import PROXY_VARIABLES, normalise, unsupported

DEFAULT_API_URL = "https://api.aimlapi.com/v2/generate/audio/minimax/upload"
DEFAULT_DB = "ingest.db"
KEY_ENV = "AIMLAPI_API_KEY"
CA_ENV = "SSL_CERT_FILE"
ENV_PREFIX = "INGEST_"


# --- parsers: raw text (or TOML value) -> typed value; raise ValueError with a short reason ---

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_size(raw: object) -> int:
    """`200MB` (decimal), `1.5GiB` (binary), `1024` (bytes) -> bytes."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(raw))
        if not match or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(f"not a size: {raw!r} (try 200MB, 1GiB or a number of bytes)")
        value = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if value <= 0:
        raise ValueError(f"must be positive: {raw!r}")
    return value


def parse_duration(raw: object) -> float:
    """`2h`, `90m`, `1h30m`, `45s`, `10` (seconds) -> seconds."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        total = float(raw)
    else:
        text = str(raw).strip().lower()
        parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)", text)
        if not text or not parts or re.sub(r"[0-9.\s smhd]", "", text):
            raise ValueError(f"not a duration: {raw!r} (try 2h, 90m, 1h30m or seconds)")
        if "".join(n + u for n, u in parts) != text.replace(" ", ""):
            raise ValueError(f"not a duration: {raw!r} (try 2h, 90m, 1h30m or seconds)")
        total = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if not math.isfinite(total) or total <= 0:
        raise ValueError(f"must be positive: {raw!r}")
    return total


def parse_positive_int(raw: object) -> int:
    try:
        value = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except ValueError:
        raise ValueError(f"not a whole number: {raw!r}") from None
    if isinstance(value, bool) or value <= 0:
        raise ValueError(f"must be a positive whole number, got {raw!r}")
    return value


def parse_positive_float(raw: object) -> float:
    try:
        value = float(str(raw).strip()) if not isinstance(raw, int | float) else float(raw)
    except ValueError:
        raise ValueError(f"not a number: {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {raw!r}")
    return value


def parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {raw!r} (use true or false)")


def parse_purpose(raw: object) -> Purpose:
    text = str(raw).strip().lower()
    if text not in PURPOSES:
        raise ValueError(f"unknown purpose {raw!r} (use one of: {', '.join(PURPOSES)})")
    return Purpose(text)


def parse_api_url(raw: object) -> str:
    text = str(raw).strip()
    from urllib.parse import urlsplit  # here: `ingest --help` builds the flags from this module

    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {raw!r}")
    return text


def parse_proxy(raw: object) -> str:
    """An http:// or https:// proxy URL (`host:port` alone is http://), as curl reads one."""
    text = normalise(str(raw).strip())
    problem = unsupported(text)
    if problem is not None:
        raise ValueError(problem)
    return text


def parse_db(raw: object) -> Location:
    """A file path (an SQLite file) or a database URL (sqlite://, postgresql://)."""
    return parse_location(raw if isinstance(raw, Location) else str(raw))


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class Progress(enum.StrEnum):
    AUTO = "auto"  # only on a terminal, with text logs
    ALWAYS = "always"
    NEVER = "never"


class Convert(enum.StrEnum):
    AUTO = "auto"  # decode what the service does not take as it is into WAV, and send that
    NEVER = "never"  # refuse it, naming the codec


E = TypeVar("E", bound=enum.StrEnum)


def _choice(kind: type[E]) -> Callable[[object], E]:
    def parse(raw: object) -> E:
        text = str(raw).strip().lower()
        try:
            return kind(text)
        except ValueError:
            options = ", ".join(member.value for member in kind)
            raise ValueError(f"{raw!r} is not one of: {options}") from None

    return parse


def _optional(parse: Callable[[object], Any]) -> Callable[[object], Any]:
    def parse_or_none(raw: object) -> Any:
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in {"", "none", "off"}):
            return None
        return parse(raw)

    return parse_or_none


@dataclasses.dataclass(frozen=True)
class Flag:
    """How a setting is given on the command line: `--name-with-dashes`, for `ingest run`
    (`everywhere`: for every command that reads the ledger too). The help is one short line;
    the default is added to it, shown as the user would write it."""

    help: str | None = None
    metavar: str | None = None
    everywhere: bool = False
    show_default: bool = True


def _field(
    default: Any,
    parse: Callable[[object], Any],
    doc: str,
    flag: Flag | None = None,
    *,
    shown: bool = True,
) -> Any:
    """A setting; `shown=False` keeps its value out of the settings' repr (it may hold a
    password)."""
    metadata = {"parse": parse, "doc": doc, "flag": flag}
    return dataclasses.field(default=default, metadata=metadata, repr=shown)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a run needs to know. Field docs are repeated in config/default.toml."""

    purpose: Purpose | None = _field(
        None,
        _optional(parse_purpose),
        "Purpose for every entry: song, voice or instrumental. Unset: taken from the folder name "
        "(song/songs, voice/vocals/acapella, instrumental/instrumentals) or the manifest row.",
        Flag(f"one of {', '.join(PURPOSES)} for every entry", metavar="PURPOSE"),
    )
    db: Location = _field(
        parse_db(DEFAULT_DB),
        parse_db,
        "The ledger: a file path (an SQLite file) or a database URL (sqlite:///path, "
        "postgresql://user@host/db).",
        Flag("ledger: SQLAlchemy URL or SQLite file", metavar="DB", everywhere=True),
    )
    api_url: str = _field(
        DEFAULT_API_URL,
        parse_api_url,
        "The upload endpoint.",
        Flag("upload endpoint", metavar="API_URL", show_default=False),
    )
    proxy: str | None = _field(
        None,
        _optional(parse_proxy),
        "Send uploads and downloads through this proxy (http://[user:password@]host:port), "
        "instead of the one https_proxy, HTTPS_PROXY, http_proxy or ALL_PROXY name; no_proxy "
        "(NO_PROXY) still applies, as to curl -x. Unset: those variables, as curl reads them.",
        Flag("send requests through this proxy (overrides https_proxy etc.)", metavar="URL"),
        shown=False,
    )
    ca_bundle: str | None = _field(
        None,
        _optional(str),
        "Trust only the certificate authorities in this PEM file (a private CA, a proxy that "
        "inspects TLS). Unset: the file SSL_CERT_FILE names, else the system's CAs.",
        Flag("trust only the CAs in this PEM file (default: SSL_CERT_FILE)", metavar="FILE"),
    )
    api_key_file: str | None = _field(
        None, _optional(str), "A file holding the API key, used when AIMLAPI_API_KEY is not set."
    )
    concurrency: int = _field(
        8, parse_positive_int, "Uploads in flight at once.", Flag("uploads in flight")
    )
    max_attempts: int = _field(
        6,
        parse_positive_int,
        "Attempts per entry (the first included) before a transient failure is left for the "
        "next run.",
        Flag("attempts per entry"),
    )
    max_backoff: float = _field(
        600.0, parse_duration, "Cap on the total time one entry may spend waiting between attempts."
    )
    backoff_base: float = _field(
        1.0,
        parse_positive_float,
        "First backoff in seconds after a slow-down (429, 1002, ...); doubles each attempt, with "
        "full jitter.",
    )
    fault_backoff_base: float = _field(
        0.05,
        parse_positive_float,
        "First backoff in seconds after any other transient fault (a dropped connection, a "
        "timeout, a 5xx); doubles each attempt, with full jitter.",
    )
    backoff_max: float = _field(60.0, parse_positive_float, "Longest single backoff in seconds.")
    timeout: float = _field(
        60.0,
        parse_positive_float,
        "Seconds to connect, and seconds of silence while sending or receiving, before an "
        "attempt is cut.",
        Flag("seconds to connect / of silence"),
    )
    convert: Convert = _field(
        Convert.AUTO,
        _choice(Convert),
        "Files in a format the service does not take as it is (FLAC, AIFF, ALAC or AAC in "
        "M4A, Ogg Vorbis, Opus, WMA, WavPack, a WAV holding ADPCM, ...): auto decodes each to a "
        "PCM WAV at its own rate, channels and depth and sends that (needs the decoder: pip "
        "install 'ingest[decode]'); never refuses them. WAV and MP3 are always sent as they are.",
        Flag("auto: decode FLAC, AIFF, M4A, Ogg, ... to WAV and send it; never: refuse them"),
    )
    decode_timeout: float = _field(
        300.0,
        parse_duration,
        "Longest one file's decode may take; past it the file is left for the next run.",
    )
    max_file_size: int = _field(
        parse_size("200MB"),
        parse_size,
        "Largest download accepted from a manifest URL (200MB, 1GiB, ...).",
        Flag("largest download"),
    )
    rate: float | None = _field(
        None,
        _optional(parse_positive_float),
        "Upper bound on requests per second. Unset: adapt to the service's 429/1002 answers.",
        Flag("at most this many requests per second"),
    )
    max_unreached: float = _field(
        30.0,
        parse_duration,
        "How long a run keeps trying when no request has reached the service yet (every one "
        "refused, a name that does not resolve, a TLS handshake that fails): then it stops, "
        "exit 6, naming the URL and the error, as a wrong --api-url should. Once the service "
        "has answered, an outage is bounded by max_outage instead.",
        Flag("stop (exit 6) when no request has reached the service for this long"),
    )
    max_outage: float = _field(
        600.0,
        parse_duration,
        "How long the service may stay unreachable (every request failing to connect, or 5xx) "
        "before the run stops taking work and exits 6. Meanwhile one probe request goes out at "
        "a growing interval and the waiting entries keep their attempts.",
        Flag("stop (exit 6) when the service stays unreachable this long"),
    )
    lease: float = _field(
        60.0,
        parse_duration,
        "On a PostgreSQL ledger shared by several runs: how long a run's claim on an entry "
        "lasts without its heartbeat (sent every quarter of it). A run that dies loses its "
        "claims this long after, and the live runs take its work over.",
        Flag("a shared ledger's claim lasts this long without a heartbeat"),
    )
    grace: float = _field(
        10.0,
        parse_duration,
        "On SIGINT/SIGTERM, how long in-flight uploads may take to finish.",
        Flag("how long in-flight uploads may take after a signal"),
    )
    max_duration: float | None = _field(
        None,
        _optional(parse_duration),
        "Stop taking new work after this long (2h, 90m); exit 4 if work is left.",
        Flag("stop taking new work after this long (2h, 90m)"),
    )
    manifest_encoding: str | None = _field(
        None,
        _optional(str),
        "Encoding of CSV manifests that have no byte-order mark (cp1252, latin-1, ...). Unset: "
        "UTF-8. A mark (UTF-8, UTF-16, UTF-32) always wins.",
        Flag(
            "encoding of manifests without a byte-order mark (cp1252, latin-1; default UTF-8)",
            metavar="NAME",
        ),
    )
    min_age: float | None = _field(
        None,
        _optional(parse_duration),
        "Leave files modified less than this long ago alone (30s, 5m): a copy may still be "
        "in progress. Unset: take every file.",
        Flag("leave files modified less than this long ago (30s, 5m)"),
    )
    metrics_file: str | None = _field(
        None,
        _optional(str),
        "Write the run's figures here in Prometheus' textfile format (for node_exporter's "
        "textfile collector), atomically, during the run and at its end.",
        Flag("write the run's figures for Prometheus (node_exporter textfile) here", "PATH"),
    )
    retry_failed: bool = _field(
        False,
        parse_bool,
        "Retry entries that failed for good earlier.",
        Flag("retry entries that failed for good earlier"),
    )
    dry_run: bool = _field(
        False,
        parse_bool,
        "Walk, probe and hash, print what would be uploaded; no API call, no ledger change.",
        Flag("walk, probe and hash; upload nothing, change nothing"),
    )
    wait: bool = _field(
        False,
        parse_bool,
        "If another run holds the ledger, wait for it instead of exiting 3.",
        Flag("wait for another run holding the ledger instead of exiting 3"),
    )
    log_level: LogLevel | None = _field(
        None,
        _optional(_choice(LogLevel)),
        "Log level: debug, info, warning or error. Unset: warning on a terminal, where the live "
        "display shows the progress; info otherwise (one line per file: the audit trail).",
        Flag(everywhere=True),
    )
    log_format: LogFormat = _field(
        LogFormat.TEXT,
        _choice(LogFormat),
        "Log lines as text or JSON.",
        Flag(everywhere=True, show_default=False),
    )
    progress: Progress = _field(
        Progress.AUTO,
        _choice(Progress),
        "Live display of the run: auto shows it only on a terminal (stderr), with text logs.",
        Flag(show_default=False),
    )
    # Read from the environment only (not settings: no flag, no INGEST_ name, no config key).
    api_key: Secret | None = dataclasses.field(default=None, repr=False, compare=False)
    # Credentials, region and endpoint of buckets: the standard AWS_* variables, not settings.
    aws: AwsAccess = dataclasses.field(default_factory=AwsAccess, repr=False, compare=False)
    # The proxy variables that are set (values may hold a password), as curl reads them.
    proxy_environ: Mapping[str, str] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )
    ssl_cert_file: str | None = dataclasses.field(default=None, compare=False)

    @property
    def trusted_cas(self) -> tuple[str | None, str]:
        """The CA file every connection trusts alone (None: the system's), and where it was
        named, for messages: `--ca-bundle`, else SSL_CERT_FILE."""
        if self.ca_bundle is not None:
            return self.ca_bundle, "--ca-bundle"
        return self.ssl_cert_file, CA_ENV

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if "parse" in f.metadata]

    @classmethod
    def flags(cls) -> list[tuple[dataclasses.Field[Any], Flag]]:
        """The settings given on the command line, with how: the CLI is built from these."""
        return [(f, f.metadata["flag"]) for f in dataclasses.fields(cls) if f.metadata.get("flag")]


def shown_default(field: dataclasses.Field[Any]) -> str | None:
    """A setting's default as a user would write it (`10m`, `200MB`, `8`); None when unset."""
    value: Any = field.default
    parse = field.metadata["parse"]
    if value is None or isinstance(value, bool):
        return None
    if parse is parse_duration:
        return show_duration(value)
    if parse is parse_size and value % 10**6 == 0:
        return f"{value // 10**6}MB"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def show_duration(seconds: float) -> str:
    """`600` -> `10m`, `5400` -> `1h30m`, `45` -> `45s`: as `parse_duration` reads it back."""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    parts = [(whole // 3600, "h"), (whole % 3600 // 60, "m"), (whole % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def _parse_layer(
    layer: Mapping[str, object], origin: str, shown: Callable[[str], str] = str
) -> dict[str, Any]:
    """Parse one layer; errors name the setting as the user wrote it (`shown`)."""
    fields = {f.name: f for f in dataclasses.fields(Settings) if "parse" in f.metadata}
    parsed: dict[str, Any] = {}
    for name, raw in layer.items():
        field = fields.get(name)
        if field is None:
            raise ConfigError(f"{origin}: unknown setting {name!r}")
        try:
            parsed[name] = field.metadata["parse"](raw)
        except ValueError as exc:
            raise ConfigError(f"{origin}{shown(name)}: {exc}") from None
    return parsed


def read_config_file(path: str) -> dict[str, object]:
    import tomllib  # here: only a command given --config reads TOML

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    table = data.get("ingest", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [ingest] must be a table")
    return table


def env_layer(environ: Mapping[str, str]) -> dict[str, object]:
    names = set(Settings.field_names())
    layer: dict[str, object] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in names:
                layer[name] = value
    return layer


def load_settings(
    *,
    environ: Mapping[str, str],
    config_file: str | None = None,
    flags: Mapping[str, object] | None = None,
    need_key: bool = False,
) -> Settings:
    """Merge the layers and return one frozen Settings. `flags` holds only flags given."""
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(_parse_layer(read_config_file(config_file), f"config file {config_file}: "))
    values.update(_parse_layer(env_layer(environ), "", lambda n: ENV_PREFIX + n.upper()))
    values.update(_parse_layer(dict(flags or {}), "", lambda n: "--" + n.replace("_", "-")))
    settings = Settings(**values)
    key = _load_key(environ, settings.api_key_file)
    if need_key and key is None:
        raise UsageError(
            f"no API key: set {KEY_ENV} (or api_key_file in the config file) and run again"
        )
    return dataclasses.replace(
        settings, api_key=key, aws=aws_access(environ), **network_environ(environ)
    )


def network_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """What the network takes from the environment: the proxy variables that are set (empty
    ones count as unset, as for curl) and `SSL_CERT_FILE`."""
    proxies = {name: environ[name] for name in PROXY_VARIABLES if environ.get(name)}
    return {"proxy_environ": proxies, "ssl_cert_file": environ.get(CA_ENV) or None}


def _load_key(environ: Mapping[str, str], key_file: str | None) -> Secret | None:
    value = environ.get(KEY_ENV, "").strip()
    if value:
        return Secret(value)
    if key_file:
        try:
            value = Path(key_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"api_key_file {key_file}: {exc.strerror or exc}") from None
        if not value:
            raise ConfigError(f"api_key_file {key_file} is empty")
        return Secret(value)
    return None
