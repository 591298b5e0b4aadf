"""The ROC and PR curves evaluate stores (metadata, KFP's UI, the HTML report) stay small on a large
eval split, and still draw the same curve."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from kfkit.components.evaluate.executor import CURVE_POINTS, thinned


def test_a_short_curve_is_kept_whole():
    x, y = np.arange(10.0), np.arange(10.0) ** 2
    kept_x, kept_y = thinned(x, y)
    assert kept_x.tolist() == x.tolist() and kept_y.tolist() == y.tolist()


def test_a_long_curve_keeps_its_ends_and_draws_the_same():
    rng = np.random.default_rng(3)
    labels = rng.random(200_000) < 0.2
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1)  # 200,000 distinct scores
    fpr, tpr, thresholds = skm.roc_curve(labels, scores)
    precision, recall, _ = skm.precision_recall_curve(labels, scores)
    assert len(fpr) > 10 * CURVE_POINTS and len(precision) > 100 * CURVE_POINTS  # what would be stored
    small = thinned(fpr, tpr, thresholds)
    assert all(len(a) <= CURVE_POINTS for a in small) and len({len(a) for a in small}) == 1
    assert (small[0][0], small[1][0]) == (fpr[0], tpr[0]) and (small[0][-1], small[1][-1]) == (1.0, 1.0)
    assert np.all(np.diff(small[0]) >= 0) and np.all(np.diff(small[2]) <= 0)  # still a curve, in order
    # The area under the kept points is the full curve's within a thousandth.
    assert abs(skm.auc(small[0], small[1]) - skm.roc_auc_score(labels, scores)) < 1e-3
    kept_precision, kept_recall = thinned(precision, recall)
    assert (
        len(kept_precision) <= CURVE_POINTS and kept_recall[0] == recall[0] and kept_recall[-1] == recall[-1]
    )
    assert abs(skm.auc(kept_recall, kept_precision) - skm.auc(recall, precision)) < 1e-3
