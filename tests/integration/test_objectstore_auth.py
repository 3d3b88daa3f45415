"""The embedded store answers nobody without its secrets: every port it listens on but S3's takes
only clients with a certificate of the store's own CA, and S3 takes only the generated keys."""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration


def _listening(pid: int) -> set[int]:
    return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def _https(port: int, path: str, cert: tuple | None) -> int | str:
    """The status of a GET over TLS (with a client certificate or none), or the error's name."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (ssl.SSLError, OSError, http.client.HTTPException) as exc:
        return type(exc).__name__


def _http(port: int, method: str, path: str) -> int | str:
    """The status of a plain HTTP request, or the error's name."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=b"x" if method == "POST" else None, method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__


def test_no_port_but_s3_answers_without_the_stores_certificate(s3_store):
    s3 = s3_store.ports["s3"]
    listening = _listening(s3_store.pid)
    assert listening == set(s3_store.ports.values())  # what it listens on is what we probe
    cert = (s3_store.root / "tls" / "cert.pem", s3_store.root / "tls" / "key.pem")
    for name, port in s3_store.ports.items():
        if port == s3:
            continue
        for method, path in (("GET", "/dir/assign"), ("GET", "/buckets/"), ("POST", "/buckets/saemerge-test/x")):
            status = _http(port, method, path)
            assert not (isinstance(status, int) and 200 <= status < 300), (name, method, path, status)
        assert _https(port, "/dir/assign", None) in {"SSLError", "ConnectionResetError", "RemoteDisconnected"}, name
    # the probe can see an open port: with the store's certificate the master assigns a file id
    assert _https(s3_store.ports["master"], "/dir/assign", cert) == 200


def test_s3_takes_only_the_generated_keys(s3_store):
    bucket = s3_store.buckets[0] if s3_store.buckets else "saemerge-test"
    env = s3_store.env()
    config = Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"})

    def client(key: str, secret: str):
        return boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=config,
        )

    ok = client(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    ok.put_object(Bucket=bucket, Key="auth-probe/x", Body=b"1")
    assert ok.get_object(Bucket=bucket, Key="auth-probe/x")["Body"].read() == b"1"
    with pytest.raises(ClientError):
        client("SAEWRONGKEY000000000", "wrong-secret").get_object(Bucket=bucket, Key="auth-probe/x")
    assert _http(s3_store.ports["s3"], "GET", f"/{bucket}/auth-probe/x") == 403  # anonymous


def test_the_stores_unix_sockets_are_its_users_alone(s3_store):
    """weed also listens on unix sockets in /tmp named after its ports: only their owner may connect."""
    ports = {str(p) for p in s3_store.ports.values()}
    socks = [p for p in Path("/tmp").glob("seaweedfs-*.sock") if p.stem.rsplit("-", 1)[-1] in ports]
    assert socks
    for path in socks:
        assert path.stat().st_mode & 0o077 == 0, oct(path.stat().st_mode)
