"""`ingest run s3://bucket/prefix/`: the real CLI against a real S3 implementation on loopback
(moto's server, IAM enforced) and the sandbox, with a real SQLite file or PostgreSQL database.

Every CLI run here gets only the AWS variables of `S3Server.aws_env` (no ~/.aws of the
developer's) and `AWS_EC2_METADATA_DISABLED=true`, except the one test that shows the
instance-metadata lookup is bounded: it points that lookup at a loopback port that never answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    SandboxServer,
    cli_env,
    export,
    run_cli,
    start_cli,
    start_sandbox,
    stop_sandbox,
    wait_until,
)
from tests.netlab import needs_tinyproxy, tinyproxy
from tests.s3server import S3Server, wav_bytes

pytestmark = pytest.mark.e2e

ODD = ["song/a b.wav", "song/Café ünï 日本.wav", "voice/x+y=z&q?#.wav", "voice/50% off.wav"]


def env_for(s3: S3Server, user: str = "ingest", **extra: str) -> dict[str, str]:
    base = {k: v for k, v in cli_env().items() if not k.startswith("AWS_")}
    return base | s3.aws_env(user) | extra


def run(tmp_path: Path, sandbox: SandboxServer, env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return run_cli("run", *args, "--api-url", sandbox.url, cwd=tmp_path, env=env)


def catalogue(keys: list[str], *, seed: int = 0) -> dict[str, bytes]:
    return {key: wav_bytes(seed=seed + n) for n, key in enumerate(keys)}


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def paged(s3: S3Server) -> str:
    """1,050 objects that are not audio, then one that is: it comes on the second page."""
    objects = {f"cat/song/{i:05d}.txt": b"not audio" for i in range(1050)}
    return s3.bucket("paged", objects | {"cat/song/zz-last.wav": wav_bytes(seed=99)})


def test_a_prefix_is_uploaded_as_a_folder_and_a_rerun_downloads_nothing(
    tmp_path: Path, s3: S3Server, sandbox: SandboxServer
) -> None:
    extra = {"cat/.hidden/h.wav": b"x", "cat/cover.jpg": b"x", "other/song/x.wav": wav_bytes()}
    s3.bucket("label", {f"cat/{k}": v for k, v in catalogue(ODD).items()} | extra)
    first = run(tmp_path, sandbox, env_for(s3), "s3://label/cat")
    assert first.code == 0, first.stderr
    assert "hidden skipped 1" in first.stdout and "not audio, ignored 1" in first.stdout
    sent = {r["filename"]: r["purpose"] for r in sandbox.requests() if r["outcome"] == "ok"}
    assert sent == {key.split("/")[-1]: key.split("/")[0] for key in ODD}
    records = {r["source"]: r for r in export(tmp_path)}
    assert sorted(records) == sorted(f"s3://label/cat/{key}" for key in ODD)
    assert {(r["kind"], r["status"]) for r in records.values()} == {("s3", "done")}
    # The rerun lists and skips: as a user who may list but not read, it still succeeds.
    again = run(tmp_path, sandbox, env_for(s3, "lister"), "s3://label/cat/")
    assert again.code == 0, again.stderr
    assert "skipped, done     4" in again.stdout
    assert len(sandbox.requests()) == len(ODD)


def test_a_listing_of_more_than_1000_keys_is_read_to_its_end(
    tmp_path: Path, s3: S3Server, sandbox: SandboxServer, paged: str
) -> None:
    result = run(tmp_path, sandbox, env_for(s3), f"s3://{paged}/cat/")
    assert result.code == 0, result.stderr
    assert "not audio, ignored 1050" in result.stdout
    assert [r["filename"] for r in sandbox.requests()] == ["zz-last.wav"]


def test_an_object_written_again_between_runs_is_uploaded_again(
    tmp_path: Path, s3: S3Server, sandbox: SandboxServer
) -> None:
    s3.bucket("rewritten", catalogue(["song/a.wav", "song/b.wav"]))
    assert run(tmp_path, sandbox, env_for(s3), "s3://rewritten").code == 0
    s3.put("rewritten", [("song/b.wav", wav_bytes(seed=50))])
    again = run(tmp_path, sandbox, env_for(s3), "s3://rewritten")
    assert again.code == 0, again.stderr
    assert [r["filename"] for r in sandbox.requests()[2:]] == ["b.wav"]
    records = {r["source"]: r for r in export(tmp_path)}
    assert records["s3://rewritten/song/b.wav"]["sha256"] == sandbox.requests()[2]["sha256"]


def test_an_object_deleted_between_list_and_fetch_is_failed_and_the_run_goes_on(
    tmp_path: Path, s3: S3Server
) -> None:
    keys = [f"song/t{i:02d}.wav" for i in range(12)]
    s3.bucket("deleting", catalogue(keys))
    slow = start_sandbox(tmp_path, "--latency", "0.7")
    try:
        args = ["run", "s3://deleting/", "--api-url", slow.url, "--concurrency", "1"]
        process = start_cli(tmp_path, *args, env=env_for(s3))
        wait_until(lambda: len(slow.requests()) >= 1)  # listed; the last ones not yet fetched
        s3.client().delete_object(Bucket="deleting", Key=keys[-1])
        out, err = process.communicate(timeout=120)
        assert process.returncode == 1, err
        assert len(slow.accepted()) == len(keys) - 1
    finally:
        stop_sandbox(slow)
    records = {r["source"]: r for r in export(tmp_path)}
    gone = records[f"s3://deleting/{keys[-1]}"]
    assert (gone["status"], gone["error"]) == (
        "failed",
        "object deleted since it was listed (NoSuchKey)",
    )
    assert sum(r["status"] == "done" for r in records.values()) == len(keys) - 1


def test_a_missing_bucket_exits_5_in_one_line_and_records_nothing_failed(
    tmp_path: Path, s3: S3Server, sandbox: SandboxServer
) -> None:
    result = run(tmp_path, sandbox, env_for(s3), "s3://no-such-bucket/cat/", "-q")
    assert result.code == 5, result.stderr
    assert result.stderr.strip() == (
        "ingest: s3://no-such-bucket: bucket does not exist (entries stay pending)"
    )
    assert export(tmp_path) == [] and sandbox.requests() == []


@pytest.mark.parametrize(
    "change, code",
    [
        ({"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE"}, "InvalidAccessKeyId"),
        ({}, "SignatureDoesNotMatch"),
    ],
)
def test_wrong_credentials_exit_5_in_one_line_without_the_secret(
    tmp_path: Path, s3: S3Server, sandbox: SandboxServer, change: dict[str, str], code: str
) -> None:
    s3.bucket(f"creds-{code.lower()}", catalogue(["song/a.wav"]))
    secret = "wJalrXUtnFEMI-not-the-right-secret"
    env = env_for(s3, AWS_SECRET_ACCESS_KEY=secret, **change)
    result = run(tmp_path, sandbox, env, f"s3://creds-{code.lower()}/")
    assert result.code == 5, result.stderr
    assert last_line(result.stderr) == (
        f"ingest: s3://creds-{code.lower()}: credentials rejected ({code}) (entries stay pending)"
    )
    assert "Traceback" not in result.stderr and secret not in result.stderr + result.stdout
    assert export(tmp_path) == []


def test_a_manifest_may_name_objects_in_a_bucket(
    tmp_path: Path, s3: S3Server, sandbox: SandboxServer
) -> None:
    s3.bucket("rows", catalogue(["any/Café del Mar.wav", "any/b.wav"]))
    (tmp_path / "m.csv").write_text(
        "source,purpose\n"
        "s3://rows/any/Café del Mar.wav,voice\n"
        "s3://rows/any/b.wav,song\n"
        "s3://rows/any/missing.wav,song\n"
        "s3://rows/any/,song\n",
        encoding="utf-8",
    )
    result = run(tmp_path, sandbox, env_for(s3), "m.csv")
    assert result.code == 1, result.stderr  # two bad rows, recorded failed
    sent = {r["filename"]: r["purpose"] for r in sandbox.requests()}
    assert sent == {"Café del Mar.wav": "voice", "b.wav": "song"}
    errors = {r["source"]: r["error"] for r in export(tmp_path) if r["status"] == "failed"}
    assert errors["s3://rows/any/missing.wav"] == "no such object (NoSuchKey)"
    assert "names no object" in errors["s3://rows/any/"]
    again = run(tmp_path, sandbox, env_for(s3), "m.csv")
    assert again.code == 0 and len(sandbox.requests()) == 2  # done rows are not fetched again


@pytest.fixture
def silent_metadata() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback port that takes connections and never answers: an instance-metadata service
    that hangs. Its address, and the first bytes of each request it got."""
    heard: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            heard.append(conn.recv(100))
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/", heard
    listener.close()
    for conn in held:
        conn.close()


def test_no_credentials_and_a_silent_metadata_service_exit_5_within_seconds(
    tmp_path: Path, s3: S3Server, sandbox: SandboxServer, silent_metadata: tuple[str, list[bytes]]
) -> None:
    address, heard = silent_metadata
    env = env_for(s3, AWS_EC2_METADATA_SERVICE_ENDPOINT=address)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED"):
        del env[name]
    started = time.monotonic()
    result = run(tmp_path, sandbox, env, "s3://anything/", "-q")
    elapsed = time.monotonic() - started
    assert result.code == 5, result.stderr
    assert result.stderr.startswith("ingest: s3://anything: no AWS credentials found")
    assert heard and heard[0].startswith(b"PUT /latest/api/token")  # it asked, here only
    assert elapsed < 15, elapsed  # one attempt, 1 s per request, plus start-up


def test_two_runs_on_one_postgresql_ledger_share_a_bucket_and_send_each_object_once(
    tmp_path: Path, s3: S3Server, pg_url: str
) -> None:
    keys = [f"song/d{i // 10}/t{i:03d}.wav" for i in range(60)]
    s3.bucket("fleet", catalogue(keys))
    slow = start_sandbox(tmp_path, "--latency", "0.1")
    try:
        assert run_cli("db", "upgrade", "--db", pg_url, cwd=tmp_path).code == 0
        args = ["run", "s3://fleet/song/", "--db", pg_url, "--api-url", slow.url]
        runs = [start_cli(tmp_path, *args, "--concurrency", "4", env=env_for(s3)) for _ in "ab"]
        outputs = [process.communicate(timeout=180) for process in runs]
        assert [process.returncode for process in runs] == [0, 0], outputs
        sent = slow.accepted()
        assert len(sent) == 60 and set(sent.values()) == {1}
        shares = [int(out.split("uploaded")[1].split()[0]) for out, _ in outputs]
        assert sum(shares) == 60 and all(shares), shares
    finally:
        stop_sandbox(slow)
    assert {r["status"] for r in export(tmp_path, pg_url)} == {"done"}


@needs_tinyproxy
def test_a_bucket_is_listed_and_fetched_through_the_proxy_its_endpoint_takes(
    tmp_path: Path, s3: S3Server, sandbox: SandboxServer
) -> None:
    """The store's requests take the proxy given to the run (`--proxy`, which botocore does not
    read by itself), as the uploads do."""
    s3.bucket("proxied", {f"cat/song/t{i}.wav": wav_bytes(seed=200 + i) for i in range(3)})
    with tinyproxy(tmp_path / "proxy") as proxy:
        env = env_for(s3)
        result = run(tmp_path, sandbox, env, "s3://proxied/cat/", "--proxy", proxy.url)
        through = proxy.requests()
    assert result.code == 0, result.stderr
    assert len(sandbox.accepted()) == 3
    store = s3.endpoint.split("://", 1)[1]
    listed = [r for r in through if r.startswith(f"GET {s3.endpoint}/proxied?")]
    fetched = [r for r in through if r.startswith(f"GET {s3.endpoint}/proxied/cat/song/t")]
    assert listed and len(fetched) == 3, through
    assert all(store in r or "/v2/generate" in r for r in through)
