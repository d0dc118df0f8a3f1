"""The command line is built from the settings' own declaration: every flag a setting has, with
its type, choices and default, and nothing typed twice."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from pipeline.cli import build_parser
from pipeline.config import LogFormat, LogLevel, Progress, Settings, load_settings, shown_default

# A value to give each flag, and what the setting must then hold.
GIVEN: dict[str, tuple[str, Any]] = {
    "purpose": ("voice", "voice"),
    "db": ("/tmp/x.db", "/tmp/x.db"),
    "api_url": ("http://127.0.0.1:9/up", "http://127.0.0.1:9/up"),
    "concurrency": ("3", 3),
    "max_attempts": ("4", 4),
    "timeout": ("2.5", 2.5),
    "max_file_size": ("1MB", 10**6),
    "rate": ("7", 7.0),
    "max_outage": ("90s", 90.0),
    "max_unreached": ("15s", 15.0),
    "proxy": ("proxy.internal:3128", "http://proxy.internal:3128"),
    "ca_bundle": ("/etc/ssl/ca.pem", "/etc/ssl/ca.pem"),
    "lease": ("2m", 120.0),
    "grace": ("5", 5.0),
    "max_duration": ("1h30m", 5400.0),
    "manifest_encoding": ("cp1252", "cp1252"),
    "min_age": ("30s", 30.0),
    "metrics_file": ("/tmp/m.prom", "/tmp/m.prom"),
    "retry_failed": ("", True),
    "dry_run": ("", True),
    "wait": ("", True),
    "log_level": ("debug", "debug"),
    "log_format": ("json", "json"),
    "progress": ("never", "never"),
    "convert": ("never", "never"),
}


def settings_from(argv: list[str]) -> Settings:
    args = build_parser().parse_args(argv)
    names = [field.name for field, _ in Settings.flags()]
    flags = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    return load_settings(environ={}, flags=flags)


@pytest.mark.parametrize("field", [f for f, _ in Settings.flags()], ids=lambda f: f.name)
def test_every_flag_of_run_sets_its_setting(field: dataclasses.Field[Any]) -> None:
    raw, expected = GIVEN[field.name]
    flag = "--" + field.name.replace("_", "-")
    settings = settings_from(["run", flag, *([raw] if raw else []), "cat"])
    value = getattr(settings, field.name)
    assert (str(value) if field.name == "db" else value) == expected


def test_every_flagged_setting_has_a_case_here() -> None:
    """A setting that gains a flag must be tried above."""
    assert {f.name for f, _ in Settings.flags()} == set(GIVEN)


def test_the_help_shows_each_default_as_the_settings_hold_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for field, flag in Settings.flags():
        name = "--" + field.name.replace("_", "-")
        assert name in text
        default = shown_default(field)
        if flag.show_default and default is not None:
            assert re.search(rf"{re.escape(name)} \S+ .*?\(default {re.escape(default)}\)", text)
            # and what the help says parses back to the default itself
            parsed = field.metadata["parse"](default)
            assert parsed == field.default, (field.name, default)


def test_choices_come_from_the_settings_enums(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = capsys.readouterr().out
    for name, kind in (("log-level", LogLevel), ("log-format", LogFormat), ("progress", Progress)):
        assert f"--{name} {{{','.join(member.value for member in kind)}}}" in text


def test_commands_that_read_the_ledger_take_only_its_settings() -> None:
    everywhere = {f.name for f, flag in Settings.flags() if flag.everywhere}
    assert everywhere == {"db", "log_level", "log_format"}
    args = build_parser().parse_args(["status", "--db", "x.db", "--log-format", "json"])
    assert (args.db, args.log_format) == ("x.db", "json")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["status", "--concurrency", "3"])
