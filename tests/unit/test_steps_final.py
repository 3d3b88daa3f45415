"""The reported model of each search: SAE by fitness s + γρ, PSO and M2N2 by raw score (SAE-SPEC §7)."""

import pytest

from saemerge.runlog import RunLayout
from saemerge.steps.evaluation import ScoreCache
from saemerge.steps.final import reported_member

# An un-evolved pruned initial member and a dense M2N2 child that scores higher.
PRUNED = {"id": "m-aaaaaaaaaaaa", "content_hash": "a" * 64, "score": 0.50, "sparsity": 0.6}
DENSE = {"id": "m-bbbbbbbbbbbb", "content_hash": "b" * 64, "score": 0.52, "sparsity": 0.0}


@pytest.mark.parametrize("search, picked", [("sae", PRUNED), ("m2n2", DENSE), ("pso", DENSE)])
def test_m2n2_and_pso_report_the_best_raw_score(tmp_path, search, picked):
    cache = ScoreCache.for_run(RunLayout(str(tmp_path / "run")))  # empty: the records' scores count
    best = reported_member(cache, [PRUNED, DENSE], search, gamma=0.05)
    # SAE: 0.50 + 0.05·0.6 = 0.53 > 0.52; M2N2 and PSO: 0.52 > 0.50
    assert best["id"] == picked["id"]
    assert best["overall_fitness"] == pytest.approx(0.53 if search == "sae" else 0.52)
