"""kfp components of the SAE pipeline, one file each.

Each component is a typed signature plus one call into :mod:`saemerge.steps`, where the
logic lives and is unit-tested without kfp. Imports of the library sit inside the function
bodies, so a light step does not pay for torch or lm-eval. The compiled pipeline does not
ship these bodies: it keeps each signature (what kfp's executor reads) and calls this
package's copy in the image (:func:`saemerge.pipeline.compile.delegate_steps`), so every
component must be the function ``<name>`` of ``components/<name>.py``. Checkpoints never
travel as kfp artifacts: steps pass S3 URIs and record ``Output[Model]`` pointers (``.uri``
= the S3 prefix) so lineage shows in the UI.

The functions here are plain Python; :mod:`saemerge.pipeline.sae_pipeline` turns them into
components with the CPU or GPU image chosen at compile time.
"""
