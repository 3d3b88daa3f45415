"""The embedded store on a (nearly) full disk: a write is refused at once, naming the store's data
directory and its free space, instead of InternalError after minutes of retries."""

import os
import subprocess
import time

import pytest

from saemerge import storage
from saemerge.errors import SaeMergeError

pytestmark = pytest.mark.integration


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MB tmpfs, filled (needs root and mount permission: skipped elsewhere)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with open(mnt / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_write_to_the_store_on_a_full_disk_names_its_directory_and_free_space(full_disk, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "SAEFULLDISK000000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unused-secret-value")
    monkeypatch.setenv("SAEMERGE_STORE_DATA", str(full_disk))
    start = time.monotonic()
    with pytest.raises(SaeMergeError) as err:
        storage.write_bytes("s3://saemerge/runs/r/run.json", b"{}")
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert message.startswith(
        f"S3 write to s3://saemerge/runs/r/run.json refused: the object store's disk is full: {full_disk} has "
    )
    assert " MiB free of 1.0 MiB (" in message and "takes no writes under 1 % free" in message
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in message
