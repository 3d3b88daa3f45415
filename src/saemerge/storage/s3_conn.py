"""The S3 connection: a shared boto3 client per environment, transfer settings, and error messages.

Endpoint and credentials come from the standard AWS environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``) or ``AWS_PROFILE``.
On a cluster the S3 secret is mounted as files, one per key, at :data:`S3_SECRET_MOUNT`
(``SAEMERGE_S3_SECRET_DIR`` names another directory): :func:`load_secret_dir`. A variable
already set in the environment wins over its file, so a local run, the docker runner and a
one-off override keep working as before.
Transfer settings come from ``SAEMERGE_S3_MULTIPART_THRESHOLD`` / ``..._CHUNKSIZE`` (bytes, or
with a unit such as 64M; see :func:`saemerge.util.units.parse_size`), ``SAEMERGE_S3_CONCURRENCY`` and
``SAEMERGE_S3_MAX_ATTEMPTS`` and ``SAEMERGE_S3_READ_TIMEOUT`` (seconds, default 120), read at
each call. A request unanswered for 10 s is reported while it waits (:mod:`.s3_wait`). Transient errors (throttling, 5xx, dropped
connections) are retried with botocore's standard backoff; permanent ones (403, missing bucket,
bad keys) are not, and :func:`s3_errors` turns them into a one-line :class:`SaeMergeError`
naming the endpoint and the access key id (never the secret).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from saemerge.errors import SaeMergeError
from saemerge.storage.s3_wait import Waits
from saemerge.util.units import parse_size

MIB = 1 << 20
# A client is cached per value of these, so a changed environment (tests, a second store)
# gets a new client.
_AWS_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
# The keys of the S3 secret (the Kubernetes secret's keys, named like the variables they set).
S3_SECRET_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
# Where a cluster step's pod mounts the secret, one file per key (pipeline/common.py), and the
# variable that names another directory instead.
S3_SECRET_MOUNT = "/saemerge-s3"
S3_SECRET_DIR_VAR = "SAEMERGE_S3_SECRET_DIR"
_CLIENTS: dict[tuple, Conn] = {}
_CLIENTS_LOCK = threading.Lock()
_MISSING = {"404", "NoSuchKey", "NotFound"}
_HINTS = {
    "SignatureDoesNotMatch": "the secret access key is wrong for this access key id",
    "InvalidAccessKeyId": "this access key id is not known to the endpoint",
    "AccessDenied": "access denied for this identity (read-only credentials?)",
    "403": "access denied (wrong credentials, or no permission)",
    "NoSuchBucket": "the bucket does not exist",
    "InvalidBucketName": "invalid bucket name",
    "NoSuchKey": "no such object",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is invalid",
}


@dataclass(frozen=True)
class Conn:
    """A client with what error messages name about it."""

    client: Any
    endpoint: str
    access_key: str  # the id only: it goes into messages, the secret never does


def _env_size(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return parse_size(raw, what=name) if raw else default


def transfer_config():
    """boto3 TransferConfig from SAEMERGE_S3_* (multipart threshold/chunk size, concurrency)."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=_env_size("SAEMERGE_S3_MULTIPART_THRESHOLD", 16 * MIB),
        multipart_chunksize=_env_size("SAEMERGE_S3_MULTIPART_CHUNKSIZE", 16 * MIB),
        max_concurrency=_env_size("SAEMERGE_S3_CONCURRENCY", 8),
        use_threads=True,
    )


def _quiet_aws_loggers() -> None:
    """Keep botocore & co. out of DEBUG when the app turns DEBUG on for everything (`-v`).

    Their debug logs carry request headers, session tokens among them. A level the application
    set explicitly is left alone; SAEMERGE_AWS_DEBUG=1 lets them through.
    """
    if os.environ.get("SAEMERGE_AWS_DEBUG") == "1":
        return
    for name in ("botocore", "boto3", "s3transfer", "urllib3"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


def load_secret_dir(env: MutableMapping[str, str] | None = None) -> list[str]:
    """Set the S3 variables from the mounted secret's files: in the directory that
    ``SAEMERGE_S3_SECRET_DIR`` names, else at :data:`S3_SECRET_MOUNT` when it is there (a
    cluster step; the pipeline mounts it there and names it nowhere, as every variable is
    written into the Workflow once per task and attempt).

    Each of :data:`S3_SECRET_KEYS` whose file is in the directory sets the variable of that
    name, unless the environment already has it (non-empty): the environment wins. A key without
    a file is left unset (the region, say). Values are read as written, less a trailing newline;
    nothing of them is logged or put into a message.

    Returns:
        the names set from files (never their values).

    Raises:
        SaeMergeError: ``SAEMERGE_S3_SECRET_DIR`` names a directory that is not there.
    """
    env = os.environ if env is None else env
    where = env.get(S3_SECRET_DIR_VAR)
    if not where:
        if not os.path.isdir(S3_SECRET_MOUNT):
            return []
        where = S3_SECRET_MOUNT
    if not os.path.isdir(where):
        raise SaeMergeError(f"{S3_SECRET_DIR_VAR}={where}: no such directory (is the S3 secret mounted there?)")
    loaded = []
    for name in S3_SECRET_KEYS:
        path = os.path.join(where, name)
        if env.get(name) or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            env[name] = f.read().rstrip("\r\n")
        loaded.append(name)
    return loaded


def conn() -> Conn:
    """The shared connection for the current environment (made on first use; the S3 secret's
    files, when mounted, are read into the environment first: :func:`load_secret_dir`)."""
    import boto3
    from botocore.config import Config

    load_secret_dir()
    attempts = _env_size("SAEMERGE_S3_MAX_ATTEMPTS", 5)
    read_timeout = _env_size("SAEMERGE_S3_READ_TIMEOUT", 120)  # seconds without a byte from the endpoint
    concurrency = _env_size("SAEMERGE_S3_CONCURRENCY", 8)
    key = tuple(os.environ.get(v) for v in _AWS_VARS) + (attempts, concurrency, read_timeout)
    with _CLIENTS_LOCK:
        if key in _CLIENTS:
            return _CLIENTS[key]
        _quiet_aws_loggers()
        session = boto3.session.Session()
        creds = session.get_credentials()
        if creds is None:
            raise SaeMergeError(
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(and AWS_ENDPOINT_URL), or AWS_PROFILE"
                + f" (or files of those names in {os.environ.get(S3_SECRET_DIR_VAR) or S3_SECRET_MOUNT})"
            )
        custom_endpoint = bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"))
        config = Config(
            # standard mode: retries throttling, 5xx and dropped connections with backoff,
            # never 4xx such as a bad signature.
            retries={"mode": "standard", "total_max_attempts": attempts},
            connect_timeout=10,
            read_timeout=read_timeout,
            max_pool_connections=max(10, 2 * concurrency),
            s3={"addressing_style": "path"} if custom_endpoint else None,
        )
        client = session.client("s3", region_name=session.region_name or "us-east-1", config=config)
        made = Conn(client, client.meta.endpoint_url, creds.access_key)
        Waits(made.endpoint, attempts, read_timeout).register(client)  # a line while an answer is late
        _CLIENTS[key] = made
        return made


def s3_client():
    """The boto3 S3 client for the current environment (shared; e.g. to register event hooks)."""
    return conn().client


_E = TypeVar("_E", bound=BaseException)


def _find(exc: BaseException | None, types: type[_E] | tuple[type[_E], ...]) -> _E | None:
    """The first exception of ``types`` in exc's chain (cause, context, s3transfer's last_exception)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, types):
            return exc
        seen.add(id(exc))
        exc = getattr(exc, "last_exception", None) or exc.__cause__ or exc.__context__
    return None


STORE_DATA_VAR = "SAEMERGE_STORE_DATA"  # the embedded store's data directory (saemerge.s3server.server.Store.env)
STORE_MIN_FREE = 0.01  # SeaweedFS's volume servers take no writes with under 1 % of the disk free


def store_disk_full(need: int = 0) -> str | None:
    """When the embedded store's disk is (about to be) too full to write `need` bytes: a sentence
    naming its data directory and the free space; None for another endpoint, or room enough."""
    import shutil

    data = os.environ.get(STORE_DATA_VAR)
    if not data or not os.path.isdir(data):
        return None
    usage = shutil.disk_usage(data)
    if usage.free - need > STORE_MIN_FREE * usage.total:
        return None
    return (
        f"the object store's disk is full: {data} has {_size(usage.free)} free of {_size(usage.total)} "
        f"({100 * usage.free / usage.total:.2f} %), and the store takes no writes under "
        f"{100 * STORE_MIN_FREE:.0f} % free; free space there, then resume"
    )


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def translate(exc: BaseException, conn: Conn, what: str, uri: str) -> SaeMergeError | None:
    """A one-line SaeMergeError for an S3 failure, or None for errors that are not S3's."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
    from s3transfer.exceptions import RetriesExceededError

    where = f"(endpoint {conn.endpoint}, access key id {conn.access_key})"
    if client_err := _find(exc, ClientError):
        error = client_err.response.get("Error", {})
        code = str(error.get("Code") or client_err.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        detail = _HINTS.get(code) or error.get("Message") or "request failed"
        retries = client_err.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        tries = f" after {retries + 1} attempts" if retries else ""
        text = f"S3 {what} {uri} failed{tries}: {code}: {detail} {where}"
        if code in {"InternalError", "500", "507", "InsufficientStorage"} and (full := store_disk_full()):
            text = f"S3 {what} {uri} failed: {full}"
    elif conn_err := _find(exc, (ConnectionError, HTTPClientError)):
        text = f"S3 {what} {uri} failed: cannot reach the endpoint after retries ({type(conn_err).__name__}) {where}"
    elif other := _find(exc, (BotoCoreError, Boto3Error, RetriesExceededError)):
        text = f"S3 {what} {uri} failed: {str(other).splitlines()[0]} {where}"
    else:
        return None
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if secret and len(secret) >= 8:  # belt and braces: no message may carry the secret
        text = text.replace(secret, "***")
    return SaeMergeError(text)


@contextmanager
def s3_errors(conn: Conn, what: str, uri: str) -> Iterator[None]:
    """Re-raise an S3 failure inside the block as :func:`translate`'s one-line error."""
    try:
        yield
    except SaeMergeError:
        raise
    except Exception as exc:
        err = translate(exc, conn, what, uri)
        if err is None:
            raise
        raise err from exc


def is_missing(exc: BaseException) -> bool:
    """True for a 404 / no such key (an answer, not a failure)."""
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in _MISSING
