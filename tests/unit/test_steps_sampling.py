"""The sampling step draws from the splits the run's ``opt_splits`` names, as run.json records it."""

import pytest

from saemerge import runlog
from saemerge.errors import SaeMergeError
from saemerge.runlog import RunLayout
from saemerge.steps.evaluation import ensure_generation_sample, read_sample, run_opt_splits
from tests.support.fixtures import write_bench_data

SIZES = {"saebench_math": 10, "saebench_multilingual": 10}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_bench_data(tmp_path_factory.mktemp("bench"), {"train": 40, "validation": 10, "test": 20}) / "data"


def _ids(run: str, generation: int) -> list[str]:
    return [str(d["id"]) for ds in read_sample(RunLayout(run).sample(generation)).values() for d in ds]


@pytest.mark.parametrize("config, validation_only", [({"opt_splits": "validation"}, True), ({}, False)])
def test_the_step_draws_from_the_recorded_splits(tmp_path, data, config, validation_only):
    run = str(tmp_path / "run")
    runlog.write_json(RunLayout(run).run_json, {"config": config})  # {}: a run.json from before the parameter
    ensure_generation_sample(run, 0, str(data), SIZES, seed=0)
    got = _ids(run, 0)
    assert len(got) == 20
    assert all("-validation-" in i for i in got) == validation_only
    assert run_opt_splits(run) == (("validation",) if validation_only else ("train", "validation"))


def test_a_run_without_run_json_is_refused(tmp_path):
    with pytest.raises(SaeMergeError, match="run.json: not written"):
        run_opt_splits(str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_the_old_names_of_the_renamed_steps_still_work():
    """Renamed so a name says what it does; the old names stay for one release."""
    from saemerge.evaluate import sampling
    from saemerge.steps import evaluation, models

    assert evaluation.sample_optimisation_set is ensure_generation_sample
    assert ensure_generation_sample is not sampling.sample_optimisation_set  # the step, not the draw
    assert models.merge_pair is models.pair_and_merge_with_run_settings
