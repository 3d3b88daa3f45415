"""The searches, one table: name -> its pipeline (DESIGN "Searches and studies", SAE-SPEC §7).

Each search is one kfp pipeline over the shared components (sample, evaluate, final evaluate,
report); ``saemerge compile|run|submit --search NAME`` pick one here. Modules are imported
when a search is built, so naming one does not import kfp for the others.
"""

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from saemerge.config import SEARCH_TABLE
from saemerge.errors import unknown_name

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Search:
    name: str  # a key of saemerge.config.SEARCH_TABLE: its pipeline name and default steps are there
    module: str  # defines build_pipeline(options)
    summary: str

    @property
    def pipeline_name(self) -> str:
        """The pipeline's name in Kubeflow."""
        return SEARCH_TABLE[self.name].pipeline_name

    @property
    def default_steps(self) -> int:
        """Generations (SAE, M2N2) or update steps (PSO) when none are given."""
        return SEARCH_TABLE[self.name].default_steps

    @property
    def golden(self) -> Path:
        """The checked-in compiled YAML (`make golden` rewrites it)."""
        return HERE / f"{self.name}_pipeline.yaml"

    def build(self, options):
        """The pipeline function for compile `options` (a CompileOptions of this search)."""
        return import_module(self.module).build_pipeline(options)


SEARCHES = {
    s.name: s
    for s in [
        Search("sae", "saemerge.pipeline.sae_pipeline", "Sparsity-Aware Evolution (arXiv 2602.08218)"),
        Search("pso", "saemerge.pipeline.pso_pipeline", "PSO-Merging (arXiv 2508.19839), SAE's main comparator"),
        Search("m2n2", "saemerge.pipeline.m2n2_pipeline", "M2N2: competition and attraction (Abrantes et al. 2025)"),
    ]
}


def get_search(name: str) -> Search:
    if name not in SEARCHES:
        raise unknown_name("search", name, SEARCHES)
    return SEARCHES[name]
