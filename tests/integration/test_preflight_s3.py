"""preflight.check_inputs against the embedded S3 store: headers by ranged GET, no downloads."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from saemerge import preflight, storage
from saemerge.errors import SaeMergeError

pytestmark = pytest.mark.integration


def _publish(src, uri):
    with storage.local_output(uri) as out:
        shutil.copytree(src, out, dirs_exist_ok=True)


@pytest.fixture
def s3_inputs(s3_prefix, tiny_family_sharded, tmp_path):
    uris = {}
    for name in ("base", "expert0", "expert1"):
        uris[name] = f"{s3_prefix}/{name}"
        _publish(tiny_family_sharded[name], uris[name])
    data = tmp_path / "data"
    for task, splits in (("math", ("train", "validation", "test")),):
        for split in splits:
            (data / task).mkdir(parents=True, exist_ok=True)
            (data / task / f"{split}.jsonl").write_text(
                "".join(json.dumps({"question": str(i), "answer": str(i)}) + "\n" for i in range(5))
            )
    uris["data"] = f"{s3_prefix}/data"
    _publish(data, uris["data"])
    return uris


def _check(uris, opt=8, test=5):
    preflight.check_inputs(
        [uris["expert0"], uris["expert1"]], uris["base"], uris["data"], {"saebench_math": opt}, {"saebench_math": test}
    )


def test_published_inputs_pass_reading_only_headers(s3_inputs, monkeypatch, tmp_path):
    monkeypatch.setattr(preflight, "_HEAD_BYTES", 64)  # every header takes the second ranged read too
    requests = []

    def hook(request, **kwargs):
        requests.append((request.method, request.url, request.headers.get("Range")))

    cache = tmp_path / "saemerge-cache"
    cached = sorted(cache.rglob("*"))  # publishing fills the cache; preflight must add nothing
    client = storage.s3_client()
    client.meta.events.register("before-send.s3", hook)
    try:
        start = time.perf_counter()
        _check(s3_inputs)
        print(
            f"preflight on the sharded tiny family in S3: {time.perf_counter() - start:.2f} s, {len(requests)} requests"
        )
    finally:
        client.meta.events.unregister("before-send.s3", hook)
    shard_gets = [(url, rng) for method, url, rng in requests if method == "GET" and url.endswith(".safetensors")]
    assert shard_gets and all(rng for _, rng in shard_gets)  # weights are never fetched whole
    assert sorted(cache.rglob("*")) == cached  # nothing was downloaded


def test_a_mismatched_base_in_s3_is_named(s3_prefix, s3_inputs, tiny_family_sharded, tmp_path):
    bad = shutil.copytree(tiny_family_sharded["base"], tmp_path / "bad-base")
    index = json.loads((bad / "model.safetensors.index.json").read_text())["weight_map"]
    name = "model.layers.0.mlp.up_proj.weight"
    shard = bad / index[name]
    tensors = load_file(str(shard))
    tensors[name] = torch.zeros(128, 32)
    save_file(tensors, str(shard), metadata={"format": "pt"})
    uri = f"{s3_prefix}/bad-base"
    _publish(bad, uri)
    with pytest.raises(SaeMergeError) as err:
        _check({**s3_inputs, "base": uri})
    assert str(err.value) == f"base {uri}: tensor {name} has shape [128, 32], the experts have [64, 32]"


def test_an_empty_prefix_and_a_short_split_are_named(s3_prefix, s3_inputs):
    with pytest.raises(
        SaeMergeError, match=r"^expert s3://.*/nothing: no such directory \(no objects under this prefix\)"
    ):
        _check({**s3_inputs, "expert1": f"{s3_prefix}/nothing"})
    with pytest.raises(SaeMergeError) as err:
        _check(s3_inputs, opt=11)
    message = str(err.value)
    assert message.startswith(
        f"data_uri {s3_inputs['data']}: task saebench_math asks for 11 optimisation examples "
        "but math/train+validation hold 10; ask for fewer with --param 'opt_sizes="
    ), message
    assert '"saebench_math":10' in message and "\n" not in message
