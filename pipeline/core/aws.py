"""Where a bucket's credentials, region and endpoint come from: the settings every AWS tool
reads, taken from the environment once, at the edge (`pipeline.config`), and handed down.

`AWS_PROFILE`, `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`,
`AWS_REGION` (or `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`),
`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_EC2_METADATA_DISABLED` and
`AWS_EC2_METADATA_SERVICE_ENDPOINT`. What is not set here is looked up by botocore in
`~/.aws/config` and `~/.aws/credentials` (a profile's keys, region, `endpoint_url`, SSO,
assume-role). The secret and the session token are `Secret`s: they never show themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pipeline.core.secret import Secret


@dataclasses.dataclass(frozen=True)
class AwsAccess:
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: Secret | None = dataclasses.field(default=None, repr=False)
    session_token: Secret | None = dataclasses.field(default=None, repr=False)
    region: str | None = None
    endpoint_url: str | None = None
    config_file: str | None = None
    credentials_file: str | None = None
    metadata_disabled: bool = False  # no instance-metadata credentials lookup at all
    metadata_endpoint: str | None = None  # where that lookup goes, if not the standard address

    @property
    def has_keys(self) -> bool:
        return bool(self.access_key_id and self.secret_access_key)

    def secrets(self) -> list[Secret]:
        """What logs must mask."""
        return [s for s in (self.secret_access_key, self.session_token) if s is not None]


def aws_access(environ: Mapping[str, str]) -> AwsAccess:
    """The AWS settings found in `environ` (empty values count as unset)."""

    def get(*names: str) -> str | None:
        for name in names:
            value = environ.get(name, "").strip()
            if value:
                return value
        return None

    secret, token = get("AWS_SECRET_ACCESS_KEY"), get("AWS_SESSION_TOKEN")
    return AwsAccess(
        profile=get("AWS_PROFILE"),
        access_key_id=get("AWS_ACCESS_KEY_ID"),
        secret_access_key=Secret(secret) if secret else None,
        session_token=Secret(token) if token else None,
        region=get("AWS_REGION", "AWS_DEFAULT_REGION"),
        endpoint_url=get("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        config_file=get("AWS_CONFIG_FILE"),
        credentials_file=get("AWS_SHARED_CREDENTIALS_FILE"),
        metadata_disabled=(get("AWS_EC2_METADATA_DISABLED") or "").lower() == "true",
        metadata_endpoint=get("AWS_EC2_METADATA_SERVICE_ENDPOINT"),
    )
