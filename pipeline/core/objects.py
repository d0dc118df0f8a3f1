"""Objects in a bucket: `s3://bucket/key` URLs, and an object as a listing names it.

An `s3://` URL carries the key as it is (as the AWS CLI prints it), not percent-encoded: a key is
any UTF-8 text, spaces, `+`, `%`, `//`, `..` and control characters included. A bucket name is
checked only for what would make the URL ambiguous; the store itself says whether it exists.
"""

from __future__ import annotations

import re
from typing import NamedTuple

SCHEME = "s3://"
# What S3 (and the S3-compatible stores) accept as a bucket name, loosely: lowercase letters,
# digits, dots, dashes and underscores (legacy buckets), 3 to 255 characters.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,254}", re.IGNORECASE)


class StoredObject(NamedTuple):
    """One object as a listing page names it. `etag` is without its quotes; it changes when the
    object is written again (a multipart or encrypted object's ETag is no MD5: it is only
    compared, never taken for a hash). A tuple: a listing makes a thousand a page."""

    key: str
    size: int
    etag: str


def is_s3_url(text: str) -> bool:
    return text[:5].lower() == SCHEME


def split_s3_url(text: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key"); ValueError, saying why, when the text
    names no bucket."""
    if not is_s3_url(text):
        raise ValueError(f"not an s3:// URL: {text}")
    bucket, _, key = text[len(SCHEME) :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"no valid bucket name in {text} (s3://BUCKET/KEY)")
    return bucket, key


def s3_url(bucket: str, key: str) -> str:
    return f"{SCHEME}{bucket}/{key}"


def folder_prefix(key: str) -> str:
    """A prefix named as a folder: whole path segments, so `cat` lists `cat/...` and not
    `cat2/...`; the bucket's root stays empty."""
    return key if not key or key.endswith("/") else key + "/"
