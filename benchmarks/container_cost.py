"""What a pipeline step costs in a container against a subprocess, from two local runs of one pipeline.

    python benchmarks/container_cost.py RUN_DIR_SUBPROCESS RUN_DIR_DOCKER

The two run directories (``.saemerge/runs/<id>``) are the same run under ``--runner subprocess``
and ``--runner docker``. From each run's ``kfp.log`` (read with run_bench's parser): steps, mean
and total wall seconds per component, and the difference per step. Then the floors that make up
a step's fixed cost, measured here: a container's start and stop (``docker run --rm IMAGE
true``), and a fresh interpreter importing what an evaluate (GPU image) or merge (CPU image)
step imports, in the image and on the host. No timed assertions: figures to read and compare.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_bench import machine, parse_kfp_log  # noqa: E402

IMPORTS = {
    "cpu": "import saemerge.steps.models, saemerge.components.pair_and_merge",
    "gpu": "import saemerge.steps.evaluation, lm_eval, saemerge.components.evaluate",
}


def per_component(run_dir: Path) -> dict[str, list[float]]:
    by: dict[str, list[float]] = defaultdict(list)
    for task in parse_kfp_log((run_dir / "kfp.log").read_text(errors="replace")):
        by[task.component].append(task.seconds)
    return by


def timed(command: list[str], repeats: int = 3) -> float:
    """The median wall seconds of `command` over `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from saemerge.pipeline.local_docker import pipeline_images

    sub, con = (per_component(Path(d)) for d in sys.argv[1:3])
    print(machine())
    print(f"\n{'component':<32}{'steps':>6}{'subprocess s/step':>19}{'docker s/step':>15}{'extra s/step':>14}")
    for name in sorted(set(sub) | set(con)):
        a, b = sub.get(name, []), con.get(name, [])
        mean_a = statistics.mean(a) if a else float("nan")
        mean_b = statistics.mean(b) if b else float("nan")
        print(f"{name:<32}{len(b):>6}{mean_a:>19.2f}{mean_b:>15.2f}{mean_b - mean_a:>14.2f}")
    total_a, total_b = (sum(map(sum, d.values())) for d in (sub, con))
    print(f"{'all steps (sum of step walls)':<32}{'':>6}{total_a:>19.1f}{total_b:>15.1f}{total_b - total_a:>14.1f}")

    print("\nfloors (median of 3):")
    for flavour, image in pipeline_images().items():
        start = timed(["docker", "run", "--rm", "--network", "host", image, "true"])
        inside = timed(["docker", "run", "--rm", "--network", "host", image, "python", "-c", IMPORTS[flavour]])
        host = timed([sys.executable, "-c", IMPORTS[flavour]])
        print(
            f"  {flavour} image: container start+stop {start:.2f} s; start + imports of a {flavour} step "
            f"{inside:.2f} s (imports on the host {host:.2f} s)"
        )


if __name__ == "__main__":
    main()
