"""A date feature held as text (what ingest writes for a date column) is converted a column at a
time to the very days serving's row-by-row conversion gives, and a text that is no date sends the
batch back to serving's conversion, which refuses that row."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from kfkit.components.score.executor import _date_days
from kfkit.serving.model import FeatureError, _to_days


def test_date_texts_become_the_days_serving_gives_them():
    texts = ["2019-01-31", None, "1969-12-31", "2019-01-31", "2020-02-29T12:00:00", "2016-07-04", None]

    days = _date_days(pa.array(texts, pa.string()))

    expected = [_to_days(text, "issue_d", row) for row, text in enumerate(texts)]
    assert days is not None and days.dtype == np.float64
    assert [math.isnan(d) for d in days] == [math.isnan(e) for e in expected]
    assert np.array_equal(days[~np.isnan(days)], np.array([e for e in expected if not math.isnan(e)]))
    assert days[2] == -1.0 and days[4] % 1 == 0.5


def test_a_text_that_is_no_date_leaves_the_refusal_to_serving():
    texts = ["2019-01-31", "2019-02-30", None]

    assert _date_days(pa.array(texts, pa.string())) is None
    try:
        _to_days(texts[1], "issue_d", 1)
    except FeatureError as exc:
        assert "row 1 holds '2019-02-30'" in str(exc)
    else:
        raise AssertionError("serving accepted 2019-02-30")
