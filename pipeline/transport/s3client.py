"""The S3 API through aiobotocore: a client set up from `AwsAccess`, one listing page, one
object streamed to a file, and botocore's errors judged into ours, once, here.

Imported only when a run meets its first `s3://` source (aiobotocore and botocore take a good
part of a second to import); `pipeline.transport.s3` drives it.

Where the settings come from. The edge reads the standard AWS variables from the environment
(`pipeline.core.aws`); here they are set on the botocore session as instance variables, which
outrank botocore's own reading of the environment, and explicit keys are set as the session's
credentials. The credential chain's environment step is removed (keys from the environment come
in through `AwsAccess`), and so is the instance-metadata step when `AWS_EC2_METADATA_DISABLED`
is true. What botocore still reads from the process environment itself is what ingest does not
name: container and web-identity credentials (`AWS_CONTAINER_CREDENTIALS_*`,
`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`), `AWS_CA_BUNDLE`, and the tuning variables of its
own (retries and checksums are set below and win). Files (`~/.aws/config`, `credentials`, SSO
caches) are read by botocore, as every AWS tool reads them.

Instance metadata. With no credentials found anywhere else, botocore asks the instance-metadata
service (the standard address, or `AWS_EC2_METADATA_SERVICE_ENDPOINT`), as every AWS SDK does on
EC2. It is bounded here: one attempt, `METADATA_TIMEOUT` seconds per request (a token request,
then the role's name), so on a host with no credentials and no metadata service a run stops
with "no AWS credentials found" (exit 5) within a few seconds instead of hanging.

Listing: ListObjectsV2 goes through aiobotocore (signing, endpoint and region rules, error
replies parsed), but the body of a page that succeeded is read here with ElementTree, not by
botocore's parser, which takes several times the CPU (most of it parsing every LastModified).
Keys are asked for URL-encoded, so any key (control characters included) survives the XML.

Fetching: GetObject, with `If-Match` on the listed ETag so that an object written again between
the listing and the download is reported rather than hashed under its old identity. botocore's
own retries and checksums are off: the run's retry policy retries, and SHA-256 is computed here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import html
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiofiles
import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from pipeline.core.aws import AwsAccess
from pipeline.core.errors import (
    IngestError,
    PermanentError,
    RunFatal,
    SourceChanged,
    TransientError,
)
from pipeline.core.objects import StoredObject, s3_url
from pipeline.transport.errors import describe

METADATA_TIMEOUT = 1.0  # seconds per request to the instance-metadata service
METADATA_ATTEMPTS = 1
CHUNK = 1 << 16
RAW_BODY = "IngestRawBody"  # where the listing's raw XML comes back in the parsed reply
_EMPTY_LIST = b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>'
# Codes that mean nothing in this run can be read with these credentials.
AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
    }
)
WRONG_REGION = frozenset(
    {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
)
SLOW_DOWN = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded"})
NO_CREDENTIALS = (
    "no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials)"
)


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """What the client is made with, besides `AwsAccess`."""

    timeout: float = 60.0  # seconds to connect, and of silence while reading
    max_connections: int = 16
    proxy: str | None = None  # the proxy to the store's endpoint, as curl would choose it
    ca_file: str | None = None  # the only CAs trusted (--ca-bundle, SSL_CERT_FILE); None: system


def _session(access: AwsAccess) -> AioSession:
    session = get_session()
    values: dict[str, Any] = {
        "profile": access.profile,
        "region": access.region,
        "config_file": access.config_file,
        "credentials_file": access.credentials_file,
        "metadata_service_timeout": METADATA_TIMEOUT,
        "metadata_service_num_attempts": METADATA_ATTEMPTS,
        "ec2_metadata_service_endpoint": access.metadata_endpoint,
    }
    for name, value in values.items():
        if value is not None:
            session.set_config_variable(name, value)
    if access.has_keys:
        assert access.secret_access_key is not None
        token = access.session_token.reveal() if access.session_token else None
        session.set_credentials(access.access_key_id, access.secret_access_key.reveal(), token)
    resolver = session.get_component("credential_provider")
    resolver.remove("env")  # keys from the environment come in through `access`, set above
    if access.metadata_disabled:
        resolver.remove("iam-role")
    # GetObject's reply is still parsed by botocore: its dates need not be (it costs).
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=lambda text: text
    )
    return session


@contextlib.asynccontextmanager
async def open_client(access: AwsAccess, settings: ClientSettings) -> AsyncIterator[Any]:
    """An S3 client for the block. Errors of the AWS configuration (a profile that does not
    exist) come out as `RunFatal`."""
    config = AioConfig(
        max_pool_connections=settings.max_connections,
        connect_timeout=settings.timeout,
        read_timeout=settings.timeout,
        retries={"mode": "standard", "max_attempts": 1},  # the run's policy retries
        # SHA-256 is computed here; S3-compatible stores differ in the checksums they know.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        proxies={"http": settings.proxy, "https": settings.proxy} if settings.proxy else None,
    )
    try:
        session = _session(access)
        creating = session.create_client(
            "s3",
            region_name=access.region,
            endpoint_url=access.endpoint_url,
            config=config,
            verify=settings.ca_file,
        )
        client = await creating.__aenter__()
    except (ProfileNotFound, BotoCoreError, ValueError) as exc:
        raise RunFatal(f"AWS configuration: {describe(exc)}") from exc
    client.meta.events.register("before-parse.s3.ListObjectsV2", _keep_list_body)
    try:
        yield client
    finally:
        await creating.__aexit__(None, None, None)


def _keep_list_body(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """botocore event handler: keep the raw XML of a listing page that succeeded, and hand
    botocore's parser an empty listing instead (its result is updated with the customized
    dict, so the raw bytes come back under RAW_BODY). Error replies are parsed as usual."""
    if response_dict.get("status_code") == 200:
        customized_response_dict[RAW_BODY] = response_dict["body"]
        response_dict["body"] = _EMPTY_LIST


# --- listing ------------------------------------------------------------------------------------


async def list_page(
    client: Any, bucket: str, prefix: str, token: str | None, page_size: int
) -> tuple[list[StoredObject], str | None]:
    """One page of the objects under `prefix`, and the token of the next (None at the end)."""
    params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": page_size, "EncodingType": "url"}
    if prefix:
        params["Prefix"] = prefix
    if token:
        params["ContinuationToken"] = token
    try:
        reply = await client.list_objects_v2(**params)
    except Exception as exc:
        raise judged(exc, bucket, listing=True) from exc
    return parse_page(reply[RAW_BODY])


def parse_page(body: bytes) -> tuple[list[StoredObject], str | None]:
    """A ListObjectsV2 page's objects (keys decoded) and its continuation token."""
    if b"<EncodingType>url</EncodingType>" in body:
        with contextlib.suppress(ValueError):
            return _parse_encoded(body)
    return _parse_xml(body)


def _parse_encoded(body: bytes) -> tuple[list[StoredObject], str | None]:
    """The fast path, for a page whose keys are URL-encoded (as they are asked for): such a
    key holds no `<` and no `&`, an ETag no `<`, a size digits only, so each field is the text
    between its tags, found with `bytes.index`, about three times less CPU than an XML parser
    building the tree. ValueError when the page is not as expected (then the XML parser
    reads it)."""
    head, *items = body.split(b"<Contents>")
    objects = []
    for item in items:
        key = _between(item, b"<Key>", b"</Key>").decode("utf-8")
        etag = _between(item, b"<ETag>", b"</ETag>").decode("utf-8")
        objects.append(
            StoredObject(
                _url_decoded(key),
                int(_between(item, b"<Size>", b"</Size>")),
                etag.replace("&quot;", "").replace("&#34;", "").strip('"'),
            )
        )
    tail = items[-1] if items else head
    if b"<IsTruncated>true</IsTruncated>" not in head + tail:
        return objects, None
    token = _between(head if b"<NextContinuationToken>" in head else tail, *_TOKEN)
    return objects, html.unescape(token.decode("utf-8"))


_TOKEN = (b"<NextContinuationToken>", b"</NextContinuationToken>")


def _between(text: bytes, start: bytes, end: bytes) -> bytes:
    begin = text.index(start) + len(start)
    return text[begin : text.index(end, begin)]


def _url_decoded(key: str) -> str:
    return urllib.parse.unquote_plus(key) if "%" in key or "+" in key else key


def _parse_xml(body: bytes) -> tuple[list[StoredObject], str | None]:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise TransientError(f"listing page unreadable: {exc}") from exc
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    key_tag, size_tag, etag_tag = ns + "Key", ns + "Size", ns + "ETag"
    unquote = urllib.parse.unquote_plus if root.findtext(ns + "EncodingType") == "url" else str
    objects = [
        StoredObject(
            unquote(item.findtext(key_tag) or ""),
            int(item.findtext(size_tag) or 0),
            (item.findtext(etag_tag) or "").strip('"'),
        )
        for item in root.iterfind(ns + "Contents")
    ]
    truncated = root.findtext(ns + "IsTruncated") == "true"
    return objects, root.findtext(ns + "NextContinuationToken") if truncated else None


# --- fetching -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Fetched:
    sha256: str
    size: int
    etag: str


async def get_into(
    client: Any, bucket: str, key: str, path: Path, *, etag: str | None, max_size: int
) -> Fetched:
    """Stream the object into `path`, hashing it; `etag`: the listed one (If-Match)."""
    args: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if etag:
        args["IfMatch"] = f'"{etag}"'
    try:
        reply = await client.get_object(**args)
    except Exception as exc:
        raise judged(exc, bucket, listed=etag is not None) from exc
    length = int(reply.get("ContentLength") or 0)
    if length > max_size:
        reply["Body"].close()
        raise PermanentError(
            f"object larger than --max-file-size ({_mb(length)} > {_mb(max_size)})"
        )
    try:
        sha256, size = await _stream(reply["Body"], path, max_size)
    except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
        raise TransientError(
            f"download of {s3_url(bucket, key)} cut short: {describe(exc)}"
        ) from exc
    return Fetched(sha256, size, str(reply.get("ETag") or "").strip('"'))


async def _stream(body: Any, path: Path, max_size: int) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    async with body, aiofiles.open(path, "wb") as out:
        while chunk := await body.read(CHUNK):
            size += len(chunk)
            if size > max_size:
                raise PermanentError(
                    f"object larger than --max-file-size (cut off past {_mb(max_size)})"
                )
            digest.update(chunk)
            await out.write(chunk)
    return digest.hexdigest(), size


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# --- errors -------------------------------------------------------------------------------------


def judged(
    exc: BaseException, bucket: str, *, listing: bool = False, listed: bool = False
) -> IngestError:
    """What a failed call on `bucket` means for the run: `RunFatal` (nothing in this bucket can
    be read: missing, credentials refused or absent), `TransientError` (try again),
    `SourceChanged` (the object was written again since it was listed) or `PermanentError`
    (this object cannot be had). `listing`: the call was a listing, where AccessDenied is the
    whole bucket's; `listed`: the object came from a listing (so a missing one was deleted)."""
    where = f"s3://{bucket}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return RunFatal(f"{where}: {NO_CREDENTIALS}")
    if isinstance(exc, ClientError):
        return _client_error(exc, where, listing=listing, listed=listed)
    if isinstance(exc, BotoConnectionError | HTTPClientError | aiohttp.ClientError | TimeoutError):
        return TransientError(f"{where}: {describe(exc)}", unreachable=True)
    if isinstance(exc, IngestError):
        return exc
    return PermanentError(f"{where}: {describe(exc)}")


def _client_error(exc: ClientError, where: str, *, listing: bool, listed: bool) -> IngestError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    fatal = _fatal(code, where, listing=listing)
    if fatal is not None:
        return fatal
    if code == "NoSuchKey" or (status == 404 and not listing):
        gone = "object deleted since it was listed" if listed else "no such object"
        return PermanentError(f"{gone} (NoSuchKey)")
    if code == "PreconditionFailed" or status == 412:
        return SourceChanged("object written again since it was listed (its ETag changed)")
    if code == "AccessDenied":
        return PermanentError("access denied to this object (AccessDenied)")
    if code == "InvalidObjectState":
        return PermanentError("object is archived (InvalidObjectState): restore it first")
    if code in SLOW_DOWN or status == 429:
        return TransientError(f"{where}: slow down ({code or status})", slowdown="rate")
    if status >= 500 or code in ("InternalError", "ServiceUnavailable", "RequestTimeout"):
        return TransientError(f"{where}: HTTP {status} {code}".rstrip(), unreachable=True)
    text = f"{code or f'HTTP {status}'} {error.get('Message') or ''}".rstrip()
    return RunFatal(f"{where}: {text}") if listing else PermanentError(text)


def _fatal(code: str, where: str, *, listing: bool) -> RunFatal | None:
    if code == "NoSuchBucket":
        return RunFatal(f"{where}: bucket does not exist")
    if code in AUTH_CODES:
        return RunFatal(f"{where}: credentials rejected ({code})")
    if code in WRONG_REGION:
        return RunFatal(f"{where}: wrong region for this bucket ({code}); set AWS_REGION")
    if code == "AccessDenied" and listing:
        return RunFatal(f"{where}: access denied (AccessDenied): check the credentials' rights")
    return None
