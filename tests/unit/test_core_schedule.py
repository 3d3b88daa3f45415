"""Cyclic sparsity schedule (SAE-SPEC §5)."""

from __future__ import annotations

import pytest

from saemerge.core.schedule import cyclic_schedule

SPEC_LIST = [0.1, 0.225, 0.475, 0.1, 0.1335, 0.225, 0.35, 0.475, 0.5665, 0.1, 0.1085, 0.1335]


def test_spec_defaults_list():
    got = cyclic_schedule()
    assert len(got) == 12
    assert [round(s, 4) for s in got] == SPEC_LIST


def test_spec_defaults_explicit():
    got = cyclic_schedule(steps=12, s_min=0.1, s_max=0.6, t0=3, t_mult=2)
    assert got == cyclic_schedule()


def test_t_mult_one_no_grow():
    got = [round(s, 4) for s in cyclic_schedule(steps=7, t0=3, t_mult=1)]
    assert got == [0.1, 0.225, 0.475, 0.1, 0.225, 0.475, 0.1]


def test_reverse():
    got = [round(s, 4) for s in cyclic_schedule(reverse=True)]
    # each cycle mirrored: s_max + s_min - s
    assert got == [round(0.7 - s, 4) for s in SPEC_LIST]
    assert got[:3] == [0.6, 0.475, 0.225]


def test_t0_one_is_constant_at_cycle_start():
    assert cyclic_schedule(steps=3, t0=1, t_mult=1) == [0.1, 0.1, 0.1]
    assert cyclic_schedule(steps=3, t0=1, t_mult=1, reverse=True) == [0.6, 0.6, 0.6]


def test_equal_bounds_constant():
    assert cyclic_schedule(steps=5, s_min=0.3, s_max=0.3) == pytest.approx([0.3] * 5)


def test_single_step():
    assert cyclic_schedule(steps=1) == [0.1]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--s-min", "0.7", "--s-max", "0.6"], "--s-min 0.7 is greater than --s-max 0.6"),
        (["--s-min", "-0.1"], "--s-min -0.1: must be at least 0"),
        (["--s-max", "1.0"], "--s-max 1.0: must be below 1"),
        (["--steps", "0"], "--steps 0: must be at least 1"),
        (["--t0", "0"], "--t0 0: must be at least 1"),
        (["--t-mult", "0"], "--t-mult 0: must be at least 1"),
    ],
)
def test_the_command_line_checks_its_flags(argv, message, capsys):
    """The schedule is pure math; `saemerge schedule` checks the flags with RunConfig's rules."""
    from saemerge.cli import main

    assert main(["schedule", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"saemerge: error: {message}"
