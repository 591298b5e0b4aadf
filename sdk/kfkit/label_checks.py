"""Label mistakes found before anything is fitted, each as one line naming the column: validate
runs them (it sees both splits, so the run stops before training), train again on its own
input (it can be composed without validate)."""

from __future__ import annotations

import pandas as pd

from kfkit.errors import KfkitError

# A float label "looks continuous" for classification past either bound: more than half of its
# rows hold a value of their own (a class per row or two cannot be learned), or more than 100
# classes (far past any class list people write by hand; floats that many are measurements).
MAX_FLOAT_CLASS_SHARE = 0.5
MAX_FLOAT_CLASSES = 100


def check_label(labels: pd.Series, label_column: str, problem_type: str, where: str) -> None:
    """The label fits the problem type: classification with a float label of many values, or
    regression with a non-numeric one, is refused with one line saying what to use instead."""
    present = labels[labels.notna()]
    if problem_type == "classification" and pd.api.types.is_float_dtype(present):
        classes = int(present.nunique())
        if classes > MAX_FLOAT_CLASSES or classes > MAX_FLOAT_CLASS_SHARE * len(present):
            raise KfkitError(
                f"{where}: label '{label_column}' holds {classes} distinct float values in "
                f"{len(present)} rows: it looks continuous; use problem_type=regression"
            )
    if problem_type == "regression" and not pd.api.types.is_numeric_dtype(present):
        numbers = pd.to_numeric(present, errors="coerce")
        text = present[numbers.isna()]
        if len(text):
            raise KfkitError(
                f"{where}: label '{label_column}' is not numeric for regression: {len(text)} of "
                f"{len(present)} rows hold text such as {str(text.iloc[0])!r}; use "
                "problem_type=classification"
            )


def check_eval_classes(train_labels: pd.Series, eval_labels: pd.Series, label_column: str) -> None:
    """Every class in the eval split also appears in the train split.

    An error, not a warning: the model cannot predict a class it never saw, so its metrics on
    those rows (log loss, per-class scores) are undefined, and the fix lies in the data or the
    split (split_key, eval_fraction, more rows of that class), not in the model."""
    # Classes, not rows, become text: millions of rows hold a handful of classes.
    seen = {str(label) for label in train_labels.dropna().unique()}
    eval_counts = eval_labels.dropna().value_counts()
    unseen = {str(label): int(count) for label, count in eval_counts.items() if str(label) not in seen}
    if unseen:
        classes = sorted(unseen)
        raise KfkitError(
            f"eval split: label '{label_column}' has class(es) {classes[:5]}"
            f"{' and more' if len(classes) > 5 else ''} ({sum(unseen.values())} rows) that the train split "
            "lacks; a model cannot learn them: add rows of those classes or change split_key "
            "or eval_fraction"
        )


def class_names(labels: pd.Series) -> pd.Series:
    """A classification label as its class names: ``str`` of each value, as ``astype(str)`` gives
    them, but each distinct value converted once rather than once per row (seconds on millions)."""
    import numpy as np

    if labels.isna().any():
        return labels.astype(str)
    codes, distinct = pd.factorize(labels)
    names = np.array([str(value) for value in distinct], dtype=object)
    return pd.Series(names[codes], index=labels.index)
