"""A source's bytes, found: hashed, where they are, and (once probed) what they are."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from pipeline.content.body import Body
from pipeline.content.probe import AudioInfo


@dataclasses.dataclass(frozen=True)
class Located:
    """A source's bytes, found and hashed: a local file, or a temporary copy of a download (from
    a URL, or an object from a bucket)."""

    sha256: str
    body: Body
    audio: AudioInfo | None = None  # None until probed
    temporary: Path | None = None  # a download's temporary file, removed by `discard`
    on_discard: Callable[[], None] | None = None  # called once, when the temporary file goes
    etag: str | None = None  # an object's ETag, as the store sent it with the bytes

    @property
    def size(self) -> int:
        return self.body.size

    def discard(self) -> None:
        if self.temporary is None:
            return
        try:
            self.temporary.unlink()
        except FileNotFoundError:
            return  # discarded already
        if self.on_discard is not None:
            self.on_discard()
