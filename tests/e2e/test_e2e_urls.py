"""End to end: manifest URLs reach the file server byte for byte as the manifest wrote them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline.sandbox.samples import write_wav
from tests.conftest import SandboxServer, export, run_cli
from tests.fileserver import FileServer

pytestmark = pytest.mark.e2e

SIGNED_QUERY = "?sig=a%2Fb%3D%3D&X-Amz-Credential=AKIA%2F20261126%2Fus-east-1"


def test_signed_urls_and_redirects_go_out_exactly_as_written(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    served = tmp_path / "served"
    for seed, name in enumerate(["a.wav", "Abc.wav", "my song.wav", "c.wav"]):
        write_wav(served / name, 10.5, seed=seed)
    signed_location = "/files/c.wav?X-Amz-Signature=f00d%2Bba%2F&X-Amz-Expires=300"
    written = ["/files/a.wav" + SIGNED_QUERY, "/files/%41bc.wav", "/files/my%20song.wav"]
    with FileServer(served) as server:
        server.redirects["/signed/c"] = server.url(signed_location)  # 302, absolute Location
        urls = [server.url(target) for target in [*written, "/signed/c?token=x%2Fy"]]
        with (tmp_path / "m.csv").open("w", newline="", encoding="utf-8") as out:
            rows = csv.writer(out)
            rows.writerow(["url", "purpose"])
            rows.writerows([url, "song"] for url in urls)
        result = run_cli("run", "m.csv", "--api-url", sandbox.url, cwd=tmp_path)
        targets = list(server.targets)
    assert result.code == 0, result.stderr
    assert targets.count("/signed/c?token=x%2Fy") == 1
    assert sorted(targets) == sorted([*written, "/signed/c?token=x%2Fy", signed_location])
    records = export(tmp_path)
    assert sorted(r["source"] for r in records) == sorted(urls)  # the ledger keeps them as written
    assert {r["status"] for r in records} == {"done"}
