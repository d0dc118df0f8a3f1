from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from pipeline.config import (
    DEFAULT_API_URL,
    Settings,
    load_settings,
    parse_db,
    parse_duration,
    parse_size,
)
from pipeline.core.errors import ConfigError, UsageError
from pipeline.core.secret import Secret

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_without_any_layer() -> None:
    settings = load_settings(environ={})
    assert settings.concurrency == 8
    assert settings.max_attempts == 6
    assert settings.api_url == DEFAULT_API_URL
    assert settings.db.path == Path("ingest.db") and settings.db.dialect == "sqlite"
    assert settings.api_key is None


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "ingest.toml"
    config.write_text('concurrency = 3\nmax_attempts = 4\ntimeout = 7\npurpose = "voice"\n')
    env = {"INGEST_MAX_ATTEMPTS": "5", "INGEST_TIMEOUT": "9"}
    settings = load_settings(environ=env, config_file=str(config), flags={"timeout": "11"})
    assert settings.concurrency == 3  # file
    assert settings.max_attempts == 5  # env beats file
    assert settings.timeout == 11.0  # flag beats env
    assert settings.purpose == "voice"


def test_default_toml_documents_every_setting_with_its_default() -> None:
    text = (ROOT / "config" / "default.toml").read_text()
    # Commented-out keys are the optional ones whose default is "unset".
    uncommented = tomllib.loads(text)
    commented = {
        line.lstrip("# ").split(" =", 1)[0]
        for line in text.splitlines()
        if line.startswith("# ") and " = " in line
    }
    names = set(Settings.field_names())
    assert names == set(uncommented) | (commented & names)
    parsed = load_settings(environ={}, config_file=str(ROOT / "config" / "default.toml"))
    assert dataclasses.replace(parsed, api_key=None) == Settings()
    for name in names - set(uncommented):
        assert getattr(Settings(), name) is None, name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200MB", 200_000_000),
        ("1GiB", 2**30),
        ("20mb", 20_000_000),
        ("1024", 1024),
        ("1.5KB", 1500),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2h", 7200.0), ("90m", 5400.0), ("1h30m", 5400.0), ("45s", 45.0), ("10", 10.0)],
)
def test_parse_duration(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "2x", "h", "-5", "0", "1h-3m"])
def test_parse_duration_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_db_accepts_paths_and_urls_and_picks_the_async_drivers() -> None:
    assert parse_db("/tmp/a.db").url.render_as_string() == "sqlite+aiosqlite:////tmp/a.db"
    assert parse_db("sqlite:///rel.db").url.drivername == "sqlite+aiosqlite"
    assert parse_db("sqlite:///rel.db").path == Path("rel.db")
    pg = parse_db("postgresql://ingest:s3cret@db.internal:5433/cat")
    assert pg.url.drivername == "postgresql+asyncpg" and pg.path is None
    assert parse_db("postgresql+asyncpg://db.internal/cat").url.drivername == "postgresql+asyncpg"


def test_db_shown_never_carries_the_credentials() -> None:
    pg = parse_db("postgresql://ingest:s3cret@db.internal:5433/cat")
    assert "s3cret" not in pg.shown and "ingest" not in pg.shown
    assert "s3cret" not in repr(pg) and "s3cret" not in str(pg)
    assert pg.shown == "postgresql+asyncpg://db.internal:5433/cat"


@pytest.mark.parametrize("bad", ["mysql://x/y", "oracle://a"])
def test_db_refuses_other_databases(bad: str) -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        parse_db(bad)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"concurrency": "0"}, "--concurrency"),
        ({"purpose": "podcast"}, "--purpose"),
        ({"api_url": "ftp://x"}, "--api-url"),
        ({"max_file_size": "big"}, "--max-file-size"),
    ],
)
def test_bad_values_name_the_setting(flags: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(environ={}, flags=flags)


def test_environment_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="INGEST_CONCURRENCY: not a whole number"):
        load_settings(environ={"INGEST_CONCURRENCY": "many"})


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("concurency = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'concurency'"):
        load_settings(environ={}, config_file=str(config))


def test_key_from_env_wins_over_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    env = {"INGEST_API_KEY_FILE": str(key_file)}
    assert load_settings(environ=env).api_key == Secret("from-file")
    env["AIMLAPI_API_KEY"] = "from-env"
    assert load_settings(environ=env).api_key == Secret("from-env")


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(UsageError, match="AIMLAPI_API_KEY"):
        load_settings(environ={}, need_key=True)


def test_secret_never_shows_itself() -> None:
    secret = Secret("sk-very-secret")
    settings = dataclasses.replace(Settings(), api_key=secret)
    for text in (repr(secret), str(secret), repr(settings), f"{secret}"):
        assert "sk-very-secret" not in text


def test_the_retry_policys_defaults_are_the_settings_defaults() -> None:
    """The policy's own defaults (used where no settings are at hand) are the documented ones."""
    from pipeline.commands.run import policy_from
    from pipeline.flow.backoff import RetryPolicy

    assert policy_from(load_settings(environ={})) == RetryPolicy()


def test_the_network_s_variables_are_read_here_and_handed_down() -> None:
    environ = {
        "https_proxy": "http://u:pw@proxy:3128",
        "HTTP_PROXY": "http://upper:1",  # handed down; curl's rules decide it is never read
        "no_proxy": "",  # empty: unset, as for curl
        "NO_PROXY": "internal",
        "SSL_CERT_FILE": "/etc/ssl/private-ca.pem",
        "PATH": "/bin",
    }
    settings = load_settings(environ=environ)
    assert dict(settings.proxy_environ) == {
        "https_proxy": "http://u:pw@proxy:3128",
        "NO_PROXY": "internal",
    }
    assert settings.ssl_cert_file == "/etc/ssl/private-ca.pem"
    assert settings.ca_bundle is None  # the flag and the setting win; the variable is the default
    assert "pw" not in repr(settings)


def test_a_proxy_setting_is_read_as_curl_reads_one_and_socks_is_refused() -> None:
    assert load_settings(environ={"INGEST_PROXY": "proxy:3128"}).proxy == "http://proxy:3128"
    assert load_settings(environ={}, flags={"proxy": "https://p"}).proxy == "https://p:443"
    with pytest.raises(ConfigError, match=r"--proxy: socks5:// proxies are not supported"):
        load_settings(environ={}, flags={"proxy": "socks5://p:1080"})
    settings = load_settings(environ={}, flags={"proxy": "http://u:secret@p:1"})
    assert "secret" not in repr(settings)
