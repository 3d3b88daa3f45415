"""Test-only helpers, shared by the tests and the benchmarks (never shipped with saemerge).

- :mod:`tests.support.tinymodels`: tiny real LLaMA checkpoints (base + experts) built locally;
- :mod:`tests.support.fixtures`: small hand-made datasets in the layouts the evaluator reads;
- :mod:`tests.support.scripted_lm`: ``ScriptedLM``, a scripted model at lm-eval's LM seam.
"""
