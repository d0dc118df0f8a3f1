"""On a terminal: a live view that updates, no per-file lines by default, the summary at the end.

The CLI runs in a real pseudo-terminal (pexpect), 120 columns wide, as a person would see it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pexpect
import pytest

from pipeline.sandbox.samples import write_wav
from tests.conftest import SandboxServer, cli_env, start_sandbox, stop_sandbox

pytestmark = pytest.mark.e2e
FRAME = re.compile(r"(\d[\d,]*) / ([\d,]+)(\+?) files")


def catalogue(root: Path, count: int) -> None:
    for i in range(count):
        write_wav(
            root / "song" / f"album-{i // 20}" / f"track-{i:03d}.wav", 10.5, seed=i, rate=2000
        )


def on_terminal(tmp_path: Path, *args: str) -> tuple[str, int]:
    env = cli_env()
    env.pop("INGEST_PROGRESS")  # the default: shown on a terminal
    env["TERM"] = "xterm-256color"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "pipeline", "run", *args],
        cwd=str(tmp_path),
        env=env,
        dimensions=(30, 120),
        encoding="utf-8",
        timeout=90,
    )
    child.expect(pexpect.EOF)
    child.close()
    return child.before, child.exitstatus


@pytest.fixture
def slow_sandbox(tmp_path: Path) -> SandboxServer:
    server = start_sandbox(tmp_path, "--latency", "0.15")
    yield server  # type: ignore[misc]
    stop_sandbox(server)


def test_the_live_view_updates_without_per_file_lines_and_ends_with_the_summary(
    tmp_path: Path, slow_sandbox: SandboxServer
) -> None:
    catalogue(tmp_path / "cat", 60)
    screen, code = on_terminal(tmp_path, "cat", "--api-url", slow_sandbox.url, "--concurrency", "4")
    assert code == 0, screen
    counts = [int(m.group(1).replace(",", "")) for m in FRAME.finditer(screen)]
    assert len(set(counts)) >= 3 and counts[-1] == 60  # it moved, and it got to the end
    assert "ETA" in screen and "in flight" in screen and "↑ " in screen
    assert " done /" not in screen and "INFO" not in screen  # no per-file lines by default
    assert screen.rstrip().splitlines()[-1].strip().startswith("retries")
    assert "run finished in" in screen and "uploaded          60" in screen


def test_verbose_shows_per_file_lines_and_quiet_shows_only_the_summary(
    tmp_path: Path, slow_sandbox: SandboxServer
) -> None:
    catalogue(tmp_path / "cat", 6)
    screen, code = on_terminal(tmp_path, "cat", "--api-url", slow_sandbox.url, "-v")
    assert code == 0 and screen.count("INFO    done ") == 6
    (tmp_path / "ingest.db").unlink()
    screen, code = on_terminal(tmp_path, "cat", "--api-url", slow_sandbox.url, "-q")
    assert code == 0
    assert "INFO" not in screen and not FRAME.search(screen)
    assert "run finished in" in screen


def test_long_paths_are_shortened_in_the_middle_to_fit_the_terminal(
    tmp_path: Path, slow_sandbox: SandboxServer
) -> None:
    deep = tmp_path / "cat" / "song" / ("a-very-long-folder-name-" * 4) / ("b" * 60)
    for i in range(8):
        write_wav(deep / f"the-track-number-{i:02d}-with-a-long-title.wav", 10.5, seed=i, rate=2000)
    screen, code = on_terminal(tmp_path, "cat", "--api-url", slow_sandbox.url, "--concurrency", "2")
    assert code == 0
    shown = [line for line in screen.splitlines() if "↑ " in line]
    assert shown and all(len(line.rstrip()) <= 120 for line in shown)
    assert any("…" in line and line.rstrip().endswith(".wav") for line in shown)


def test_off_a_terminal_the_per_file_lines_stay(tmp_path: Path, sandbox: SandboxServer) -> None:
    from tests.conftest import run_cli

    catalogue(tmp_path / "cat", 3)
    env = cli_env()
    env.pop("INGEST_PROGRESS")
    result = run_cli("run", "cat", "--api-url", sandbox.url, cwd=tmp_path, env=env)
    assert result.code == 0
    assert result.stderr.count("INFO    done ") == 3  # the audit trail of a cron job
    assert "━" not in result.stderr + result.stdout
