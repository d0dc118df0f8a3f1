"""What a probe found: the type shared by the container readers and the probe's callers."""

from __future__ import annotations

import dataclasses
import enum
from typing import Literal

from pipeline.core.errors import PermanentError

Format = Literal["wav", "mp3"]

CONTENT_TYPES: dict[Format, str] = {"wav": "audio/wav", "mp3": "audio/mpeg"}


class LengthFrom(enum.StrEnum):
    """Where a length came from."""

    HEADER = "header"  # a count in the header, checked against the bytes present
    COUNT = "count"  # counted in the bytes present: WAV data to the end, MP3 frames walked


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    format: Format
    duration: float  # seconds, as a full decode plays them
    codec: str = ""  # for people: "PCM 16-bit", "MPEG-1 Layer III", ...
    length_from: LengthFrom = LengthFrom.HEADER

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


class OtherFormat(PermanentError):
    """Audio the service does not take as it is, though a decoder may read it: another
    container (FLAC, AIFF, MP4, Ogg, ...), a WAV holding a compressed codec, or RIFX. `kind`
    names it for people: "FLAC", "WAV holding IMA ADPCM"."""

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.kind = kind
