"""The run's settings as a step inside the search reads them: from ``run.json``, not from its inputs.

The search's first step (``init_population``, ``pso_init``, ``m2n2_init``) takes every run
parameter, checks them all (:meth:`saemerge.config.RunConfig.from_params`, preflight) and
records the configuration in ``RUN/run.json``. The steps after it take only the run, the
generation and the handoff URIs of their records, and read the settings they need here.

Why: the Kubeflow backend copies every input value of every task into the Argo Workflow
several times (the executor input twice, the component spec, the step's signature), and the
Workflow must fit in etcd. A generation whose steps took the run's 20-odd settings each was
most of a 24-generation run's bytes.

Caching stays correct: a step's cache key is its inputs, which now always include the run
(``run_uri``) and the generation; a run's settings cannot change under the same run URI (the
init step refuses a run.json of another configuration), so a cache hit is the same work.
"""

from __future__ import annotations

from saemerge import storage
from saemerge.config import RunConfig
from saemerge.errors import SaeMergeError
from saemerge.runlog import RunLayout


def run_config(run: str) -> RunConfig:
    """The configuration `run`'s init step recorded (``run.json``), parsed and checked once more.

    Raises:
        SaeMergeError: no run.json (a step started before its run's init step).
    """
    layout = RunLayout(run)
    if not storage.exists(layout.run_json):
        raise SaeMergeError(f"{layout.run_json}: not written (the run's init step writes it before any other step)")
    return RunConfig.from_json(layout.read_config())
