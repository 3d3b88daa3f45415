def schedule_step(
    generation: int, steps: int, s_min: float, s_max: float, t0: int, t_mult: int, reverse: bool
) -> float:
    """The sparsity s_t of `generation` on the cyclic schedule (SAE-SPEC §5)."""
    from saemerge.core.schedule import cyclic_schedule

    schedule = cyclic_schedule(
        steps=int(steps), s_min=s_min, s_max=s_max, t0=int(t0), t_mult=int(t_mult), reverse=reverse
    )
    return schedule[int(generation)]
