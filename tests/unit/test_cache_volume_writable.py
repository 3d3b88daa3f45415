"""A cache volume the step cannot write (root-owned, mode 0755, as a fresh volume is when KFP sets no
fsGroup): the step stops at its start in one line naming the directory and the fix, run as the
image's user (uid 1000, gid 0) against a root-owned 0755 directory; `ephemeral` is refused at
compile. (No container engine here: the step's check runs under the system Python as uid 1000,
which is the check the image's entry runs first.)"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from saemerge.pipeline.common import CompileOptions

COMPONENTS = Path(__file__).resolve().parents[2] / "components" / "__init__.py"
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")
SETPRIV = shutil.which("setpriv")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not SYSTEM_PYTHON or not SETPRIV, reason="needs root, setpriv and /usr/bin/python3"
)

# Import components/__init__.py by path (it needs only the standard library): what every step does first.
STEP_START = (
    "import importlib.util, sys; spec = importlib.util.spec_from_file_location('c', sys.argv[1]); "
    "spec.loader.exec_module(importlib.util.module_from_spec(spec)); print('started')"
)


@pytest.fixture
def shared_tmp():
    """A directory uid 1000 can reach (pytest's tmp_path is under a root-only directory)."""
    path = Path(tempfile.mkdtemp(prefix="saemerge-uid1000-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_step_user(cache: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    copy = tmp_path / "step" / "__init__.py"  # where uid 1000 can read it
    copy.parent.mkdir(exist_ok=True)
    shutil.copy(COMPONENTS, copy)
    os.chmod(copy.parent, 0o755)
    os.chmod(copy, 0o644)
    env = {"PATH": "/usr/bin:/bin", "SAEMERGE_POD_ENV": f"SAEMERGE_CACHE={cache}", "HOME": "/tmp"}
    cmd = [SETPRIV, "--reuid", "1000", "--regid", "0", "--clear-groups", SYSTEM_PYTHON, "-c", STEP_START, str(copy)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


@needs_root
def test_a_root_owned_0755_cache_stops_the_step_in_one_line(shared_tmp):
    tmp_path = shared_tmp
    cache = tmp_path / "volume"
    cache.mkdir(mode=0o755)
    os.chown(cache, 0, 0)
    os.chmod(cache, 0o755)
    done = _as_step_user(cache, tmp_path)
    assert done.returncode != 0 and "started" not in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"PermissionError: SAEMERGE_CACHE {cache}: not writable by this step (uid 1000, gid 0;")
    assert "is 0:0, mode 0755" in last and "chown 1000:0" in last and "--cache-volume emptydir" in last


@needs_root
def test_a_claim_made_writable_once_works(shared_tmp):
    tmp_path = shared_tmp
    for owner, mode in (((1000, 0), 0o755), ((0, 0), 0o2775)):  # chown 1000:0, or group 0 writable
        cache = tmp_path / f"volume-{mode:o}"
        cache.mkdir()
        os.chown(cache, *owner)
        os.chmod(cache, mode)
        done = _as_step_user(cache, tmp_path)
        assert done.returncode == 0 and done.stdout.strip() == "started", done.stderr
        assert list(cache.iterdir()) == []  # the probe is gone


def test_ephemeral_volumes_are_refused_at_compile_with_the_alternatives():
    for spec in ("ephemeral", "ephemeral:fast-ssd"):
        with pytest.raises(ValueError) as info:
            CompileOptions(cache_volume=spec)
        line = str(info.value)
        assert "\n" not in line and line.startswith(f"--cache-volume {spec}: a freshly provisioned volume")
        assert "use emptydir" in line and "pvc:NAME" in line
