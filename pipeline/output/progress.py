"""The live view of a run on a terminal (rich), in the manner of `rclone -P`.

    ingest ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━  1,234 / 5,000 files  24%  ETA 7m 42s
      sent 120 files, 3.2 GB at 12.3 MB/s · skipped 1,100 · in flight 8 · retries 12 · failed 3
      ↑ /mnt/catalogue/Artist/…/01 - A Track With A Very Long Name.wav

It reads the run's `Tally` (and the `Census` counting the sources ahead of the run) a few times a
second; the runner knows nothing about it. Until the census is done the total reads as a lower
bound ("5,000+ files, still counting"). Rates and the ETA come from the last half minute, so a
burst of skipped files at the start does not promise a finish that the uploads cannot keep.
Warnings and errors print above the view; per-file lines only with `-v`. Off a terminal it is
never shown: the log lines are the record there. rich is imported only when the view is shown:
a run off a terminal (cron) does not pay for it at start-up.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from pipeline.output.summary import human_size
from pipeline.run.tally import Tally
from pipeline.sources.census import Census

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table
    from rich.text import Text

WINDOW = 30.0  # seconds of history behind the rates and the ETA
SHOWN_IN_FLIGHT = 4  # file names shown under the bar


def shorten_middle(text: str, width: int) -> str:
    """`text` cut to `width` characters by taking out its middle: both ends of a path say most."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + text[len(text) - tail :]


def human_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


class Rates:
    """Files dealt with and bytes sent per second over the last WINDOW seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque()

    def sample(self, processed: int, sent_bytes: int) -> tuple[float, float]:
        now = self._clock()
        self._samples.append((now, processed, sent_bytes))
        while len(self._samples) > 2 and now - self._samples[0][0] > WINDOW:
            self._samples.popleft()
        first_t, first_n, first_b = self._samples[0]
        span = now - first_t
        if span <= 0:
            return 0.0, 0.0
        return (processed - first_n) / span, (sent_bytes - first_b) / span


class View:
    """What a person sees, rebuilt from the counters at each refresh."""

    def __init__(self, tally: Tally, census: Census | None, width: Callable[[], int]) -> None:
        self.tally = tally
        self.census = census
        self.width = width
        self.rates = Rates()
        self.ended = False  # the run is over: the last frame says so

    def total(self) -> tuple[int, bool]:
        """(the total as known, whether it is final)."""
        tally, census = self.tally, self.census
        if tally.sources_done:
            return tally.seen, True
        known = max(tally.seen, census.files if census is not None else 0)
        return known, census is not None and census.done

    def render(self) -> RenderableType:
        from rich.console import Group
        from rich.text import Text

        tally = self.tally
        processed = tally.processed
        per_second, bytes_per_second = self.rates.sample(processed, tally.uploaded_bytes)
        total, final = self.total()
        return Group(
            self._bar(processed, total, final, per_second),
            Text("  " + self._counts(bytes_per_second), overflow="ellipsis", no_wrap=True),
            *self._in_flight(),
        )

    def _bar(self, processed: int, total: int, final: bool, per_second: float) -> Table:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_column(no_wrap=True)
        done = f"{processed:,} / {total:,}{'' if final else '+'} files"
        if not final:
            done += " (still counting)"
        elif total:
            done += f"  {100 * processed // total}%"
        bar = ProgressBar(total=max(total, 1) if final else None, completed=processed)
        grid.add_row(
            "[bold]ingest", bar, f"{done}  {self._eta(processed, total, final, per_second)}"
        )
        return grid

    def _eta(self, processed: int, total: int, final: bool, per_second: float) -> str:
        if self.ended:
            return "ended"
        if not final:
            return "ETA after the count"
        if processed >= total:
            return "finishing"
        if per_second <= 0:
            return "ETA -"
        return f"ETA {human_duration((total - processed) / per_second)}"

    def _counts(self, bytes_per_second: float) -> str:
        t = self.tally
        skipped = t.skipped_done + t.skipped_failed + t.deduplicated + t.young
        parts = [
            f"sent {t.uploaded:,} files, {human_size(t.uploaded_bytes)} at "
            f"{human_size(bytes_per_second)}/s",
            f"skipped {skipped:,}",
            f"in flight {t.in_flight}",
            f"retries {t.retries:,}",
            f"failed {t.failed_total:,}",
        ]
        if t.left_total:
            parts.append(f"left for next run {t.left_total:,}")
        return " · ".join(parts)

    def _in_flight(self) -> list[Text]:
        from rich.text import Text

        names = list(self.tally.sending.values())[:SHOWN_IN_FLIGHT]
        room = max(self.width() - 4, 10)
        return [Text("  ↑ " + shorten_middle(name, room), no_wrap=True) for name in names]


@contextlib.asynccontextmanager
async def show(
    tally: Tally, *, enabled: bool, census: Census | None = None, interval: float = 0.25
) -> AsyncIterator[None]:
    """Show the live view for the duration of the block (when `enabled`)."""
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    view = View(tally, census, lambda: console.width)
    live = Live(
        console=console,
        get_renderable=view.render,
        refresh_per_second=1 / interval,
        transient=False,
        redirect_stderr=True,
        redirect_stdout=False,
    )
    with live:
        try:
            yield
        finally:
            view.ended = True
            live.refresh()
