"""``--param NAME=VALUE``: one parser for ``saemerge run`` and ``saemerge submit`` (saemerge.config)."""

from __future__ import annotations

import pytest

from saemerge.cli import main
from saemerge.config import param_value, parse_param_args
from saemerge.errors import SaeMergeError


def test_names_and_raw_values():
    assert parse_param_args(None) == {}
    assert parse_param_args(["gamma=0.1", " seed =3", "data_uri=s3://b/k=v", "empty="]) == {
        "gamma": "0.1",
        "seed": "3",
        "data_uri": "s3://b/k=v",
        "empty": "",
    }


@pytest.mark.parametrize("bad", ["gamma", "=0.1", "  =1"])
def test_an_argument_without_a_name_or_equals_is_one_line(bad):
    with pytest.raises(SaeMergeError, match=r"^--param .*: expected NAME=VALUE$"):
        parse_param_args([bad])


@pytest.mark.parametrize("twice", [["seed=1", "seed=2"], ["seed=1", " seed=1"]])
def test_a_name_given_twice_is_refused(twice):
    with pytest.raises(SaeMergeError, match=r"^--param seed: given twice$"):
        parse_param_args(twice)


def test_run_reads_json_values_else_text():
    assert param_value("0.1") == 0.1 and param_value("3") == 3 and param_value("true") is True
    assert param_value('{"a": 1}') == {"a": 1} and param_value("s3://b/k") == "s3://b/k"


@pytest.mark.parametrize("verb", ["run", "submit"])
def test_both_verbs_refuse_a_bad_param_with_exit_2(verb, capsys, tmp_path):
    extra = ["--local", "--workdir", str(tmp_path)] if verb == "run" else ["--dry-run"]
    assert main([verb, *extra, "--param", "seed=1", "--param", "seed=2"]) == 2
    assert "--param seed: given twice" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_the_old_path_is_the_same_parser():
    from saemerge.pipeline import submit

    assert submit.parse_param_args is parse_param_args
