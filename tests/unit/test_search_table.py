"""The searches are named once: saemerge.config.SEARCH_TABLE (name, pipeline name, default steps)."""

from __future__ import annotations

from importlib import import_module

from saemerge.config import SEARCH_TABLE, SEARCHES, RunConfig
from saemerge.pipeline.searches import SEARCHES as PIPELINES
from saemerge.pipeline.searches import get_search


def test_the_pipelines_are_the_searches_of_the_table():
    assert tuple(PIPELINES) == tuple(SEARCH_TABLE) == SEARCHES == ("sae", "pso", "m2n2")
    for name, info in SEARCH_TABLE.items():
        search = get_search(name)
        assert (search.pipeline_name, search.default_steps) == (info.pipeline_name, info.default_steps)
        # the pipeline module names itself in Kubeflow as the table says (kfp is imported here)
        assert import_module(search.module).PIPELINE_NAME == info.pipeline_name


def test_run_config_steps_default_is_the_tables():
    steps = RunConfig.__dataclass_fields__["steps"]
    assert steps.default == SEARCH_TABLE["sae"].default_steps == 12
    assert "PSO's default is 5)" in steps.metadata["help"] and SEARCH_TABLE["pso"].default_steps == 5
