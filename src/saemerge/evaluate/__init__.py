"""Evaluation over lm-eval: task configs, sampling, and per-example scoring.

Import from the module that defines a name; this package imports nothing itself, so
importing one part (e.g. the sampling) does not load lm-eval or torch:

- :mod:`~saemerge.evaluate.evaluator`: :class:`~saemerge.evaluate.evaluator.Evaluator`
  scores checkpoints (``.score(model_dir, samples)``);
- :mod:`~saemerge.evaluate.results`: :class:`~saemerge.evaluate.results.EvalResult`, one
  :class:`~saemerge.evaluate.results.ExampleResult` per example, per-task accuracy and the
  macro average;
- :mod:`~saemerge.evaluate.sampling`: ``sample_optimisation_set`` and ``draw_test_set``
  write the JSONL samples the evaluator scores;
- :mod:`~saemerge.evaluate.taskspec`: ``TASKS``, the tiny benchmark's ``saebench_math`` and
  ``saebench_multilingual`` and the real ``gsm8k_sae`` and ``mmlu_prox_sae``;
- :mod:`~saemerge.evaluate.formats`: the tiny benchmark's prompt and answer formats;
- :mod:`~saemerge.evaluate.taskfns`: the functions the task YAMLs under ``tasks/`` call;
- :mod:`~saemerge.evaluate.overlay`, :mod:`~saemerge.evaluate.hf`: per-sample task YAMLs, and
  one HF model whose weights are swapped per checkpoint.
"""
