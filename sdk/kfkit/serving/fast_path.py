"""A numpy replay of kfkit's fitted preprocessing, for serving small requests fast.

scikit-learn spends ~3 ms validating and re-indexing a one-row DataFrame through the
``ColumnTransformer`` kfkit trains (impute + scale numeric, impute + one-hot categorical)
before the final estimator's arithmetic. ``FastPredictor`` applies the fitted statistics with the same
floating-point operations in the same order (``X - mean_`` then ``/ scale_``, imputed values,
one-hot columns in category order). For a linear estimator (``LogisticRegression``, ``Ridge``)
it also replays the estimator's own formula (``X @ coef_.T + intercept_``, then scikit-learn's
softmax or expit), which skips ~70 us of input validation per call; any other estimator is
called as it is.

Where the fitted ``ColumnTransformer`` stacks its output as a sparse matrix (``sparse_output_``:
many categories, so the one-hot columns are mostly zeros, as in a table of loans by state), the
replay builds that same CSR matrix (the encoder's dtype and stored ones, scipy's ``hstack``) and
the estimator, or its replayed formula, computes on it as it did in the pipeline.

It is used only when it is proven: ``build`` accepts exactly kfkit's training layout and
then checks that its answers equal the full pipeline's bit for bit on probe rows (every
category, unknown categories, missing values, values around each mean), one row at a time
and as a batch. Anything else keeps the plain scikit-learn path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kfkit.serving.finite import PREDICTION, PREPROCESSING, OutOfRangeError, check_finite, predict_checked

UNKNOWN_PROBE = "__kfkit_probe_unknown__"


class _NumericBlock:
    def __init__(
        self, columns: list[str], statistics: np.ndarray, mean: np.ndarray | None, scale: np.ndarray | None
    ):
        self.columns, self.statistics, self.mean, self.scale = columns, statistics, mean, scale

    def transform(self, values: dict[str, list[Any]], rows: int) -> np.ndarray:
        block = np.array([values[c] for c in self.columns], dtype=np.float64).T.reshape(
            rows, len(self.columns)
        )
        block = np.where(np.isnan(block), self.statistics, block)
        if self.mean is not None:
            block = block - self.mean
        if self.scale is not None:
            block = block / self.scale
        return block


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class _CategoricalBlock:
    def __init__(
        self, columns: list[str], statistics: list[Any], categories: list[np.ndarray], dtype: Any = np.float64
    ):
        self.columns, self.statistics, self.dtype = columns, statistics, dtype  # dtype: the encoder's
        self.index = [{value: i for i, value in enumerate(cats)} for cats in categories]
        self.offsets = np.cumsum([0] + [len(c) for c in categories])
        # A NaN among the categories could be found by identity: then every value is checked for
        # NaN, not only those the lookup misses.
        self.nan_category = any(_is_nan(value) for cats in categories for value in cats)

    def positions(self, values: dict[str, list[Any]], rows: int) -> np.ndarray:
        """(rows, columns): each value's category position, -1 for an unknown one
        (handle_unknown="ignore": its one-hot columns stay zero); a missing value (float NaN)
        takes the imputed category's. Comprehensions, not a loop over cells: batch scoring sends
        65,536 rows at a time."""
        found = np.empty((rows, len(self.columns)), dtype=np.int64)
        for j, column in enumerate(self.columns):
            index, given = self.index[j], values[column]
            found[:, j] = [index.get(value, -1) for value in given]
            # Without a NaN category a NaN is never found: only the misses can be missing values.
            suspects = range(rows) if self.nan_category else np.flatnonzero(found[:, j] < 0)
            missing = [r for r in suspects if _is_nan(given[r])]
            found[missing, j] = index.get(self.statistics[j], -1)
        return found

    def transform(self, values: dict[str, list[Any]], rows: int) -> np.ndarray:
        found = self.positions(values, rows)
        block = np.zeros((rows, int(self.offsets[-1])), dtype=np.float64)
        row, column = np.nonzero(found >= 0)
        block[row, self.offsets[:-1][column] + found[row, column]] = 1.0
        return block

    def csr(self, values: dict[str, list[Any]], rows: int) -> Any:
        """The block as ``OneHotEncoder`` builds its sparse output: a CSR matrix of the encoder's
        dtype storing the ones, row by row in column order (nothing stored for an unknown value)."""
        from scipy import sparse

        found = self.positions(values, rows)
        known = found >= 0
        indices = (found + self.offsets[:-1]).ravel()[known.ravel()]
        indptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(known.sum(axis=1), out=indptr[1:])
        data = np.ones(len(indices), dtype=self.dtype)
        return sparse.csr_matrix(
            (data, indices, indptr), shape=(rows, int(self.offsets[-1])), dtype=self.dtype
        )


class _EstimatorHead:
    """The fitted final estimator, called as it is."""

    def __init__(self, estimator: Any, classify: bool) -> None:
        self.estimator, self.classify = estimator, classify

    def __call__(self, features: np.ndarray) -> np.ndarray:
        if self.classify:
            return self.estimator.predict_proba(features)
        return np.asarray(self.estimator.predict(features), dtype="float64").reshape(-1, 1)


class _LinearHead:
    """``LogisticRegression.predict_proba`` / ``Ridge.predict`` without input validation.

    The same operations as scikit-learn 1.9's ``LinearClassifierMixin.decision_function``,
    ``extmath.softmax`` (multinomial) and ``_predict_proba_lr`` (binary). Only built for a
    single-output linear estimator; whether it matches bit for bit is left to the proof.
    """

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, kind: str) -> None:
        self.coef_t, self.intercept, self.kind = coef.T, intercept, kind

    @classmethod
    def of(cls, estimator: Any, classify: bool) -> _LinearHead | None:
        from sklearn.linear_model import LogisticRegression, Ridge

        if classify and type(estimator) is LogisticRegression:
            kind = "binary" if len(estimator.classes_) == 2 else "softmax"
        elif not classify and type(estimator) is Ridge and np.ndim(estimator.coef_) == 1:
            kind = "regression"
        else:
            return None
        return cls(np.asarray(estimator.coef_), np.asarray(estimator.intercept_), kind)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        scores = features @ self.coef_t + self.intercept
        if self.kind == "softmax":
            return softmax(scores, copy=False)
        if self.kind == "binary":
            positive = expit(scores.reshape(-1))
            return np.stack([1 - positive, positive], axis=1)
        return np.asarray(scores, dtype="float64").reshape(-1, 1)


class FastPredictor:
    def __init__(self, blocks: list, estimator: Any, classify: bool, sparse: bool = False) -> None:
        self.blocks, self.estimator, self.classify = blocks, estimator, classify
        # The fitted ColumnTransformer's own choice (sparse_output_, fixed at fit: one-hot columns
        # dense enough, or not): its output is then a CSR matrix, and so is this one.
        self.sparse = sparse
        self.head: _EstimatorHead | _LinearHead = _EstimatorHead(estimator, classify)

    def transform(self, values: dict[str, list[Any]]) -> Any:
        rows = len(next(iter(values.values())))
        if not self.sparse:
            return np.hstack([block.transform(values, rows) for block in self.blocks])
        from scipy import sparse

        # As the ColumnTransformer stacks sparse output: the one-hot blocks as the encoder's CSR
        # matrices, the numeric ones dense, then scipy's hstack and tocsr: the same matrix.
        return sparse.hstack(
            [
                block.csr(values, rows)
                if isinstance(block, _CategoricalBlock)
                else block.transform(values, rows)
                for block in self.blocks
            ]
        ).tocsr()

    def predict(self, values: dict[str, list[Any]]) -> np.ndarray:
        """The pipeline's answer; ``OutOfRangeError`` where scikit-learn's path refuses too."""
        features = self.transform(values)
        check_finite(features, values, PREPROCESSING)
        answer = self.head(features)
        check_finite(answer, values, PREDICTION)
        return answer

    @classmethod
    def build(cls, pipeline: Any, manifest: Any, classify: bool) -> FastPredictor | None:
        """A proven fast path for ``pipeline``, or None (then serve through scikit-learn).

        The linear replay of the estimator is tried first; if it is not proven, the replayed
        preprocessing alone is tried with the estimator called as it is.
        """
        try:
            fast = cls._from_layout(pipeline, classify)
            if fast is None:
                return None
            linear = _LinearHead.of(fast.estimator, classify)
            if linear is not None:
                fast.head = linear
                if _proven(fast, pipeline, manifest, classify):
                    return fast
                fast.head = _EstimatorHead(fast.estimator, classify)
            return fast if _proven(fast, pipeline, manifest, classify) else None
        except Exception:  # noqa: BLE001 - any surprise means: use the plain path
            return None

    @classmethod
    def _from_layout(cls, pipeline: Any, classify: bool) -> FastPredictor | None:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            return None
        preprocess, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
        if not isinstance(preprocess, ColumnTransformer) or not hasattr(preprocess, "sparse_output_"):
            return None
        blocks: list = []
        for name, transformer, columns in preprocess.transformers_:
            if name == "remainder":
                if transformer != "drop":
                    return None
                continue
            if not isinstance(transformer, Pipeline) or not isinstance(columns, list) or not columns:
                return None
            steps = [step for _, step in transformer.steps]
            if len(steps) != 2 or not isinstance(steps[0], SimpleImputer) or steps[0].add_indicator:
                return None
            imputer, second = steps
            if isinstance(second, StandardScaler):
                statistics = np.asarray(imputer.statistics_, dtype=np.float64)
                if np.isnan(statistics).any() or len(statistics) != len(columns):
                    return None  # an all-missing column was dropped at fit: not kfkit's layout
                mean = second.mean_ if second.with_mean else None
                scale = second.scale_ if second.with_std else None
                blocks.append(_NumericBlock(list(columns), statistics, mean, scale))
            elif isinstance(second, OneHotEncoder):
                if (
                    second.handle_unknown != "ignore"
                    or second.drop is not None
                    or second.min_frequency is not None
                    or second.max_categories is not None
                    or len(imputer.statistics_) != len(columns)
                ):
                    return None
                blocks.append(
                    _CategoricalBlock(
                        list(columns), list(imputer.statistics_), list(second.categories_), second.dtype
                    )
                )
            else:
                return None
        return cls(blocks, estimator, classify, sparse=bool(preprocess.sparse_output_))


def _probe_values(fast: FastPredictor, manifest: Any) -> dict[str, list[Any]]:
    """Rows that visit every category, an unknown one, missing values and points around
    each numeric mean."""
    rows = 8
    for block in fast.blocks:
        if isinstance(block, _CategoricalBlock):
            rows = max(rows, *(len(index) + 2 for index in block.index))
    values: dict[str, list[Any]] = {}
    for block in fast.blocks:
        if isinstance(block, _NumericBlock):
            for j, column in enumerate(block.columns):
                center = float(block.statistics[j])
                spread = float(block.scale[j]) if block.scale is not None else 1.0
                cycle = [math.nan, center, center + spread, center - 2 * spread, 0.0, center * 1.5 + 0.125]
                values[column] = [cycle[(r + j) % len(cycle)] for r in range(rows)]
        else:
            for j, column in enumerate(block.columns):
                cycle = [*block.index[j], math.nan, UNKNOWN_PROBE]
                values[column] = [cycle[(r + j) % len(cycle)] for r in range(rows)]
    return {name: values[name] for name in manifest.feature_names}


# Finite inputs that kfkit's scaler (or the estimator's arithmetic) can overflow.
EXTREME_PROBES = (1e308, -1e308, 1.7e308, 1e154)


def _extreme_probe_values(values: dict[str, list[Any]], fast: FastPredictor) -> list[dict[str, list[Any]]]:
    """One-row probes: the first probe row with each numeric feature in turn set to each extreme."""
    probes = []
    numeric = [c for block in fast.blocks if isinstance(block, _NumericBlock) for c in block.columns]
    for column in numeric:
        for extreme in EXTREME_PROBES:
            probes.append({name: [extreme if name == column else col[1]] for name, col in values.items()})
    return probes


def _outcome(predict: Any, values: dict[str, list[Any]]) -> tuple[str, Any]:
    try:
        return "answer", predict(values)
    except OutOfRangeError as exc:
        return "refused", str(exc)


def _same(first: tuple[str, Any], second: tuple[str, Any]) -> bool:
    if first[0] != second[0]:
        return False
    return first[1] == second[1] if first[0] == "refused" else bool(np.array_equal(first[1], second[1]))


def _proven(fast: FastPredictor, pipeline: Any, manifest: Any, classify: bool) -> bool:
    """Equal answers on the probe rows (batch and one by one), and on the extreme probes equal
    answers or the same refusal: a value out of range must be a 400 on both paths alike."""
    from kfkit.serving.model import columns_to_frame

    values = _probe_values(fast, manifest)
    if set(values) != set(manifest.feature_names):
        return False

    def reference(vals: dict[str, list[Any]]) -> np.ndarray:
        return predict_checked(pipeline, columns_to_frame(vals, manifest), classify, vals)

    if not _same(_outcome(fast.predict, values), ("answer", reference(values))):
        return False
    rows = len(next(iter(values.values())))
    singles = [{name: [column[r]] for name, column in values.items()} for r in range(rows)]
    for one in singles:
        if not _same(_outcome(fast.predict, one), _outcome(reference, one)):
            return False
    with np.errstate(over="ignore", invalid="ignore"):  # the extremes overflow on purpose
        for one in _extreme_probe_values(values, fast):
            if not _same(_outcome(fast.predict, one), _outcome(reference, one)):
                return False
    return True
