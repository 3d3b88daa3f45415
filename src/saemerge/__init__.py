"""saemerge: Sparsity-Aware Evolution (SAE) for merging LLM experts, run as a Kubeflow pipeline."""

__version__ = "0.1.0"
