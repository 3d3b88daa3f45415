"""Pure math of SAE and its baselines: tensors and plain values in, tensors and values out.

No file I/O, logging of data, kfp or S3 here; the streaming drivers call these functions
tensor by tensor. Modules:

- :mod:`~saemerge.core.prune`: prunable tensors, magnitude masks (per tensor, streamed global)
- :mod:`~saemerge.core.sparsity`: zero_count / hoyer measures and the global accumulator
- :mod:`~saemerge.core.sae`: SAE mixing ratio and pair merge (linear / fill attraction)
- :mod:`~saemerge.core.baselines`: linear, task arithmetic, TIES, DARE, RankMean, ``MERGE_METHODS``
- :mod:`~saemerge.core.schedule`: cyclic sparsity schedule
- :mod:`~saemerge.core.fitness`, :mod:`~saemerge.core.archive`: fitness, pairing, archive update
- :mod:`~saemerge.core.pso`: PSO-Merging update and swarm bookkeeping
- :mod:`~saemerge.core.hashing`: content hashes of checkpoints and recipes
"""
