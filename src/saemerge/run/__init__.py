"""Run bookkeeping: a run's layout in object storage and its records, from the bottom up.

* :mod:`~saemerge.run.tables`: the tables' schemas; rows <-> Arrow tables; Parquet and JSON I/O.
* :mod:`~saemerge.run.layout`: :class:`~saemerge.run.layout.RunLayout`, every path of a run (DESIGN.md).
* :mod:`~saemerge.run.lease`, :mod:`~saemerge.run.compute`, :mod:`~saemerge.run.progress`,
  :mod:`~saemerge.run.attribution`: one driver per run, what it spent, how far it got, and its
  models' attribution to the experts.
* :mod:`~saemerge.run.metrics`, :mod:`~saemerge.run.inspect`: a run's records as text (``saemerge inspect``).

Each imports only those above it in this list. This package's ``__init__`` imports nothing.
"""
