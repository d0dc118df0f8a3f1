"""The live view: what a frame shows, and that a run off a terminal never loads rich for it
(nor prometheus_client, without `--metrics-file`)."""

from __future__ import annotations

import io
import subprocess
import sys

from rich.console import Console

from pipeline.output.progress import View, human_duration, shorten_middle
from pipeline.run.tally import Tally
from pipeline.sources.census import Census


def frame(view: View, width: int = 100) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(view.render())
    return console.export_text()


def test_a_frame_shows_the_count_the_bar_and_the_files_in_flight() -> None:
    tally = Tally(seen=10, uploaded=3, uploaded_bytes=3_000_000, skipped_done=2, retries=1)
    tally.sending[7] = "/catalogue/Artist/Album/" + "a long folder name/" * 6 + "07 - Track.wav"
    view = View(tally, Census(files=40, done=True), lambda: 60)
    text = frame(view)
    first, counts, in_flight = text.splitlines()[:3]
    assert first.startswith("ingest ") and "5 / 40 files  12%" in first
    assert "sent 3 files, 3.0 MB at" in counts and "skipped 2" in counts
    assert "in flight 1" in counts and "retries 1" in counts
    assert in_flight.startswith("  ↑ /catalogue/") and in_flight.rstrip().endswith("07 - Track.wav")
    assert "…" in in_flight and len(in_flight.rstrip()) <= 60


def test_until_the_census_is_done_the_total_is_a_lower_bound() -> None:
    view = View(Tally(seen=12), Census(files=30), lambda: 80)
    assert "0 / 30+ files (still counting)" in frame(view)
    assert "ETA after the count" in frame(view)


def test_names_are_cut_in_the_middle_and_durations_read_as_people_say_them() -> None:
    assert shorten_middle("abcdefghij", 5) == "ab…ij"
    assert shorten_middle("short", 10) == "short"
    assert (human_duration(42), human_duration(462), human_duration(7380)) == (
        "42s",
        "7m 42s",
        "2h 03m",
    )


def test_a_run_off_a_terminal_loads_neither_rich_nor_the_metrics_library() -> None:
    probe = (
        "import sys, pipeline.commands.run; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'prometheus_client'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
