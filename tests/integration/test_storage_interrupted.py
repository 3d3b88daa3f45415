"""Interrupted publishes leave nothing visible, and a retry succeeds.

Two failures: the uploading process is SIGKILLed mid-way, and the S3 server is stopped
mid-way. Both stop the upload at a known point (a botocore hook on the big file's second part)
rather than relying on timing.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from saemerge import storage
from saemerge.errors import SaeMergeError
from saemerge.objectstore import Store

pytestmark = pytest.mark.integration

BIG = "zz-big.bin"  # sorts last: the small files are queued (and mostly done) before it

CHILD = textwrap.dedent("""
    import shutil, sys, time
    from saemerge import storage

    src, uri = sys.argv[1], sys.argv[2]

    def stall(params, **kwargs):
        if params.get("Key", "").endswith("{big}") and params.get("PartNumber") == 2:
            print("STALLED", flush=True)
            time.sleep(600)

    storage.s3_client().meta.events.register("before-parameter-build.s3.UploadPart", stall)
    with storage.local_output(uri) as out:
        shutil.copytree(src, out, dirs_exist_ok=True)
    print("FINISHED", flush=True)
""").format(big=BIG)


@pytest.fixture
def checkpoint(tiny_family_sharded, tmp_path):
    """A sharded tiny checkpoint plus a 15 MiB file uploaded in three 5 MiB parts."""
    src = tmp_path / "ckpt"
    shutil.copytree(tiny_family_sharded["base"], src)
    (src / BIG).write_bytes(os.urandom(15 << 20))
    return src


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setenv("SAEMERGE_S3_MULTIPART_THRESHOLD", "1K")
    monkeypatch.setenv("SAEMERGE_S3_MULTIPART_CHUNKSIZE", "5M")
    monkeypatch.setenv("SAEMERGE_S3_CONCURRENCY", "2")


def _assert_invisible(uri: str) -> None:
    assert not storage.exists(uri)
    assert storage.read_manifest(uri) is None
    with pytest.raises(SaeMergeError, match="has no manifest.json"):
        with storage.local_input(uri):
            pass


def _assert_round_trip(src, uri: str) -> None:
    shutil.rmtree(storage.cache_root(), ignore_errors=True)
    with storage.local_input(uri) as local:
        names = sorted(p.name for p in src.iterdir())
        assert sorted(p.name for p in local.iterdir() if p.name != "manifest.json") == names
        _, mismatch, errors = filecmp.cmpfiles(src, local, names, shallow=False)
        assert mismatch == [] and errors == []


def test_killed_uploader_leaves_no_checkpoint_and_retry_succeeds(s3_prefix, checkpoint, small_parts):
    uri = storage.join(s3_prefix, "model")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(checkpoint), uri], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        line = child.stdout.readline().strip()
        assert line == "STALLED", f"child did not reach the big file's 2nd part: {line!r}"
        uploaded = storage.list_uris(uri)
        assert uploaded, "some files should be complete before the kill"
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert storage.join(uri, BIG) not in storage.list_uris(uri)
    _assert_invisible(uri)

    with storage.local_output(uri) as out:  # the retry
        shutil.copytree(checkpoint, out, dirs_exist_ok=True)
    assert storage.exists(uri)
    _assert_round_trip(checkpoint, uri)


def test_server_stopped_mid_upload_leaves_no_checkpoint_and_retry_succeeds(
    tmp_path, checkpoint, small_parts, monkeypatch
):
    store = Store(tmp_path / "store", buckets=["interrupted"]).start()
    try:

        def use_store():
            for key, value in store.env().items():
                monkeypatch.setenv(key, value)

        use_store()
        monkeypatch.setenv("SAEMERGE_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("SAEMERGE_S3_MAX_ATTEMPTS", "3")  # keep the backoff short
        uri = "s3://interrupted/run/model"
        stopped = []

        def stop_server(params, **kwargs):
            if params.get("Key", "").endswith(BIG) and params.get("PartNumber") == 2 and not stopped:
                stopped.append(True)
                store.stop()

        storage.s3_client().meta.events.register("before-parameter-build.s3.UploadPart", stop_server)
        with pytest.raises(SaeMergeError) as err:
            with storage.local_output(uri) as out:
                shutil.copytree(checkpoint, out, dirs_exist_ok=True)
        assert stopped
        msg = str(err.value)
        assert "cannot reach the endpoint" in msg and "\n" not in msg
        assert store.admin.secret_key not in msg

        store.start()  # same data and credentials, new ports
        use_store()
        _assert_invisible(uri)
        with storage.local_output(uri) as out:
            shutil.copytree(checkpoint, out, dirs_exist_ok=True)
        _assert_round_trip(checkpoint, uri)
    finally:
        store.stop()
