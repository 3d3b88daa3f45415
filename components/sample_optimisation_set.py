def sample_optimisation_set(run_uri: str, generation: int, data_uri: str, opt_sizes: dict, seed: int) -> str:
    """Draw generation `generation`'s optimisation set from train/validation splits only.

    Seeded by (seed, generation); one JSONL file per task under RUN/samples/gen-XX/.

    Returns:
        The URI of the sample directory.
    """
    from saemerge.config import as_int, typed
    from saemerge.steps.evaluation import sample_optimisation_set as draw

    p = typed(opt_sizes=opt_sizes, seed=seed)
    return draw(run_uri, as_int("generation", generation), data_uri, p["opt_sizes"], p["seed"])
