"""RunConfig: one table of run parameters, parsed once with messages that name the parameter."""

import re
from pathlib import Path

import pytest

from saemerge import config as cfg
from saemerge.config import PARAMS, RunConfig, flag_name, typed
from saemerge.errors import SaeMergeError

REQUIRED = dict(
    run_uri="s3://b/runs/r", experts=["s3://b/m/math", "s3://b/m/ml"], base_uri="s3://b/m/base", data_uri="s3://b/data"
)


def test_defaults_are_the_papers():
    c = RunConfig.from_params(REQUIRED)
    assert (c.s_min, c.s_max, c.t0, c.t_mult, c.steps, c.archive_size) == (0.1, 0.6, 3, 2, 12, 8)
    assert (c.beta, c.gamma, c.scoring, c.competition) == (1.0, 0.05, "global", "local_then_global")
    assert c.levels == [0.0, 0.1, 0.35, 0.6]


def test_opt_splits_defaults_to_train_and_validation_and_is_checked():
    assert RunConfig.from_params(REQUIRED).splits == ("train", "validation")
    c = RunConfig.from_params({**REQUIRED, "opt_splits": "validation"})
    assert c.splits == ("validation",) and c.to_json()["opt_splits"] == "validation"
    with pytest.raises(SaeMergeError, match="opt_splits"):
        RunConfig.from_params({**REQUIRED, "opt_splits": "test"})


def test_kfp_local_floats_become_ints_and_dicts_are_typed():
    c = RunConfig.from_params(
        {
            **REQUIRED,
            "seed": 3.0,
            "archive_size": 4.0,
            "opt_sizes": {"saebench_math": 8.0},
            "test_sizes": {"saebench_math": 16},
        }
    )
    assert (c.seed, c.archive_size, c.opt_sizes) == (3, 4, {"saebench_math": 8})
    assert isinstance(c.seed, int) and isinstance(c.opt_sizes["saebench_math"], int)
    assert typed(seed=2.0, s_min=0) == {"seed": 2, "s_min": 0.0}


def test_round_trip_through_run_json():
    c = RunConfig.from_params({**REQUIRED, "scoring": "local", "baselines": ["ties"]})
    assert RunConfig.from_json(c.to_json()) == c
    assert "steps" not in c.pipeline_arguments() and c.pipeline_arguments()["scoring"] == "local"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"s_min": 0.7}, "s_min 0.7 is greater than s_max 0.6"),
        ({"scoring": "bogus"}, "unknown scoring 'bogus'"),
        ({"scoring": "globl"}, "did you mean 'global'"),
        ({"competition": "loc"}, "unknown competition 'loc'"),
        ({"measure": "hoier"}, "unknown measure 'hoier'; did you mean 'hoyer'"),
        ({"archive_size": 1}, "archive_size 1: must be at least 2"),
        ({"gamma": -1}, "gamma -1: must be at least 0"),
        ({"s_max": 1.0}, "s_max 1.0: must be below 1"),
        ({"t0": 2.5}, "t0 2.5: expected a whole number"),
        ({"reverse": "yes"}, "reverse 'yes': expected true or false"),
        ({"opt_sizes": {}}, "opt_sizes: no task given"),
        # whether a task exists is preflight's to say (the task set): tests/unit/test_taskset.py
        ({"opt_sizes": {"saebench math": 4}}, "opt_sizes: 'saebench math' is not a task name"),
        ({"opt_sizes": {"saebench_math": 0}, "test_sizes": {"saebench_math": 4}}, "saebench_math has size 0"),
        ({"test_sizes": {"saebench_multilingual": 4}}, "name different tasks"),
        ({"baselines": ["ties", "tie"]}, "unknown baselines 'tie'"),
        ({"experts": []}, "experts: at least one expert"),
        ({"experts": ["s3://a/math", "s3://b/math"]}, "two experts share the name 'math'"),
        ({"eval_device": "gpu"}, "eval_device 'gpu': expected auto, cpu, cuda or cuda:N"),
        ({"merge_device": "auto"}, "merge_device 'auto': expected cpu, cuda or cuda:N"),
        ({"sedd": 1}, "unknown run parameter 'sedd'; did you mean 'seed'"),
    ],
)
def test_bad_parameters_fail_with_one_line_naming_them(change, message):
    with pytest.raises(SaeMergeError) as err:
        RunConfig.from_params({**REQUIRED, **change})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_required_parameter_is_named():
    with pytest.raises(SaeMergeError, match="base_uri: required"):
        RunConfig.from_params({k: v for k, v in REQUIRED.items() if k != "base_uri"})


def test_ablation_settings_are_accepted():
    """Tables 2-6 need degenerate settings: no pruning (s_min = s_max = 0), β = γ = 0, no grow."""
    c = RunConfig.from_params({**REQUIRED, "s_min": 0, "s_max": 0, "beta": 0, "gamma": 0, "t_mult": 1})
    assert c.levels == [0.0]


def test_messages_can_name_command_line_flags():
    with pytest.raises(SaeMergeError, match=r"--s-min 0.7 is greater than --s-max 0.6"):
        RunConfig.from_params({**REQUIRED, "s_min": 0.7}, label=flag_name)


def test_option_names_match_the_implementations():
    from saemerge.core.archive import COMPETITIONS
    from saemerge.core.baselines import MERGE_METHODS
    from saemerge.core.sae import ATTRACTIONS
    from saemerge.core.sparsity import MEASURES

    assert tuple(COMPETITIONS) == cfg.COMPETITIONS
    assert tuple(MEASURES) == cfg.MEASURES
    assert tuple(ATTRACTIONS) == cfg.ATTRACTIONS
    assert {method for method, _ in cfg.BASELINES.values()} <= set(MERGE_METHODS)


def test_compiled_parameters_carry_the_configs_defaults_and_descriptions(tmp_path):
    import yaml

    from saemerge.pipeline.common import CompileOptions
    from saemerge.pipeline.compile import compile_pipeline

    out = tmp_path / "p.yaml"
    compile_pipeline(out, CompileOptions(steps=1))
    params = next(yaml.safe_load_all(out.read_text()))["root"]["inputDefinitions"]["parameters"]
    expected = {name: p for name, p in PARAMS.items() if p.takes("sae")}
    assert set(params) == set(expected)
    for name, p in expected.items():
        assert params[name]["description"].startswith(p.help), name
        if p.required:
            assert "defaultValue" not in params[name], name
        else:
            assert params[name]["defaultValue"] == p.default, name
    golden = Path(cfg.__file__).resolve().parents[2] / "pipeline" / "sae_pipeline.yaml"
    golden_params = next(yaml.safe_load_all(golden.read_text()))["root"]["inputDefinitions"]["parameters"]
    assert {k: v.get("description") for k, v in golden_params.items()} == {
        k: v.get("description") for k, v in params.items()
    }, "golden YAML drifted: run `make golden`"


def test_docstring_lists_every_pipeline_parameter():
    for search in cfg.SEARCHES:
        doc = cfg.pipeline_docstring("Summary.", search)
        names = re.findall(r"^    (\w+):", doc, flags=re.M)
        assert names == [n for n, p in PARAMS.items() if p.takes(search)]
    assert "pso_w" not in cfg.pipeline_docstring("S.", "sae") and "t0" not in cfg.pipeline_docstring("S.", "pso")


def test_pso_needs_two_particles():
    with pytest.raises(SaeMergeError, match="1 particle; a swarm needs at least 2"):
        RunConfig.from_params(
            {**REQUIRED, "experts": ["/m/math"], "search": "pso", "pso_dare_copies": 0, "pso_include_base": False}
        )
    assert RunConfig.from_params({**REQUIRED, "search": "pso"}).pipeline_arguments()["pso_w"] == 0.2
