"""saemerge.storage on local paths, manifests, URI parsing and S3 error messages (no server)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest

from saemerge import manifest as mf
from saemerge import storage
from saemerge.errors import SaeMergeError
from saemerge.storage import s3_conn


def _fill(d, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)


FILES = {"config.json": b"{}", "model.safetensors": b"\0" * 1000, "sub/tokenizer.json": b'{"v": 1}'}


# -- URIs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "uri, bucket, key",
    [
        ("s3://b/run/models/x", "b", "run/models/x"),
        ("s3://b/run//models/x/", "b", "run/models/x"),
        ("s3://b", "b", ""),
    ],
)
def test_parse_s3(uri, bucket, key):
    loc = storage.parse_uri(uri)
    assert (loc.is_s3, loc.bucket, loc.key) == (True, bucket, key)
    assert storage.is_s3(uri)


def test_parse_local(tmp_path):
    assert storage.parse_uri(str(tmp_path)).path == tmp_path
    assert storage.parse_uri(f"file://{tmp_path}").path == tmp_path
    assert not storage.is_s3(tmp_path)


@pytest.mark.parametrize("bad", ["s3:///key", "gs://bucket/key"])
def test_parse_rejects(bad):
    with pytest.raises(SaeMergeError, match="bucket|scheme"):
        storage.parse_uri(bad)


def test_join():
    assert storage.join("s3://b/run/", "gen-00", "/t.parquet") == "s3://b/run/gen-00/t.parquet"
    assert storage.join("/data/run", "gen-00") == "/data/run/gen-00"


# -- local publish ------------------------------------------------------------------------------
def test_local_output_publishes_with_manifest_and_input_verifies(tmp_path):
    dest = tmp_path / "runs" / "m1"
    with storage.local_output(dest, content_hash="abc") as out:
        assert out.parent == dest.parent and out.name.startswith(".m1.tmp-")
        assert not dest.exists()
        _fill(out, FILES)
    manifest = storage.read_manifest(dest)
    assert manifest["content_hash"] == "abc"
    assert {f["path"]: f["size"] for f in manifest["files"]} == {k: len(v) for k, v in FILES.items()}
    assert storage.exists(dest)
    with storage.local_input(dest, require_manifest=True) as local:
        assert local == dest
    assert [p.name for p in dest.parent.iterdir()] == ["m1"]  # no temp left behind


def test_default_content_hash_is_the_files_hash(tmp_path):
    with storage.local_output(tmp_path / "a") as out:
        _fill(out, FILES)
    with storage.local_output(tmp_path / "b") as out:
        _fill(out, FILES)
    a, b = storage.read_manifest(tmp_path / "a"), storage.read_manifest(tmp_path / "b")
    assert a["content_hash"] == a["files_hash"] == b["content_hash"]


def test_content_hash_may_be_computed_after_writing(tmp_path):
    seen = []

    def content_hash() -> str:  # e.g. a hash over the tensors the body just wrote
        seen.append(sorted(p.name for p in out.iterdir()))
        return "late-hash"

    with storage.local_output(tmp_path / "m", content_hash=content_hash) as out:
        _fill(out, FILES)
    assert seen == [["config.json", "model.safetensors", "sub"]]
    assert storage.read_manifest(tmp_path / "m")["content_hash"] == "late-hash"


def test_exception_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with storage.local_output(tmp_path / "m") as out:
            _fill(out, FILES)
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_crashed_writer_leaves_no_directory_at_final_name(tmp_path):
    script = textwrap.dedent(f"""
        import os
        from saemerge import storage
        with storage.local_output({str(tmp_path / "m")!r}) as out:
            (out / "model.safetensors").write_bytes(b"half")
            os._exit(9)  # a crash: no cleanup runs
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    assert not (tmp_path / "m").exists()
    assert not storage.exists(tmp_path / "m")
    with storage.local_output(tmp_path / "m") as out:  # a retry works despite the leftover temp
        _fill(out, FILES)
    assert storage.exists(tmp_path / "m")


def test_identical_republish_is_a_noop(tmp_path, caplog):
    dest = tmp_path / "m"
    with storage.local_output(dest) as out:
        _fill(out, FILES)
    before = (dest / "manifest.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="saemerge.storage"):
        with storage.local_output(dest) as out:
            _fill(out, FILES)
    assert "identical content" in caplog.text
    assert (dest / "manifest.json").stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_different_content_replaces(tmp_path):
    dest = tmp_path / "m"
    with storage.local_output(dest) as out:
        _fill(out, FILES)
    with storage.local_output(dest) as out:
        _fill(out, {"config.json": b'{"new": 1}'})
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_refuses_to_replace_an_unpublished_directory(tmp_path):
    dest = tmp_path / "user_ckpt"
    _fill(dest, FILES)
    with pytest.raises(SaeMergeError, match="not a published directory"):
        with storage.local_output(dest) as out:
            _fill(out, FILES)
    assert (dest / "model.safetensors").read_bytes() == FILES["model.safetensors"]


def test_local_input_without_manifest(tmp_path):
    _fill(tmp_path / "hf", FILES)
    with storage.local_input(tmp_path / "hf") as local:  # a user's HF checkpoint
        assert local == tmp_path / "hf"
    with pytest.raises(SaeMergeError, match="no manifest.json"):
        with storage.local_input(tmp_path / "hf", require_manifest=True):
            pass
    with pytest.raises(SaeMergeError, match="no such directory"):
        with storage.local_input(tmp_path / "missing"):
            pass


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "config.json").write_bytes(b"[]"), "does not match the sha256"),
        (lambda d: (d / "config.json").write_bytes(b"{ }"), "has 3 bytes"),
        (lambda d: (d / "sub" / "tokenizer.json").unlink(), "missing"),
        (lambda d: (d / "stray.bin").write_bytes(b"x"), "not in its manifest"),
        (lambda d: (d / "manifest.json").write_text("{"), "not a valid saemerge manifest"),
    ],
)
def test_local_input_refuses_mismatch(tmp_path, damage, message):
    dest = tmp_path / "m"
    with storage.local_output(dest) as out:
        _fill(out, FILES)
    damage(dest)
    with pytest.raises(SaeMergeError, match=message):
        with storage.local_input(dest):
            pass


def test_manifest_rejects_unsafe_paths_and_edits():
    files = [{"path": "../etc/passwd", "size": 1, "sha256": "0" * 64}]
    data = json.dumps({"format": mf.FORMAT, "files": files, "files_hash": mf.files_hash(files)})
    with pytest.raises(SaeMergeError, match="unsafe path"):
        mf.loads(data.encode(), "m/manifest.json")
    files = [{"path": "a", "size": 1, "sha256": "0" * 64}]
    data = json.dumps({"format": mf.FORMAT, "files": files, "files_hash": "f" * 64})
    with pytest.raises(SaeMergeError, match="files_hash does not match"):
        mf.loads(data.encode(), "m/manifest.json")


def test_writer_may_not_write_the_manifest(tmp_path):
    with pytest.raises(SaeMergeError, match="reserved"):
        with storage.local_output(tmp_path / "m") as out:
            (out / "manifest.json").write_text("{}")
    assert not (tmp_path / "m").exists()


# -- single objects -----------------------------------------------------------------------------
def test_bytes_files_and_listing(tmp_path):
    storage.write_bytes(tmp_path / "run" / "gen-00" / "metrics.json", b"{}")
    assert storage.read_bytes(tmp_path / "run" / "gen-00" / "metrics.json") == b"{}"
    assert storage.exists(tmp_path / "run" / "gen-00" / "metrics.json")
    storage.put_file(tmp_path / "run" / "gen-00" / "metrics.json", tmp_path / "copy" / "m.json")
    storage.get_file(tmp_path / "copy" / "m.json", tmp_path / "back.json")
    assert (tmp_path / "back.json").read_bytes() == b"{}"
    assert storage.list_uris(tmp_path / "run") == [str(tmp_path / "run" / "gen-00" / "metrics.json")]
    assert storage.list_uris(tmp_path / "run", recursive=False) == [str(tmp_path / "run" / "gen-00") + "/"]
    assert storage.list_uris(tmp_path / "nothing") == []
    with pytest.raises(SaeMergeError, match="no such file"):
        storage.read_bytes(tmp_path / "nope")
    assert not any(p.name.startswith(".") for p in (tmp_path / "run" / "gen-00").iterdir())


# -- S3 error messages (pure: fabricated botocore errors) ---------------------------------------
def _client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )


def test_s3_errors_name_endpoint_and_key_id_not_secret(monkeypatch):
    secret = "s3cr3t-value-that-must-not-leak"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    conn = s3_conn.Conn(client=None, endpoint="http://127.0.0.1:9", access_key="AKIDEXAMPLE")
    for code, hint in [
        ("SignatureDoesNotMatch", "secret access key is wrong"),
        ("InvalidAccessKeyId", "not known"),
        ("NoSuchBucket", "does not exist"),
        ("AccessDenied", "access denied"),
    ]:
        err = s3_conn.translate(_client_error(code, 403), conn, "GET", "s3://b/k")
        msg = str(err)
        assert code in msg and hint in msg and "http://127.0.0.1:9" in msg and "AKIDEXAMPLE" in msg
        assert secret not in msg and "\n" not in msg
    # s3transfer wraps client errors; the chain is followed
    from boto3.exceptions import S3UploadFailedError

    try:
        try:
            raise _client_error("AccessDenied", 403)
        except Exception as inner:
            raise S3UploadFailedError(f"Failed to upload: {inner}")  # noqa: B904 -- as boto3 does: implicit chain (__context__)
    except S3UploadFailedError as wrapped:
        assert "AccessDenied" in str(s3_conn.translate(wrapped, conn, "upload to", "s3://b/k"))
    assert s3_conn.translate(OSError("disk full"), conn, "GET", "s3://b/k") is None


def test_transfer_settings_from_env(monkeypatch):
    monkeypatch.setenv("SAEMERGE_S3_MULTIPART_THRESHOLD", "1K")
    monkeypatch.setenv("SAEMERGE_S3_MULTIPART_CHUNKSIZE", "6M")
    monkeypatch.setenv("SAEMERGE_S3_CONCURRENCY", "3")
    cfg = storage.transfer_config()
    assert (cfg.multipart_threshold, cfg.multipart_chunksize, cfg.max_concurrency) == (1024, 6 << 20, 3)
    monkeypatch.setenv("SAEMERGE_S3_CONCURRENCY", "lots")
    with pytest.raises(SaeMergeError, match="SAEMERGE_S3_CONCURRENCY"):
        storage.transfer_config()


# -- the backend seam ---------------------------------------------------------------------------
def test_backends_implement_the_interface_with_its_signatures():
    import inspect

    from saemerge.storage.base import Backend
    from saemerge.storage.local import LocalBackend
    from saemerge.storage.s3 import S3Backend

    methods = [n for n, f in vars(Backend).items() if inspect.isfunction(f) and not n.startswith("_")]
    assert {"exists", "read_bytes", "fetch", "output_dir", "publish"} <= set(methods)
    for impl in (LocalBackend, S3Backend):
        for name in methods:
            assert inspect.signature(getattr(impl, name)) == inspect.signature(getattr(Backend, name)), (
                f"{impl.__name__}.{name}"
            )


def test_one_dispatch_by_scheme(tmp_path):
    from saemerge.storage.local import LocalBackend
    from saemerge.storage.s3 import S3Backend

    backend, loc = storage.backend_for("s3://b/run/")
    assert isinstance(backend, S3Backend) and (loc.bucket, loc.key) == ("b", "run")
    backend, loc = storage.backend_for(tmp_path)
    assert isinstance(backend, LocalBackend) and loc.path == tmp_path


_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


def _secret_dir(tmp_path, **values):
    where = tmp_path / "saemerge-s3"
    where.mkdir()
    for name, value in values.items():
        (where / name).write_text(value)
    return where


def test_s3_settings_come_from_the_mounted_secret_and_never_reach_a_log(tmp_path, monkeypatch, caplog, capsys):
    """A cluster step gets the S3 secret as files (pipeline/common.py Tasks._secret): one per key."""
    for name in (*s3_conn.S3_SECRET_KEYS, "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "")  # undone at teardown: what conn() sets from the files goes too
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    where = _secret_dir(
        tmp_path,
        AWS_ENDPOINT_URL="http://127.0.0.1:9\n",  # kubectl --from-literal writes none, an editor one
        AWS_ACCESS_KEY_ID="AKIDFROMFILE",
        AWS_SECRET_ACCESS_KEY=_SECRET + "\n",
        AWS_DEFAULT_REGION="eu-west-3",
    )
    monkeypatch.setenv(s3_conn.S3_SECRET_DIR_VAR, str(where))
    caplog.set_level(logging.DEBUG)
    made = s3_conn.conn()
    assert made.endpoint == "http://127.0.0.1:9" and made.access_key == "AKIDFROMFILE"
    assert made.client.meta.region_name == "eu-west-3"
    assert made.client._request_signer._credentials.secret_key == _SECRET  # the newline is not the key's
    out = capsys.readouterr()
    assert _SECRET not in caplog.text + out.out + out.err


def test_s3_environment_wins_over_the_secret_files(tmp_path, monkeypatch):
    where = _secret_dir(tmp_path, AWS_ACCESS_KEY_ID="AKIDFROMFILE", AWS_SECRET_ACCESS_KEY=_SECRET)
    env = {s3_conn.S3_SECRET_DIR_VAR: str(where), "AWS_ACCESS_KEY_ID": "AKIDFROMENV"}
    assert s3_conn.load_secret_dir(env) == ["AWS_SECRET_ACCESS_KEY"]  # names, never values
    assert env["AWS_ACCESS_KEY_ID"] == "AKIDFROMENV" and env["AWS_SECRET_ACCESS_KEY"] == _SECRET
    assert "AWS_ENDPOINT_URL" not in env  # a key without a file stays unset
    assert s3_conn.load_secret_dir({}) == []  # no directory named: the environment as it is


def test_a_missing_secret_mount_is_one_line_naming_it(tmp_path):
    env = {s3_conn.S3_SECRET_DIR_VAR: str(tmp_path / "absent")}
    with pytest.raises(SaeMergeError, match=r"^SAEMERGE_S3_SECRET_DIR=.*absent: no such directory") as err:
        s3_conn.load_secret_dir(env)
    assert "\n" not in str(err.value)
