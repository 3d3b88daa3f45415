"""An error about a file of a downloaded input names the S3 URI the user gave, not the cache copy."""

import json

import pytest

from saemerge import storage
from saemerge.errors import SaeMergeError
from saemerge.evaluate.taskspec import read_jsonl

pytestmark = pytest.mark.integration


def test_a_bad_line_in_downloaded_data_is_named_by_its_s3_uri(s3_prefix, tmp_path):
    src = tmp_path / "data"
    (src / "math").mkdir(parents=True)
    (src / "math" / "test.jsonl").write_text(json.dumps({"question": "q", "answer": "1"}) + "\n{cut off\n")
    uri = f"{s3_prefix}/data"
    with storage.local_output(uri) as out:
        (out / "math").mkdir()
        (out / "math" / "test.jsonl").write_bytes((src / "math" / "test.jsonl").read_bytes())
    with pytest.raises(SaeMergeError) as err:
        with storage.local_input(uri) as local:
            read_jsonl(local / "math" / "test.jsonl")
    assert str(err.value).startswith(f"{uri}/math/test.jsonl:2: not valid JSON")
    assert str(local) not in str(err.value)
