"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors never reach torch's parallel grain size, but some kernels (bincount) open a
    parallel region anyway, which costs milliseconds on a shared machine: run single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def recorded_run(tmp_path):
    """A run directory whose run.json records a configuration, as the init step writes it:
    ``recorded_run(**params)`` returns the run's URI (the settings the later steps read)."""
    from saemerge import runlog
    from saemerge.config import RunConfig
    from saemerge.runlog import RunLayout

    def record(**params) -> str:
        run = str(tmp_path / "run")
        config = RunConfig.from_params(
            {"run_uri": run, "experts": ["/m/math", "/m/ml"], "base_uri": "/m/base", "data_uri": "/data", **params}
        )
        runlog.write_json(RunLayout(run).run_json, {"config": config.to_json()})
        return run

    return record
