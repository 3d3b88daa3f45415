"""The failing step's one-line reason, read from a kfp.local log (which indents a step's output)."""

from saemerge.pipeline.local_failures import failure_reason

# As kfp.local 2.17 writes it: the step's streamed output indented by four blanks.
_INDENTED = """\
10:00:01.123 - INFO - Executing task 'preflight'
    Traceback (most recent call last):
      File "/x/steps/models.py", line 10, in check
        raise SaeMergeError(f"expert s3://b/models/math: hidden size 64, the base has 32")
    saemerge.errors.SaeMergeError: expert s3://b/models/math: hidden size 64, the base has 32
10:00:09.000 - ERROR - Task \x1b[96m'preflight'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m
""".replace("\x1b[96m'preflight'\x1b[0m", "'preflight'")


def test_an_indented_input_error_is_the_reason_and_not_resumable():
    step, reason, resumable = failure_reason(_INDENTED)
    assert step == "preflight"
    assert reason == "expert s3://b/models/math: hidden size 64, the base has 32"
    assert resumable is False


def test_an_indented_other_error_is_named_and_resumable():
    log = _INDENTED.replace(
        "saemerge.errors.SaeMergeError: expert", "botocore.exceptions.EndpointConnectionError: expert"
    )
    step, reason, resumable = failure_reason(log)
    assert reason.startswith("EndpointConnectionError: expert") and resumable


def test_no_error_line_leaves_the_reason_unknown():
    assert failure_reason("    just output\nTask 'x' finished with status FAILURE\n") == ("x", None, True)
