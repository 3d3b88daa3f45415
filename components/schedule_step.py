def schedule_step(
    generation: int, steps: int, s_min: float, s_max: float, t0: int, t_mult: int, reverse: bool
) -> float:
    """The sparsity s_t of `generation` on the cyclic schedule (SAE-SPEC §5)."""
    from saemerge.config import as_int, typed
    from saemerge.core.schedule import cyclic_schedule

    p = typed(steps=steps, s_min=s_min, s_max=s_max, t0=t0, t_mult=t_mult, reverse=reverse)
    return cyclic_schedule(**p)[as_int("generation", generation)]
