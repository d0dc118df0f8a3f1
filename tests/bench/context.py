"""What the sections of a bench run share: the work folder, the pool of small files, the
catalogues made from it, and one sandbox per answer latency (started when first needed)."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from tests.bench import data
from tests.bench.harness import Sandbox


@dataclasses.dataclass
class Context:
    work: Path
    pool: list[Path] = dataclasses.field(default_factory=list)
    sandboxes: dict[float, Sandbox] = dataclasses.field(default_factory=dict)
    notes: dict[str, float] = dataclasses.field(default_factory=dict)  # numbers rows share
    _trees: dict[int, Path] = dataclasses.field(default_factory=dict)
    _ids: itertools.count[int] = dataclasses.field(default_factory=itertools.count)

    def sandbox(self, latency: float = 0.0) -> Sandbox:
        if latency not in self.sandboxes:
            self.sandboxes[latency] = Sandbox("--latency", f"{latency:g}")
        return self.sandboxes[latency]

    def tree(self, count: int) -> Path:
        """A catalogue of `count` unique small files (made once, then shared)."""
        if count not in self._trees:
            if len(self.pool) < count:
                self.pool += data.small_pool(self.work / "pool", count, start=len(self.pool))
            self._trees[count] = data.link_tree(self.pool, self.work / f"tree-{count}", count)
        return self._trees[count]

    def listing(self, count: int) -> Path:
        """The catalogue's files, one a line."""
        out = self.work / f"list-{count}.txt"
        if not out.exists():
            data.file_list(self.tree(count), out)
        return out

    def ledger(self, name: str) -> Path:
        """A fresh ledger path, never used before in this bench run."""
        folder = self.work / "ledgers"
        folder.mkdir(exist_ok=True)
        return folder / f"{name}-{next(self._ids)}.db"

    def close(self) -> None:
        for sandbox in self.sandboxes.values():
            sandbox.stop()
