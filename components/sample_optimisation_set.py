def sample_optimisation_set(run_uri: str, generation: int, data_uri: str, opt_sizes: dict, seed: int) -> str:
    """Draw generation `generation`'s optimisation set from train/validation splits only.

    Seeded by (seed, generation); one JSONL file per task under RUN/samples/gen-XX/.

    Returns:
        The URI of the sample directory.
    """
    from saemerge import steps

    return steps.sample_optimisation_set(run_uri, int(generation), data_uri, opt_sizes, int(seed))
