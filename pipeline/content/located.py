"""A source's bytes, found: hashed, where they are, and (once probed) what they are; and, for a
source the service does not take as it is, the WAV it was decoded into, which is what is sent."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from pipeline.content.body import Body
from pipeline.content.probe import AudioInfo


@dataclasses.dataclass(frozen=True)
class Converted:
    """The WAV a source was decoded into: the bytes sent in its place."""

    body: Body
    sha256: str
    converted_from: str  # flac, aiff, alac, aac, ... (`pipeline.content.decode.Decoded`)


@dataclasses.dataclass(frozen=True)
class Located:
    """A source's bytes, found and hashed: a local file, or a temporary copy of a download (from
    a URL, or an object from a bucket). `sha256` and `body` are always the source's own: its
    content key, and the size and mtime that tell an unchanged file on the next run."""

    sha256: str
    body: Body
    audio: AudioInfo | None = None  # None until probed
    temporary: Path | None = None  # a temporary file (a download, a decoded WAV): `discard`
    on_discard: Callable[[], None] | None = None  # called once, when the temporary file goes
    etag: str | None = None  # an object's ETag, as the store sent it with the bytes
    converted: Converted | None = None  # the WAV sent in the source's place

    @property
    def size(self) -> int:
        return self.body.size

    @property
    def sent(self) -> Body:
        """What is uploaded: the decoded WAV if there is one, else the source's bytes."""
        return self.converted.body if self.converted is not None else self.body

    @property
    def path(self) -> Path | None:
        """Where the source's bytes are on disk (a download's temporary copy, or the file);
        asked before any conversion."""
        if self.temporary is not None:
            return self.temporary
        return Path(self.body.path) if self.body.path is not None else None

    def discard(self) -> None:
        if self.temporary is None:
            return
        try:
            self.temporary.unlink()
        except FileNotFoundError:
            return  # discarded already
        if self.on_discard is not None:
            self.on_discard()
