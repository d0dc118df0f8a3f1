"""The probe's cost per file, by kind (`tests/bench_probe.py` prints the same at more length):
a header read where the header can be trusted (a WAV, an MP3 whose Info tag matches its bytes),
every frame header walked where it cannot (a VBR MP3 written without a Xing tag). Medians of
repeated calls on files in the page cache; kept for reference, so that a slower probe shows."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

from pipeline.content.probe import probe
from tests.bench.context import Context
from tests.bench.table import Goal, line, section
from tests.bench_probe import make_files, median_us


def probe_cost(ctx: Context) -> list[Goal]:
    work = "probe, per file: 22 KB WAV; 5 MB CBR MP3 (Info tag); 5 MB VBR MP3 (no Xing tag)"
    section(work)
    with tempfile.TemporaryDirectory(prefix="bench-probe-", dir=ctx.work) as tmp:
        costs = {
            name: median_us(partial(probe, path)) for name, path in make_files(Path(tmp)).items()
        }
    for name, cost in costs.items():
        line(f"{name:<28} {cost:8.0f} us")
    shown = "; ".join(f"{cost:,.0f} us" for cost in costs.values())
    return [Goal(work, shown, "-", "-", "(kept for reference)", None)]
