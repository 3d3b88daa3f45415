"""kfp components of the SAE pipeline, one file each.

Each component is a typed signature plus one call into :mod:`saemerge.steps`, where the
logic lives and is unit-tested without kfp. Imports of the library sit inside the function
bodies, so a light step does not pay for torch or lm-eval. The compiled pipeline does not
ship these bodies: it keeps each signature (what kfp's executor reads) and calls this
package's copy in the image (:func:`saemerge.pipeline.compile.delegate_steps`), so every
component must be the function ``<name>`` of ``components/<name>.py``. Checkpoints never
travel as kfp artifacts: steps pass S3 URIs, and an ``Output[Model]`` is only a pointer for
lineage in the UI. Its ``.uri`` stays the one KFP's launcher assigned under the pipeline root
(rewriting it would make the launcher upload to, or KFP record, the wrong place); the
checkpoint's S3 prefix is in its metadata (``checkpoint_uri``, with the content hash and
figures) and in the small JSON file written at ``.path``
(:func:`saemerge.steps.records.describe_model`).

The functions here are plain Python; :mod:`saemerge.pipeline.sae_pipeline` turns them into
components with the CPU or GPU image chosen at compile time.
"""
