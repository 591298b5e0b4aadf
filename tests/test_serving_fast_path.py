"""The serving fast path answers exactly like the fitted scikit-learn pipeline, or is not used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import PENGUINS
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from kfkit.components.train.executor import build_pipeline
from kfkit.model_folder import Feature, ModelManifest
from kfkit.serving import fast_path
from kfkit.serving.fast_path import FastPredictor
from kfkit.serving.model import columns_to_frame, rows_to_columns

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "year"]
CATEGORICAL = ["island", "sex"]
FEATURES = [Feature(n, "numeric") for n in NUMERIC] + [Feature(n, "categorical") for n in CATEGORICAL]
NAMES = NUMERIC + CATEGORICAL


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return pd.read_csv(PENGUINS, na_values=["NA"]).dropna(subset=["species", "body_mass_g"])


def _manifest(problem_type: str, label: str) -> ModelManifest:
    return ModelManifest(
        model_name="penguins",
        sha256="0" * 64,
        sklearn_version="1.9.1",
        python_version="3.11",
        problem_type=problem_type,
        label_column=label,
        features=FEATURES,
        estimator="x",
    )


def _request_rows(frame: pd.DataFrame) -> list[list]:
    """Every row as a request sends it: missing values as None (some rows have them)."""
    data = frame[NAMES].astype(object)
    return data.where(data.notna(), None).values.tolist()


def _reference(model, manifest, columns, classify):
    frame = columns_to_frame(columns, manifest)
    return model.predict_proba(frame) if classify else np.asarray(model.predict(frame)).reshape(-1, 1)


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(max_iter=1000),
        RandomForestClassifier(n_estimators=20, random_state=0),
        HistGradientBoostingClassifier(),
    ],
    ids=["logistic_regression", "random_forest", "hist_gradient_boosting"],
)
def test_fast_path_equals_the_pipeline_bit_for_bit_on_every_row(penguins, estimator):
    manifest = _manifest("classification", "species")
    model = build_pipeline(FEATURES, estimator).fit(penguins[NAMES], penguins["species"])
    fast = FastPredictor.build(model, manifest, classify=True)
    assert fast is not None
    rows = _request_rows(penguins)
    assert any(None in row for row in rows)  # missing values are part of the check
    for row in rows:
        columns = rows_to_columns([row], manifest, names=NAMES)
        assert np.array_equal(fast.predict(columns), _reference(model, manifest, columns, True))
    columns = rows_to_columns(rows, manifest, names=NAMES)
    assert np.array_equal(fast.predict(columns), _reference(model, manifest, columns, True))


def test_fast_path_for_regression_and_unknown_categories(penguins):
    manifest = _manifest("regression", "body_mass_g")
    model = build_pipeline(FEATURES, Ridge()).fit(penguins[NAMES], penguins["body_mass_g"])
    fast = FastPredictor.build(model, manifest, classify=False)
    assert fast is not None
    assert isinstance(fast.head, fast_path._LinearHead)
    rows = [["40.1", 18.0, 190, 2008, "Atlantis", None], [None, None, None, None, None, None]]
    columns = rows_to_columns(rows, manifest, names=NAMES)
    assert np.array_equal(fast.predict(columns), _reference(model, manifest, columns, False))
    every = rows_to_columns(_request_rows(penguins), manifest, names=NAMES)
    assert np.array_equal(fast.predict(every), _reference(model, manifest, every, False))


@pytest.mark.parametrize("classes", [["Adelie", "Gentoo"], ["Adelie", "Chinstrap", "Gentoo"]])
def test_linear_replay_of_logistic_regression_is_bit_for_bit(penguins, classes):
    """Binary (expit) and multinomial (softmax) logistic regression skip sklearn's validation."""
    manifest = _manifest("classification", "species")
    frame = penguins[penguins["species"].isin(classes)]
    model = build_pipeline(FEATURES, LogisticRegression(max_iter=1000)).fit(frame[NAMES], frame["species"])
    fast = FastPredictor.build(model, manifest, classify=True)
    assert fast is not None and isinstance(fast.head, fast_path._LinearHead)
    assert fast.head.kind == ("binary" if len(classes) == 2 else "softmax")
    rows = _request_rows(penguins)
    for row in rows:
        columns = rows_to_columns([row], manifest, names=NAMES)
        assert np.array_equal(fast.predict(columns), _reference(model, manifest, columns, True))
    columns = rows_to_columns(rows, manifest, names=NAMES)
    assert np.array_equal(fast.predict(columns), _reference(model, manifest, columns, True))


def test_a_linear_replay_that_differs_falls_back_to_the_estimator(penguins, monkeypatch):
    manifest = _manifest("classification", "species")
    model = build_pipeline(FEATURES, LogisticRegression(max_iter=1000)).fit(
        penguins[NAMES], penguins["species"]
    )
    replay = fast_path._LinearHead.__call__
    monkeypatch.setattr(fast_path._LinearHead, "__call__", lambda self, x: replay(self, x) * (1 + 1e-15))
    fast = FastPredictor.build(model, manifest, classify=True)
    assert fast is not None and isinstance(fast.head, fast_path._EstimatorHead)
    columns = rows_to_columns(_request_rows(penguins), manifest, names=NAMES)
    assert np.array_equal(fast.predict(columns), _reference(model, manifest, columns, True))


def test_another_layout_keeps_the_plain_scikit_learn_path(penguins):
    manifest = _manifest("classification", "species")
    other = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)], remainder="passthrough"
                ),
            ),
            ("model", LogisticRegression(max_iter=1000)),
        ]
    ).fit(penguins[NAMES].fillna({"sex": "unknown"}).fillna(0), penguins["species"])
    assert FastPredictor.build(other, manifest, classify=True) is None


def test_a_replay_that_differs_is_never_used(penguins, monkeypatch):
    """The proof is what guards correctness: break the replay and build refuses it."""
    manifest = _manifest("classification", "species")
    model = build_pipeline(FEATURES, LogisticRegression(max_iter=1000)).fit(
        penguins[NAMES], penguins["species"]
    )
    original = fast_path._NumericBlock.transform

    def skips_scaling(self, values, rows):
        block = original(self, values, rows)
        return block * self.scale  # undo the division: close, but not the pipeline's answer

    monkeypatch.setattr(fast_path._NumericBlock, "transform", skips_scaling)
    assert FastPredictor.build(model, manifest, classify=True) is None


TAGGED = [*FEATURES, Feature("tag", "categorical")]


@pytest.mark.parametrize(
    "estimator",
    [LogisticRegression(max_iter=1000), RandomForestClassifier(n_estimators=20, random_state=0)],
    ids=["logistic_regression", "random_forest"],
)
def test_a_sparse_layout_is_replayed_as_the_same_sparse_matrix(penguins, estimator):
    """Many categories (the loans table's 50 states) make the one-hot columns so sparse that the
    fitted ColumnTransformer stacks its output as a CSR matrix (density under its 0.3 threshold),
    and the estimator computes on that (a sparse dot product sums in another order than a dense
    one). The fast path builds the same CSR matrix, and is proven on it."""
    frame = penguins.assign(tag=[f"t{i % 40:02d}" for i in range(len(penguins))])
    frame.loc[frame.index[::17], "tag"] = None  # missing values in the sparse block too
    manifest = _manifest("classification", "species")
    manifest.features = TAGGED
    names = [f.name for f in TAGGED]
    model = build_pipeline(TAGGED, estimator).fit(frame[names], frame["species"])
    assert model[0].sparse_output_  # the layout this test is about

    fast = FastPredictor.build(model, manifest, classify=True)

    assert fast is not None and fast.sparse
    if isinstance(estimator, LogisticRegression):
        assert isinstance(fast.head, fast_path._LinearHead)  # the replayed dot product, on the CSR
    data = frame[names].astype(object)
    rows = data.where(data.notna(), None).values.tolist()
    rows += [["40.1", 18.0, 190, 2008, "Atlantis", None, "t99"], [None] * len(names)]  # unknown, missing
    for row in rows:
        columns = rows_to_columns([row], manifest, names=names)
        assert np.array_equal(fast.predict(columns), _reference(model, manifest, columns, True))
    columns = rows_to_columns(rows, manifest, names=names)
    assert np.array_equal(fast.predict(columns), _reference(model, manifest, columns, True))
    assert (fast.transform(columns) != model[0].transform(columns_to_frame(columns, manifest))).nnz == 0


def test_a_missing_value_takes_the_imputed_category_even_where_nan_is_a_category():
    """Categories are looked up a column at a time; a NaN value is imputed first, as in the
    pipeline, even when the very NaN object is among the categories (found by identity)."""
    nan = float("nan")
    block = fast_path._CategoricalBlock(["c"], ["b"], [np.array(["a", "b", nan], dtype=object)])
    rows = ["a", nan, "z", float("nan"), None]  # known, that NaN, unknown, another NaN, None

    found = block.transform({"c": rows}, len(rows))

    assert found.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert (block.csr({"c": rows}, len(rows)).toarray() == found).all()
