"""Reports: the run report (:mod:`~saemerge.reports.run`) and what reports share (:mod:`~saemerge.reports.images`).

A study's report is :mod:`saemerge.study.report`; it draws its plots with the same helpers.
This package's ``__init__`` imports nothing.
"""
