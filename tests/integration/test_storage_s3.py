"""saemerge.storage against a real embedded SeaweedFS: round trips, multipart, atomic publish."""

from __future__ import annotations

import filecmp
import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from saemerge import storage
from saemerge.errors import SaeMergeError

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_events():
    """register(event, handler) on the current shared client; unregistered after the test."""
    registered = []

    def register(event: str, handler) -> None:
        client = storage.s3_client()
        client.meta.events.register(event, handler)
        registered.append((client, event, handler))

    yield register
    for client, event, handler in registered:
        client.meta.events.unregister(event, handler)


@pytest.fixture
def count_calls(s3_events):
    """count_calls(operation=None) -> a list that records each S3 request sent (retries too)."""

    def start(operation: str | None = None) -> list[str]:
        seen: list[str] = []

        def hook(request, **kwargs):
            name = kwargs["event_name"].rsplit(".", 1)[-1]
            if operation is None or name == operation:
                seen.append(name)

        s3_events("before-send.s3", hook)
        return seen

    return start


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **kwargs):
        yield self.data


def _assert_same_tree(a: Path, b: Path, ignore: set[str] = frozenset()) -> None:
    """Same relative file names and byte-identical contents (names in ``ignore`` skipped)."""

    def names(root: Path) -> list[str]:
        rels = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        return sorted(r for r in rels if r not in ignore)

    a_files = names(a)
    assert a_files == names(b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, a_files, shallow=False)
    assert mismatch == [] and errors == []


def _publish(src: Path, uri: str, **kwargs) -> None:
    with storage.local_output(uri, **kwargs) as out:
        shutil.copytree(src, out, dirs_exist_ok=True)


def test_sharded_checkpoint_round_trips_byte_identical_with_multipart(
    s3_prefix, tiny_family_sharded, tmp_path, monkeypatch
):
    monkeypatch.setenv("SAEMERGE_S3_MULTIPART_THRESHOLD", "1K")
    monkeypatch.setenv("SAEMERGE_S3_MULTIPART_CHUNKSIZE", "5M")  # S3's minimum part size
    src = tmp_path / "ckpt"
    shutil.copytree(tiny_family_sharded["base"], src)
    (src / "extra.bin").write_bytes(os.urandom(12 << 20))  # 12 MiB: 3 parts of 5 MiB
    shards = sorted(p.name for p in src.glob("model-*.safetensors"))
    assert len(shards) > 1

    uri = storage.join(s3_prefix, "base")
    _publish(src, uri, content_hash="tensors-abc")

    client = storage.s3_client()
    loc = storage.parse_uri(uri)
    for name in shards:  # above the 1 KiB threshold: uploaded as multipart (ETag "-N")
        head = client.head_object(Bucket=loc.bucket, Key=f"{loc.key}/{name}")
        assert head["ETag"].strip('"').endswith("-1")
    head = client.head_object(Bucket=loc.bucket, Key=f"{loc.key}/extra.bin", PartNumber=1)
    assert head["PartsCount"] == 3

    manifest = storage.read_manifest(uri)
    assert manifest["content_hash"] == "tensors-abc"
    assert {f["path"] for f in manifest["files"]} == {p.name for p in src.iterdir()}
    assert storage.exists(uri)
    shutil.rmtree(storage.cache_root())  # read back from S3, not from the local copy
    with storage.local_input(uri) as local:
        _assert_same_tree(src, local, ignore={"manifest.json"})


def test_download_is_cached_by_content(s3_prefix, tiny_family, tmp_path, count_calls):
    uri = storage.join(s3_prefix, "m")
    _publish(tiny_family["expert0"], uri)
    shutil.rmtree(storage.cache_root())  # drop the copy local_output left in the cache
    gets = count_calls("GetObject")
    with storage.local_input(uri) as first:
        pass
    n_files = len(storage.read_manifest(uri)["files"])
    assert len(gets) == 1 + n_files + 1  # manifest, files, manifest again (read_manifest above)
    gets.clear()
    with storage.local_input(uri) as second:
        assert second == first
    assert gets == ["GetObject"]  # only the manifest


def test_cache_prune_evicts_least_recently_read_and_a_later_read_downloads_again(s3_prefix, tiny_family):
    from saemerge.cache import evict, usage

    uris = {}
    for name in ("base", "expert0"):
        uris[name] = storage.join(s3_prefix, name)
        _publish(tiny_family[name], uris[name])
    entries = {e.path.name: e for e in usage().entries}
    assert len(entries) == 2
    day_ago = time.time() - 86400
    for e in entries.values():
        os.utime(e.path, (day_ago, day_ago))
    with storage.local_input(uris["base"]) as base_copy:  # a read marks its entry used
        pass
    assert time.time() - base_copy.stat().st_mtime < 60
    r = evict(entries[base_copy.name].bytes, min_idle_s=600)
    assert r.removed_entries == 1 and [e.path for e in usage().entries] == [base_copy]
    with storage.local_input(uris["expert0"]) as again:  # evicted: fetched and verified anew
        _assert_same_tree(tiny_family["expert0"], again, ignore={"manifest.json"})


def test_republishing_identical_content_is_a_noop(s3_prefix, tiny_family, caplog, count_calls):
    uri = storage.join(s3_prefix, "m")
    _publish(tiny_family["base"], uri)
    calls = count_calls()
    with caplog.at_level(logging.INFO, logger="saemerge.storage"):
        _publish(tiny_family["base"], uri)
    assert "identical content" in caplog.text
    assert not {"PutObject", "CreateMultipartUpload", "UploadPart", "DeleteObjects"} & set(calls)


def test_replacing_content_removes_stale_files(s3_prefix, tiny_family, tmp_path):
    uri = storage.join(s3_prefix, "m")
    _publish(tiny_family["base"], uri)
    new = tmp_path / "new"
    new.mkdir()
    (new / "config.json").write_text("{}")
    _publish(new, uri)
    assert storage.list_uris(uri) == [storage.join(uri, "config.json"), storage.join(uri, "manifest.json")]
    with storage.local_input(uri) as local:
        assert (local / "config.json").read_text() == "{}"


def test_reader_refuses_tampered_object(s3_prefix, tiny_family):
    uri = storage.join(s3_prefix, "m")
    _publish(tiny_family["base"], uri)
    shutil.rmtree(storage.cache_root())
    target = storage.join(uri, "config.json")
    data = storage.read_bytes(target)
    storage.write_bytes(target, data[:-1] + (b"}" if data[-1:] != b"}" else b" "))
    with pytest.raises(SaeMergeError, match="config.json does not match the sha256"):
        with storage.local_input(uri):
            pass


def test_a_prefix_without_manifest_is_read_only_once_identified_as_plain(s3_prefix):
    uri = storage.join(s3_prefix, "half")
    storage.write_bytes(storage.join(uri, "model.safetensors"), b"partial")
    assert not storage.exists(uri)
    assert storage.read_manifest(uri) is None
    with pytest.raises(SaeMergeError, match="has no manifest.json"):
        with storage.local_input(uri, require_manifest=True):
            pass
    with pytest.raises(SaeMergeError, match="has no manifest.json"):  # a half-finished upload, say
        with storage.local_input(uri):
            pass
    # a plain directory is read once identified as one (a run's inputs: test_plain_inputs.py)
    assert storage.identify(uri)["kind"] == "plain"
    with storage.local_input(uri) as local:
        assert (local / "model.safetensors").read_bytes() == b"partial"
    with pytest.raises(SaeMergeError, match="no such directory"):
        storage.identify(storage.join(s3_prefix, "nothing"))


def test_exception_inside_local_output_publishes_nothing(s3_prefix):
    uri = storage.join(s3_prefix, "m")
    with pytest.raises(RuntimeError):
        with storage.local_output(uri) as out:
            (out / "a.bin").write_bytes(b"x")
            raise RuntimeError("merge failed")
    assert storage.list_uris(uri) == []
    assert not out.exists()


def test_small_objects_list_and_files(s3_prefix, tmp_path):
    storage.write_bytes(storage.join(s3_prefix, "gen-00", "metrics.json"), b'{"a": 1}')
    src = tmp_path / "t.parquet"
    src.write_bytes(b"PAR1" * 1000)
    storage.put_file(src, storage.join(s3_prefix, "gen-00", "t.parquet"))
    storage.get_file(storage.join(s3_prefix, "gen-00", "t.parquet"), tmp_path / "back.parquet")
    assert (tmp_path / "back.parquet").read_bytes() == src.read_bytes()
    assert storage.read_bytes(storage.join(s3_prefix, "gen-00", "metrics.json")) == b'{"a": 1}'
    assert storage.exists(storage.join(s3_prefix, "gen-00", "metrics.json"))
    assert not storage.exists(storage.join(s3_prefix, "gen-00", "nope.json"))
    assert storage.list_uris(s3_prefix, recursive=False) == [storage.join(s3_prefix, "gen-00") + "/"]
    assert storage.list_uris(storage.join(s3_prefix, "gen-00")) == [
        storage.join(s3_prefix, "gen-00", "metrics.json"),
        storage.join(s3_prefix, "gen-00", "t.parquet"),
    ]
    with pytest.raises(SaeMergeError, match="no such object"):
        storage.read_bytes(storage.join(s3_prefix, "missing.json"))


def test_missing_bucket_is_a_clear_error_or_created(s3_env):
    endpoint = s3_env.endpoint
    with pytest.raises(SaeMergeError) as err:
        with storage.local_output("s3://no-such-bucket-xyz/run/m"):
            pass
    msg = str(err.value)
    assert "'no-such-bucket-xyz' does not exist" in msg and endpoint in msg and "\n" not in msg
    with pytest.raises(SaeMergeError, match="NoSuchBucket"):
        storage.write_bytes("s3://no-such-bucket-xyz/a.json", b"{}")
    storage.ensure_bucket("s3://created-on-demand/run", create=True)
    storage.write_bytes("s3://created-on-demand/run/a.json", b"{}")
    assert storage.read_bytes("s3://created-on-demand/run/a.json") == b"{}"


def test_wrong_secret_fails_once_naming_endpoint_and_key_id(s3_prefix, s3_store, monkeypatch, caplog, count_calls):
    uri = storage.join(s3_prefix, "m")
    storage.write_bytes(storage.join(uri, "x"), b"1")
    wrong = "definitely-not-the-secret-0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    calls = count_calls()
    caplog.set_level(logging.DEBUG)  # botocore's debug logs included
    with pytest.raises(SaeMergeError) as err:
        with storage.local_input(uri):
            pass
    msg = str(err.value)
    assert "SignatureDoesNotMatch" in msg
    assert s3_store.endpoint in msg and s3_store.admin.access_key in msg
    assert wrong not in msg and s3_store.admin.secret_key not in msg and "\n" not in msg
    assert len(calls) == 1  # a permanent error is not retried
    assert wrong not in caplog.text and s3_store.admin.secret_key not in caplog.text


def test_readonly_identity_reads_but_cannot_write(s3_prefix, s3_store, tiny_family, monkeypatch):
    uri = storage.join(s3_prefix, "m")
    _publish(tiny_family["base"], uri)
    for key, value in s3_store.readonly_env().items():
        monkeypatch.setenv(key, value)
    shutil.rmtree(storage.cache_root())
    with storage.local_input(uri) as local:
        assert (local / "config.json").exists()
    with pytest.raises(SaeMergeError) as err:
        _publish(tiny_family["expert0"], storage.join(s3_prefix, "other"))
    msg = str(err.value)
    assert "AccessDenied" in msg and s3_store.readonly.access_key in msg
    assert s3_store.readonly.secret_key not in msg
    assert not storage.exists(storage.join(s3_prefix, "other"))


def test_no_credentials_in_debug_logs(s3_prefix, s3_store, tiny_family, caplog):
    caplog.set_level(logging.DEBUG)  # root: ours, ...
    for name in ("botocore", "s3transfer", "urllib3"):  # ... and the AWS libraries' debug logs
        caplog.set_level(logging.DEBUG, logger=name)
    uri = storage.join(s3_prefix, "m")
    _publish(tiny_family["base"], uri)
    shutil.rmtree(storage.cache_root())
    with storage.local_input(uri):
        pass
    storage.list_uris(s3_prefix)
    assert any(r.name.startswith("botocore") for r in caplog.records)  # debug capture was live
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    for secret in (s3_store.admin.secret_key, s3_store.readonly.secret_key):
        assert secret not in text


def test_transient_errors_are_retried_with_backoff(s3_prefix, s3_events, monkeypatch):
    uri = storage.join(s3_prefix, "x.json")
    storage.write_bytes(uri, b"{}")
    from botocore.awsrequest import AWSResponse

    busy = b"<Error><Code>SlowDown</Code><Message>busy</Message></Error>"
    sends: list[str] = []

    def flaky(request, **kwargs):  # the first two attempts get a 503 SlowDown
        sends.append(request.url)
        if len(sends) <= 2:
            return AWSResponse(request.url, 503, {}, _Body(busy))
        return None

    s3_events("before-send.s3.GetObject", flaky)
    assert storage.read_bytes(uri) == b"{}"
    assert len(sends) == 3

    monkeypatch.setenv("SAEMERGE_S3_MAX_ATTEMPTS", "3")  # a new client with this retry budget
    sends.clear()
    s3_events(
        "before-send.s3.GetObject",
        lambda request, **kw: sends.append(request.url) or AWSResponse(request.url, 503, {}, _Body(busy)),
    )
    with pytest.raises(SaeMergeError, match="after 3 attempts: SlowDown"):
        storage.read_bytes(uri)
    assert len(sends) == 3


def test_aws_debug_logs_stay_off_when_everything_is_debug(s3_prefix, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)  # like `saemerge -v`: the root logger at DEBUG

    def botocore_debug_records(concurrency: str) -> list:
        for name in ("botocore", "s3transfer", "urllib3"):
            monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
        monkeypatch.setenv("SAEMERGE_S3_CONCURRENCY", concurrency)  # a fresh client
        caplog.clear()
        storage.write_bytes(storage.join(s3_prefix, "a"), b"1")
        return [r for r in caplog.records if r.name.startswith("botocore") and r.levelno < logging.INFO]

    monkeypatch.setenv("SAEMERGE_AWS_DEBUG", "1")  # opt in: botocore debug comes through
    assert botocore_debug_records("7")
    monkeypatch.delenv("SAEMERGE_AWS_DEBUG")
    assert botocore_debug_records("6") == []


def test_reading_models_one_after_another_keeps_the_cache_within_its_budget(s3_prefix, tiny_family, monkeypatch):
    """What an evaluate step does with a cache volume: each model read once, the disk bounded."""
    uris = [storage.join(s3_prefix, name) for name in ("base", "expert0", "expert1")]
    for name, uri in zip(("base", "expert0", "expert1"), uris):
        _publish(tiny_family[name], uri)
    shutil.rmtree(storage.cache_root())  # publishing adopted the uploads into the cache
    size = storage.read_manifest(uris[0])["total_size"]
    monkeypatch.setenv("SAEMERGE_CACHE_MAX_SIZE", str(int(1.5 * size)))
    monkeypatch.setenv("SAEMERGE_CACHE_MIN_IDLE_S", "0")
    objects = storage.cache_root() / "objects"
    for uri in uris:
        with storage.local_input(uri) as local:
            assert (local / "config.json").is_file()
            assert [p.name for p in objects.iterdir()] == [local.name]  # the one being read, no more
    with storage.local_input(uris[0]), storage.local_input(uris[1]) as second:  # both pinned: over budget, kept
        assert (second / "config.json").is_file() and len(list(objects.iterdir())) == 2


def test_a_step_with_the_secret_as_files_only_reads_and_writes(s3_prefix, monkeypatch, tmp_path, caplog, capfd):
    """A cluster step gets the S3 secret as a mounted volume (pipeline/common.py), one file per
    key and no AWS_* variable: the store is reached with the files' values, none of them logged."""
    from saemerge.storage import s3_conn

    secret_dir = tmp_path / "saemerge-s3"
    secret_dir.mkdir()
    for key in s3_conn.S3_SECRET_KEYS:
        if os.environ.get(key):
            (secret_dir / key).write_text(os.environ[key] + "\n")
        monkeypatch.setenv(key, "")  # undone at teardown: what the step sets from the files goes too
        monkeypatch.delenv(key)
    secret = (secret_dir / "AWS_SECRET_ACCESS_KEY").read_text().strip()
    monkeypatch.setenv(s3_conn.S3_SECRET_DIR_VAR, str(secret_dir))
    caplog.set_level(logging.DEBUG)
    uri = storage.join(s3_prefix, "from-files.bin")
    storage.write_bytes(uri, b"mounted")
    assert storage.read_bytes(uri) == b"mounted"
    out, err = capfd.readouterr()
    assert secret not in caplog.text + out + err
