"""kfkit.params: the one place parameter constraints are checked, including the "off" spelling
that switches a threshold or tolerance off where kfp's local runner cannot pass null."""

from __future__ import annotations

import pytest

from kfkit.errors import KfkitError
from kfkit.params import check_no_nested_null, check_thresholds, is_off


def test_null_and_off_both_switch_a_threshold_off():
    limits = check_thresholds(
        "validate", "drift_thresholds", {"a": None, "b": "off", "c": 0.3}, ["a", "b", "c"]
    )
    assert limits == {"a": None, "b": None, "c": 0.3}
    assert is_off(None) and is_off("off") and not is_off(0) and not is_off("0.2")


@pytest.mark.parametrize("value", ["of", "OFF ", True, 0, -0.1])  # unquoted YAML `on` is True
def test_anything_else_is_refused_naming_the_spelling(value):
    with pytest.raises(KfkitError, match=r"\(1 or more, or \"off\", turns it off\)"):
        check_thresholds("validate", "skew_thresholds", {"a": value}, ["a"])


@pytest.mark.parametrize(
    ("value", "path"),
    [({"log_loss": None}, "log_loss"), ({"a": [1, None]}, "a.1"), ([{"x": {"y": None}}], "0.x.y")],
)
def test_a_null_inside_a_parameter_is_one_line_naming_where(value, path):
    with pytest.raises(KfkitError) as info:
        check_no_nested_null("tolerances", value)
    assert str(info.value) == (
        f"The 'tolerances' parameter of the pipeline has null at '{path}', which kfp's local runner "
        'cannot pass; write "off" to switch a threshold or tolerance off'
    )


def test_values_without_null_pass():
    check_no_nested_null("tolerances", {"log_loss": "off", "accuracy": 0.02, "nested": {"a": [1, "b"]}})
    check_no_nested_null("slice_features", [])
    check_no_nested_null("model_name", None)  # a top-level null is the pipeline default's business
