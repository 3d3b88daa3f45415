"""Small utilities every layer may use; they import nothing of saemerge but :mod:`saemerge.errors`.

* :mod:`~saemerge.util.units`: sizes written as text, and back (``2Mi``, ``1.5 KiB``).
* :mod:`~saemerge.util.cpus`: the cores a step may use and how busy they are, without torch.
* :mod:`~saemerge.util.manifest`: a directory's ``manifest.json`` (files, sizes, digests), the
  mark that it is published; storage and the cache both use it, so it sits below both.

This package's ``__init__`` imports nothing.
"""
