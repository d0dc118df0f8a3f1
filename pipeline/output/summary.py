"""The summary a run prints at its end (also kept in the ledger, and the dry run's report)."""

from __future__ import annotations

from pipeline.run.tally import Tally


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def render_summary(tally: Tally, *, elapsed: float, outcome: str, dry_run: bool) -> str:
    lines = []
    if dry_run:
        lines.append("dry run: nothing was uploaded and the ledger was not changed")
        total = sum(tally.would_upload.values())
        total_bytes = sum(tally.would_upload_bytes.values())
        lines.append(f"  would upload: {total} files, {human_size(total_bytes)}")
        for purpose in sorted(tally.would_upload):
            lines.append(
                f"    {purpose:<13}{tally.would_upload[purpose]:>8} files  "
                f"{human_size(tally.would_upload_bytes[purpose])}"
            )
        if tally.converted:
            lines.append(f"  would convert to WAV: {_by_format(tally)}")
    rate = tally.uploaded_bytes / elapsed if elapsed > 0 else 0.0
    lines += [
        f"run {outcome} in {elapsed:.1f} s",
        f"  entries seen      {tally.seen}",
        f"  uploaded          {tally.uploaded} "
        f"({human_size(tally.uploaded_bytes)}, {human_size(rate)}/s)",
        f"  same bytes again  {tally.deduplicated}",
        f"  skipped, done     {tally.skipped_done}",
        f"  skipped, failed   {tally.skipped_failed} (earlier runs; --retry-failed retries them)",
        f"  failed now        {tally.failed_total}",
    ]
    lines += [f"      {n:>6}  {reason}" for reason, n in tally.failed.most_common(8)]
    lines.append(f"  left for next run {tally.left_total}")
    lines += [f"      {n:>6}  {reason}" for reason, n in tally.left.most_common(8)]
    lines.append(f"  retries           {tally.retries}")
    if tally.converted and not dry_run:
        lines.append(f"  converted to WAV  {_by_format(tally)}")
    if tally.young:
        lines.append(f"  too new, left     {tally.young} (modified less than --min-age ago)")
    if tally.elsewhere:
        lines.append(f"  done by other runs {tally.elsewhere} (held by a live run on this ledger)")
    if tally.crawl.ignored or tally.crawl.hidden or tally.crawl.loops:
        lines.append(
            f"  not audio, ignored {tally.crawl.ignored}; hidden skipped {tally.crawl.hidden}; "
            f"symlink loops cut {tally.crawl.loops}"
        )
    return "\n".join(lines)


def _by_format(tally: Tally) -> str:
    """`3 files (flac 2, aiff 1)`: the sources decoded to WAV, by what they were."""
    total = sum(tally.converted.values())
    parts = ", ".join(f"{name} {n}" for name, n in tally.converted.most_common())
    return f"{total} files ({parts})"
