"""The S3 secret's name is checked as a DNS-1123 label (the KFP driver names the pod's volume after
it), in one line naming the flag, at compile time and on the command line."""

import subprocess
import sys

import pytest

from saemerge.pipeline.common import CompileOptions


@pytest.mark.parametrize("name", ["saemerge-s3", "s3", "a" * 63, "team-1-s3"])
def test_labels_pass(name):
    assert CompileOptions(s3_secret=name).s3_secret == name


@pytest.mark.parametrize("name", ["saemerge.s3", "Saemerge-S3", "-s3", "s3-", "a" * 64, "s3_secret", ""])
def test_other_names_are_refused_naming_the_flag_and_the_rule(name):
    with pytest.raises(ValueError, match=r"--s3-secret .*: must be a DNS-1123 label .* names the pod's volume"):
        CompileOptions(s3_secret=name)


def test_the_command_line_refuses_it_in_one_line(tmp_path):
    out = tmp_path / "p.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "saemerge", "compile", "--s3-secret", "my.secret", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "saemerge: error: --s3-secret 'my.secret': must be a DNS-1123 label (at most 63 lowercase letters, digits "
        "or '-', starting and ending with a letter or digit): the KFP driver names the pod's volume after the secret"
    ]
    assert not out.exists()
