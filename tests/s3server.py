"""A real S3 implementation on loopback for the tests and benchmarks: moto's server, in a
subprocess of its own (so it does not share the test's interpreter), with IAM enforced so that
wrong credentials are really refused.

Enforcing IAM: while moto still lets everyone in, three users are made through its IAM API
(`ingest` with every S3 right, `lister` who may only list, `weak` with no S3 right at all); then
`POST /moto-api/reset-auth 0` turns enforcement on. From then on an unknown key id gets
InvalidAccessKeyId, a wrong secret SignatureDoesNotMatch, and `weak` AccessDenied. (moto answers
500 to presigned requests once enforcing: only header-signed requests are tested.)

Nothing here may reach an address off loopback: every client is given an endpoint, a region and
keys, and `AWS_EC2_METADATA_DISABLED=true` is set for this process and the CLI's (`aws_env`), so
no SDK looks for instance-metadata credentials.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.aws import AwsAccess
from pipeline.core.secret import Secret
from tests.processes import stop_process

REGION = "us-east-1"
POLICIES = {
    "ingest": ["s3:*"],
    "lister": ["s3:ListBucket"],
    "weak": ["sqs:ListQueues"],
}


@dataclasses.dataclass
class User:
    key_id: str
    secret: str


@dataclasses.dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]
    users: dict[str, User] = dataclasses.field(default_factory=dict)

    def client(self, user: str = "ingest") -> Any:
        import boto3

        who = self.users.get(user, User("test", "test"))
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=who.key_id,
            aws_secret_access_key=who.secret,
        )

    def access(self, user: str = "ingest", **changes: Any) -> AwsAccess:
        """What the edge would read from `aws_env(user)`, for in-process tests."""
        who = self.users[user]
        base = AwsAccess(
            access_key_id=who.key_id,
            secret_access_key=Secret(who.secret),
            region=REGION,
            endpoint_url=self.endpoint,
            config_file="/nonexistent/aws-config",
            credentials_file="/nonexistent/aws-credentials",
            metadata_disabled=True,
        )
        return dataclasses.replace(base, **changes)

    def aws_env(self, user: str = "ingest") -> dict[str, str]:
        """The environment a CLI run needs to reach this server as `user`: only these AWS
        variables, no ~/.aws of the developer's, no instance-metadata lookups."""
        who = self.users[user]
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": who.key_id,
            "AWS_SECRET_ACCESS_KEY": who.secret,
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def bucket(self, name: str, objects: dict[str, bytes] | None = None) -> str:
        """A new bucket, filled with `objects` (16 at a time: moto takes ~130 a second)."""
        client = self.client()
        client.create_bucket(Bucket=name)
        self.put(name, (objects or {}).items())
        return name

    def put(self, bucket: str, objects: Iterable[tuple[str, bytes]]) -> None:
        client = self.client()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects
                )
            )

    def stop(self) -> None:
        stop_process(self.process)


def no_aws_environment() -> dict[str, str]:
    """This process's environment without any AWS_ variable of the developer's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def start_s3(*, auth: bool = True) -> S3Server:
    """moto's server on a free loopback port; IAM enforced unless `auth` is False."""
    from tests.conftest import free_port

    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("moto_server not installed: pip install 'moto[server]' (make install does)")
    port = free_port()
    process = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        env=no_aws_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = S3Server(f"http://127.0.0.1:{port}", process)
    try:
        _wait_up(server)
        if auth:
            _enforce(server)
        else:
            server.users = {name: User("test", "test") for name in POLICIES}  # all let in
    except BaseException:
        server.stop()
        raise
    return server


def _wait_up(server: S3Server, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(server.endpoint + "/moto-api/", timeout=1) as resp:
                resp.read()
            return
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.05)


def _enforce(server: S3Server) -> None:
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    for name, actions in POLICIES.items():
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        server.users[name] = User(key["AccessKeyId"], key["SecretAccessKey"])
    request = urllib.request.Request(
        server.endpoint + "/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},  # with a form type, Flask eats the body
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        resp.read()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """One moto server for the session; each test makes buckets of its own."""
    server = start_s3()
    try:
        yield server
    finally:
        server.stop()


def wav_bytes(seconds: float = 10.5, *, seed: int = 0, rate: int = 2000) -> bytes:
    """A small WAV the sandbox accepts (10.5 s of 8-bit tone at 2 kHz: about 21 KB)."""
    from pipeline.sandbox.samples import write_wav

    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    path = write_wav(folder / f"ingest-wav-{os.getpid()}-{seed}.wav", seconds, seed=seed, rate=rate)
    try:
        return path.read_bytes()
    finally:
        path.unlink()
