"""The steps of an SAE run, as plain functions over records and URIs (no kfp here).

Each kfp component in ``components/`` is a typed signature plus one call into a module of
this package (:mod:`.population`, :mod:`.models`, :mod:`.evaluation`, :mod:`.final`);
:mod:`saemerge.pipeline.local` and the tests call the same functions. Every step is
idempotent: models are content-addressed with recipes, scores are cached per example, and
tables are rewritten whole, so a retry or a resumed run redoes no finished work.
"""
