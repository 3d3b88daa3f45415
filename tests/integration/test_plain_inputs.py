"""Plain HF checkpoints (no manifest.json) in the embedded S3 store as a run's experts and base:
identified by their listing, verified on first read, accepted by preflight and the model steps,
recorded in the run; and `saemerge upload` publishing a local checkpoint with a manifest."""

from __future__ import annotations

import json
import os

import pytest

from saemerge import manifest as mf
from saemerge import preflight, runlog, storage
from saemerge.cli import main
from saemerge.errors import SaeMergeError
from saemerge.steps.models import pair_and_merge, prune_variant
from saemerge.storage import plain, s3
from tests.support.s3plain import put_plain

pytestmark = pytest.mark.integration
MIB = 1 << 20


@pytest.fixture
def plain_family(s3_prefix, tiny_family):
    uris = {name: f"{s3_prefix}/plain/{name}" for name in ("base", "expert0", "expert1")}
    for name, uri in uris.items():
        put_plain(tiny_family[name], uri)
    return uris


def test_a_plain_checkpoint_is_identified_by_its_listing_and_downloaded_once(plain_family, tiny_family, count_gets):
    uri = plain_family["expert0"]
    info = storage.identify(uri)
    assert info["kind"] == "plain" and info["files"] == len(mf.list_files(tiny_family["expert0"]))
    assert info["identity"] == plain.listing_hash(s3.S3Backend().listing(storage.parse_uri(uri)))
    assert storage.identify(uri)["identity"] == info["identity"]  # stable
    with storage.local_input(uri) as local:
        for rel in mf.list_files(tiny_family["expert0"]):
            assert (local / rel).read_bytes() == (tiny_family["expert0"] / rel).read_bytes()
        manifest = json.loads((local / "manifest.json").read_text())  # the cache entry's, with sha256
        assert manifest["content_hash"] == info["identity"]
        assert manifest["files_hash"] == mf.build_manifest(tiny_family["expert0"])["files_hash"]
    gets = count_gets()
    with storage.local_input(uri) as again:
        assert again == local
    assert [g.rsplit("/", 1)[-1] for g in gets] == ["manifest.json"]  # the probe; the cache answered the rest


def test_a_rewritten_object_gives_another_identity(plain_family):
    uri = plain_family["base"]
    before = storage.identify(uri)["identity"]
    cfg = storage.join(uri, "config.json")
    storage.write_bytes(cfg, storage.read_bytes(cfg) + b"\n")
    assert storage.identify(uri)["identity"] != before


def test_multipart_etags_are_verified_and_a_corrupted_download_is_refused(s3_prefix, tmp_path, monkeypatch, caplog):
    src = tmp_path / "big"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "model.safetensors").write_bytes(os.urandom(11 * MIB))  # 3 parts of 5 MiB (the last 1 MiB)
    uri = f"{s3_prefix}/big"
    put_plain(src, uri, multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    entries = s3.S3Backend().listing(storage.parse_uri(uri))
    assert {e["path"]: e["etag"].endswith("-3") for e in entries} == {"config.json": False, "model.safetensors": True}
    storage.identify(uri)
    with storage.local_input(uri) as local:
        assert (local / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    assert "checked by size only" not in caplog.text  # both ETags were reproduced

    # Bytes that do not give a single-part ETag (the MD5 of the object) are refused. A multipart
    # ETag that no usual layout reproduces cannot tell corruption from an odd uploader: logged.
    real = s3._download

    def corrupting(pairs, **kwargs):
        real(pairs, **kwargs)
        for _, dst in pairs:
            if dst.name == "config.json":
                dst.write_bytes(b'{"v": 3}')  # same size, other bytes

    storage.write_bytes(storage.join(uri, "config.json"), b'{"v": 2}')  # a new listing: not in the cache
    with pytest.raises(SaeMergeError, match="objects changed since it was identified"):
        with storage.local_input(uri):
            pass
    storage.identify(uri)
    monkeypatch.setattr(s3, "_download", corrupting)
    with pytest.raises(SaeMergeError, match="'config.json' does not match its ETag"):
        with storage.local_input(uri):
            pass


def test_plain_experts_and_base_pass_preflight_and_make_models(plain_family, s3_prefix, tmp_path):
    data = tmp_path / "data" / "math"
    data.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        (data / f"{split}.jsonl").write_text(
            "".join(json.dumps({"question": str(i), "answer": str(i)}) + "\n" for i in range(5))
        )
    experts, base = [plain_family["expert0"], plain_family["expert1"]], plain_family["base"]
    put_plain(tmp_path / "data", f"{s3_prefix}/plain/data")  # data must be published: the steps need it so
    with pytest.raises(SaeMergeError, match=r"data_uri .*: no published directory there .*saemerge upload --data"):
        preflight.check_inputs(experts, base, f"{s3_prefix}/plain/data", {"saebench_math": 8}, {"saebench_math": 5})
    assert main(["upload", "--data", str(tmp_path / "data"), f"{s3_prefix}/data"]) == 0
    preflight.check_inputs(experts, base, f"{s3_prefix}/data", {"saebench_math": 8}, {"saebench_math": 5})

    run = f"{s3_prefix}/run"
    a = prune_variant(run, {"source": experts[0], "name": "expert:expert0", "sparsity": 0.1}, base_uri=base)
    b = prune_variant(run, {"source": experts[1], "name": "expert:expert1", "sparsity": 0.1}, base_uri=base)
    pair = {
        "generation": 0,
        "index": 0,
        "s_t": 0.3,
        "a": dict(a, score=0.4),
        "b": dict(b, score=0.6),
        "archive_hashes": [],
    }
    child = pair_and_merge(run, pair, base_uri=base)
    assert storage.exists(child["uri"]) and child["parents"] == [a["id"], b["id"]]
    # the run records what it read: each plain input once, by identity
    recorded = {runlog.read_json(u)["uri"]: runlog.read_json(u) for u in storage.list_uris(f"{run}/inputs")}
    assert set(recorded) == {base, *experts}
    assert all(r["kind"] == "plain" and r["identity"] == storage.identify(u)["identity"] for u, r in recorded.items())
    # a retry finds its models by recipe: the identities are stable
    assert prune_variant(run, {"source": experts[0], "name": "expert:expert0", "sparsity": 0.1}, base_uri=base) == a


def test_upload_publishes_a_local_checkpoint_with_a_manifest(s3_prefix, tiny_family, tmp_path, capsys):
    src = tmp_path / "ckpt"
    src.mkdir()
    for rel in mf.list_files(tiny_family["expert1"]):
        (src / rel).write_bytes((tiny_family["expert1"] / rel).read_bytes())
    (src / ".cache" / "huggingface").mkdir(parents=True)
    (src / ".cache" / "huggingface" / "download.lock").write_text("x")  # huggingface-cli --local-dir leaves this
    dest = f"{s3_prefix}/published/expert1"

    assert main(["upload", str(src), dest, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    manifest = storage.read_manifest(dest)
    assert (
        summary["content_hash"] == manifest["content_hash"] == mf.build_manifest(tiny_family["expert1"])["files_hash"]
    )
    assert summary["uploaded"] is True and not any(f["path"].startswith(".") for f in manifest["files"])
    assert storage.identify(dest) == {
        **storage.identify(dest),
        "kind": "published",
        "identity": manifest["content_hash"],
    }
    assert src.is_dir() and (src / "config.json").is_file()  # the source is left as it was

    assert main(["upload", str(src), dest]) == 0
    assert "already published (same content)" in capsys.readouterr().out
    (src / "config.json").write_text(json.dumps({**json.loads((src / "config.json").read_text()), "x": 1}))
    assert main(["upload", str(src), dest]) == 2
    assert "already holds another published directory" in capsys.readouterr().err
    assert main(["upload", str(src), dest, "--replace"]) == 0
    (src / "evil.py").write_text("import os")
    assert main(["upload", str(src), f"{s3_prefix}/published/evil"]) == 2
    assert "evil.py is Python code" in capsys.readouterr().err


@pytest.fixture
def count_gets():
    """count_gets() -> a list of the GetObject requests sent from now on (to the end of the test)."""
    registered = []

    def start() -> list[str]:
        seen: list[str] = []

        def hook(params, **kwargs):
            seen.append(params.get("Key", ""))

        client = storage.s3_client()
        client.meta.events.register("before-parameter-build.s3.GetObject", hook)
        registered.append((client, hook))
        return seen

    yield start
    for client, hook in registered:
        client.meta.events.unregister("before-parameter-build.s3.GetObject", hook)
