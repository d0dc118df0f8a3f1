"""Random access to the bytes being probed, from an open file or from memory alike.

Parsers read only the ranges they need, so probing a file keeps memory flat whatever its size,
and `probe_bytes` gives the same verdicts as `probe` on the same bytes.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Protocol


class Reader(Protocol):
    @property
    def size(self) -> int: ...

    def read(self, offset: int, count: int) -> bytes:
        """Up to `count` bytes from `offset`; fewer at the end, none past it."""
        ...


class FileReader:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._size = os.fstat(handle.fileno()).st_size

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, count: int) -> bytes:
        if offset >= self._size or count <= 0:
            return b""
        self._handle.seek(offset)
        return self._handle.read(count)


class BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, count: int) -> bytes:
        return self._data[offset : offset + max(count, 0)]
