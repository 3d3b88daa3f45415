"""S3 throughput of saemerge.storage next to plain boto3, against the embedded SeaweedFS.

Writes a synthetic checkpoint (config.json + safetensors-sized shards of random bytes), starts
its own store in a temp dir, and times:

  saemerge upload     local_output(): hash + multipart upload of every file + manifest last
  boto3 upload        client.upload_file() per file (boto3's default TransferConfig)
  saemerge download   local_input(): manifest + download + sha256 verification (cold cache)
  saemerge download*  the same with verify=False
  boto3 download      client.download_file() per file

Each is run --repeat times, alternating the order; the best and the median run are reported
(the machine may be shared). Usage: python benchmarks/s3_bench.py [--size-mb 1024] [--shard-mb 256] [--repeat 2]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from saemerge import storage
from saemerge.s3server.server import Store

BUCKET = "bench"


def write_checkpoint(root: Path, size_mb: int, shard_mb: int) -> list[Path]:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "llama"}')
    paths, left, i = [root / "config.json"], size_mb << 20, 0
    n = -(-size_mb // shard_mb)
    while left > 0:
        i += 1
        size = min(left, shard_mb << 20)
        path = root / f"model-{i:05d}-of-{n:05d}.safetensors"
        with open(path, "wb") as f:
            for off in range(0, size, 8 << 20):
                f.write(os.urandom(min(8 << 20, size - off)))
        paths.append(path)
        left -= size
    return paths


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="checkpoint size in MiB (default 1024)")
    ap.add_argument("--shard-mb", type=int, default=256, help="shard size in MiB (default 256)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per method; the best is reported")
    ap.add_argument("--work-dir", default=None, help="where to put the checkpoint, store and cache")
    args = ap.parse_args(argv)

    import boto3

    work = Path(tempfile.mkdtemp(prefix="s3bench-", dir=args.work_dir))
    try:
        files = write_checkpoint(work / "ckpt", args.size_mb, args.shard_mb)
        total = sum(p.stat().st_size for p in files)
        with Store(work / "store", buckets=[BUCKET]) as store:
            os.environ.update(store.env())
            os.environ["SAEMERGE_CACHE"] = str(work / "cache")
            client = boto3.client("s3")
            results: dict[str, list[float]] = {}

            def record(name, fn):
                results.setdefault(name, []).append(timed(fn))

            def sae_upload(sae_uri):
                with storage.local_output(sae_uri) as out:
                    for p in files:  # hard links: the writer's cost is not measured
                        os.link(p, out / p.name)

            def raw_upload(raw_prefix):
                for p in files:
                    client.upload_file(str(p), BUCKET, f"{raw_prefix}/{p.name}")

            def sae_download(sae_uri, verify=True):
                shutil.rmtree(work / "cache", ignore_errors=True)
                with storage.local_input(sae_uri, verify=verify):
                    pass

            def raw_download(raw_prefix):
                dest = work / "raw-dl"
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                for p in files:
                    client.download_file(BUCKET, f"{raw_prefix}/{p.name}", str(dest / p.name))

            for run in range(args.repeat):
                sae_uri = f"s3://{BUCKET}/sae-{run}/ckpt"
                raw_prefix = f"raw-{run}/ckpt"
                uploads = [
                    ("saemerge upload", functools.partial(sae_upload, sae_uri)),
                    ("boto3 upload", functools.partial(raw_upload, raw_prefix)),
                ]
                downloads = [
                    ("saemerge download", functools.partial(sae_download, sae_uri)),
                    ("saemerge download (verify=False)", functools.partial(sae_download, sae_uri, verify=False)),
                    ("boto3 download", functools.partial(raw_download, raw_prefix)),
                ]
                if run % 2:
                    uploads.reverse()
                    downloads.reverse()
                for name, fn in uploads + downloads:
                    record(name, fn)
                    print(f"  run {run}: {name:34s} {results[name][-1]:6.2f} s", file=sys.stderr)

        print(
            f"\n{total / 2**20:.0f} MiB in {len(files)} files, {args.repeat} run(s); "
            f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'method':34s} {'best s':>7s} {'MB/s':>7s} {'vs boto3':>8s} {'median s':>9s} {'MB/s':>7s} {'vs boto3':>8s}"
        )
        for name, times in results.items():
            base = results["boto3 " + name.split()[1]]
            row = f"{name:34s}"
            for pick in (min, statistics.median):
                row += f" {pick(times):7.2f} {total / 1e6 / pick(times):7.1f} {pick(base) / pick(times):8.0%}"
                row += " " if pick is min else ""
            print(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
