"""Feature typing end to end through the components' plain functions: ingest reads money text as
numbers and dates as one text form whatever the file format, validate records each feature's
role in the schema, train leaves identifiers and free text out and turns dates into days, and
serving converts a request the same way."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from kfkit.components.ingest.executor import ingest, split_mask
from kfkit.components.train.executor import train
from kfkit.components.validate.executor import report_html, report_markdown, validate, write_outputs
from kfkit.errors import KfkitError
from kfkit.model_folder import feature_frame, load_verified_model
from kfkit.serving.model import KfkitModel

ROWS = 400
WORDS = "quiet sunny spacious modern renovated corner flat with garden view near park station".split()


def listings(rows: int = ROWS, seed: int = 7) -> pd.DataFrame:
    """A table as the issue describes it: an id, a free-text title, an ISO date, money as text."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(30, 150, rows).round(1)
    price = (size * rng.uniform(150, 250, rows)).round(2)
    listed = [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 365, rows)]
    days = np.array([(d - dt.date(2024, 1, 1)).days for d in listed])
    colour = rng.choice(["red", "green", "blue"], rows)
    titles = [" ".join(rng.choice(WORDS, 5)) + f" no {i}" for i in range(rows)]
    score = price / size - 200 + (days - 180) / 4 + np.where(colour == "red", 15, 0) + rng.normal(0, 10, rows)
    frame = pd.DataFrame(
        {
            "id": np.arange(1000, 1000 + rows),
            "title": titles,
            "listed": listed,
            "price": [f"{p:,.2f}" for p in price],  # "16,800.00"
            "size": size,
            "colour": colour.astype(object),
            "sold": np.where(score > 0, "yes", "no"),
        }
    )
    # Missing values, which a CSV reader gives as NaN and Parquet as None.
    frame.loc[::37, "colour"] = None
    frame.loc[5::53, "listed"] = None
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.assign(listed=[d and d.isoformat() for d in frame["listed"]]).to_csv(path, index=False)
    return path


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)  # listed: datetime.date, stored as Arrow date32
    return path


def run_through(source: Path, folder: Path, estimator: str = "logistic_regression", **validate_args):
    """ingest -> validate -> train with the executors' plain functions; the fitted model, its
    manifest, the eval split and validate's result."""
    split = ingest(str(source), "sold")
    result, protos = validate(split.train, split.eval, "sold", problem_type="classification", **validate_args)
    write_outputs(
        protos, result, str(folder / "statistics"), str(folder / "schema"), str(folder / "anomalies")
    )
    train(
        split.train,
        schema_path=str(folder / "schema" / "schema.pbtxt"),
        label_column="sold",
        model_name="listings",
        model_dir=str(folder / "model"),
        estimator=estimator,
        dataset_fingerprint="same-table",
    )
    model, manifest = load_verified_model(folder / "model")
    return model, manifest, split, result, protos


@pytest.fixture(scope="module")
def both_formats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("listings")
    frame = listings()
    csv = run_through(write_csv(frame, folder / "listings.csv"), folder / "csv")
    parquet = run_through(write_parquet(frame, folder / "listings.parquet"), folder / "parquet")
    return csv, parquet, folder


def test_identifiers_and_text_are_left_out_dates_are_days_money_is_numeric(both_formats):
    (model, manifest, split, result, _), _, folder = both_formats
    kinds = {f.name: f.kind for f in manifest.features}
    assert kinds == {"listed": "date", "price": "numeric", "size": "numeric", "colour": "categorical"}
    assert manifest.excluded_features == {
        "id": f"identifier: {ROWS} distinct values in {ROWS} rows",
        "title": manifest.excluded_features["title"],
    }
    assert manifest.excluded_features["title"].startswith(f"free text: {ROWS} distinct values in {ROWS} rows")
    assert split.train["price"].dtype == np.float64
    assert list(model.feature_names_in_) == ["listed", "price", "size", "colour"]
    # The roles are in the schema train read, as annotations a reviewer can edit.
    schema = text_format.Parse((folder / "csv" / "schema" / "schema.pbtxt").read_text(), schema_pb2.Schema())
    tags = {f.name: list(f.annotation.tag) for f in schema.feature}
    assert tags["id"] == ["kfkit:identifier"] and tags["title"] == ["kfkit:free_text"]
    assert tags["listed"] == ["kfkit:date"] and tags["price"] == ["kfkit:numeric"]
    comment = next(f.annotation.comment[0] for f in schema.feature if f.name == "id")
    assert comment == f"{ROWS} distinct values in {ROWS} rows"
    assert result.metadata["feature_roles"]["title"] == "free_text"
    assert set(result.metadata["excluded_features"]) == {"id", "title"}
    # The date is a number of days: 2024-01-01 is day 19723 since 1970-01-01.
    days = feature_frame(pd.DataFrame({"listed": ["2024-01-01"]}), manifest.features[:1], "test")
    assert days["listed"].tolist() == [19723.0]


def test_reports_show_every_role(both_formats):
    (_, _, _, result, protos), _, _ = both_formats
    markdown, html = report_markdown(protos, result), report_html(protos, result)
    for line in (
        f"| id | identifier | no | {ROWS} distinct values in {ROWS} rows |",
        "| price | numeric | yes |  |",
        "| colour | categorical | yes |  |",
    ):
        assert line in markdown
    assert "| listed | date | yes | ISO dates from 2024-01-" in markdown
    assert "<td>free text</td><td>no</td>" in html and "<td>identifier</td><td>no</td>" in html


def test_csv_and_parquet_give_the_same_split_model_and_predictions(both_formats):
    csv, parquet, _ = both_formats
    (csv_model, csv_manifest, csv_split, _, _), (pq_model, pq_manifest, pq_split, _, _) = csv, parquet
    pd.testing.assert_frame_equal(csv_split.train, pq_split.train)
    pd.testing.assert_frame_equal(csv_split.eval, pq_split.eval)
    assert csv_split.eval["listed"].iloc[0].count("-") == 2 and len(csv_split.eval["listed"].iloc[0]) == 10
    assert csv_manifest.features == pq_manifest.features
    assert csv_manifest.excluded_features == pq_manifest.excluded_features
    csv_x = feature_frame(csv_split.eval, csv_manifest.features, "eval")
    pq_x = feature_frame(pq_split.eval, pq_manifest.features, "eval")
    np.testing.assert_allclose(
        csv_model.predict_proba(csv_x), pq_model.predict_proba(pq_x), rtol=0, atol=1e-12
    )
    # The model learned something from the converted columns (beats always-"yes").
    accuracy = (csv_model.predict(csv_x) == csv_split.eval["sold"]).mean()
    majority = csv_split.eval["sold"].value_counts(normalize=True).max()
    assert accuracy > majority + 0.1


def test_same_split_assignment_for_csv_and_parquet(tmp_path):
    frame = listings(200)
    from kfkit.components.ingest.executor import normalise, parse_file, read_source

    masks = []
    for path in (write_csv(frame, tmp_path / "t.csv"), write_parquet(frame, tmp_path / "t.parquet")):
        table = normalise(parse_file(read_source(str(path))[0]))
        masks.append(split_mask(table, 0.2))
    assert masks[0].tolist() == masks[1].tolist() and 0 < masks[0].sum() < len(frame)


def test_serving_converts_money_text_and_dates_like_training(both_formats):
    (model, manifest, split, _, _), _, folder = both_formats
    served = KfkitModel(folder / "csv" / "model")
    served.load()
    row = split.eval.iloc[0]
    names = ["id", "title", "listed", "price", "size", "colour"]  # id and title: accepted, ignored
    request = [[9999, "any words at all", row["listed"], f"{row['price']:,.2f}", row["size"], row["colour"]]]
    assert "," in request[0][3]  # "16,800.00": prices here are 4,500 and up
    answer = served.predict(np.array(request, dtype=object), names)
    expected = model.predict_proba(feature_frame(split.eval.iloc[[0]], manifest.features, "eval"))
    np.testing.assert_allclose(answer, expected, rtol=0, atol=1e-12)
    # The same row with the date as a date-time at midnight and money with a currency sign.
    request[0][2], request[0][3] = f"{row['listed']}T00:00:00", f"${row['price']:,.2f}"
    np.testing.assert_allclose(served.predict(np.array(request, dtype=object), names), expected, atol=1e-12)


def test_keep_features_keeps_an_identifier_as_a_number(tmp_path):
    frame = listings(120)
    _, manifest, _, result, _ = run_through(
        write_csv(frame, tmp_path / "t.csv"), tmp_path, keep_features=["id"]
    )
    assert ("id", "numeric") in [(f.name, f.kind) for f in manifest.features]
    assert list(manifest.excluded_features) == ["title"]
    assert (
        result.roles["id"].evidence
        == "kept by keep_features (would be identifier: 120 distinct values in 120 rows)"
    )
    with pytest.raises(
        KfkitError, match=r"keep_features' parameter of validate names unknown feature\(s\) \['nope'\]"
    ):
        run_through(write_csv(frame, tmp_path / "t.csv"), tmp_path / "again", keep_features=["nope"])


def test_hist_gradient_boosting_trains_on_categorical_columns(tmp_path):
    from kfkit.serving.fast_path import FastPredictor

    penguins = Path(__file__).resolve().parents[1] / "sdk" / "kfkit" / "data" / "penguins.csv"
    split = ingest(str(penguins), "species")
    result, protos = validate(split.train, split.eval, "species", problem_type="classification")
    write_outputs(protos, result, str(tmp_path / "s"), str(tmp_path / "schema"), str(tmp_path / "a"))
    manifest = train(
        split.train,
        schema_path=str(tmp_path / "schema" / "schema.pbtxt"),
        label_column="species",
        model_name="penguins",
        model_dir=str(tmp_path / "model"),
        estimator="hist_gradient_boosting",
    )
    assert {"island", "sex"} <= {f.name for f in manifest.features if f.kind == "categorical"}
    assert manifest.excluded_features == {}  # the bundled sample keeps every feature
    model, _ = load_verified_model(tmp_path / "model")
    x = feature_frame(split.eval, manifest.features, "eval")
    assert (model.predict(x) == split.eval["species"]).mean() > 0.9
    # The fast serving path proves itself against the pipeline (dense one-hot) or stays off.
    fast = FastPredictor.build(model, manifest, classify=True)
    if fast is not None:
        served = KfkitModel(tmp_path / "model")
        served.load()
        answer = served.predict(x.to_numpy(dtype=object), list(x.columns))
        np.testing.assert_array_equal(answer, model.predict_proba(x))


def test_run_local_summary_names_the_features_left_out(store_env, tmp_path):
    from conftest import run_pipeline

    from kfkit.local_run import RunSummary, format_summary

    data = write_csv(listings(), tmp_path / "listings.csv")
    proc, document = run_pipeline(
        store_env,
        f"data_uri={data}",
        "label_column=sold",
        "model_name=listings-typing",
        "thresholds={}",
        # 86 eval rows: the share of one colour moves by up to 0.2 by chance alone
        "skew_thresholds={colour: 0.4}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert document["features"] == {
        "validate": {
            "id": "identifier",
            "title": "free_text",
            "listed": "date",
            "price": "numeric",
            "size": "numeric",
            "colour": "categorical",
        }
    }
    assert "[train] logistic_regression on 4 features (left out: id (identifier), title (free text))" in (
        proc.stderr
    )
    summary = format_summary(RunSummary(**document))
    assert "features             4 used; left out: id (identifier), title (free text)" in summary


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            ["label_column=size"],
            "kfkit: error: validate: train split: label 'size' holds ",
        ),
        (
            ["problem_type=regression", "estimator=ridge", "thresholds={}"],
            "kfkit: error: validate: train split: label 'sold' is not numeric for regression: ",
        ),
    ],
)
def test_label_mistakes_end_the_run_with_one_line(store_env, tmp_path, params, expected):
    from conftest import error_line, run_kfkit

    data = write_csv(listings(), tmp_path / "listings.csv")
    args = ["run-local", "--config", "configs/penguins.yaml", "--param", f"data_uri={data}"]
    args += ["--param", "model_name=listings-labels", "--param", "label_column=sold"]
    for param in params:  # a later --param wins
        args += ["--param", param]
    proc = run_kfkit(args, store_env)
    line = error_line(proc)
    assert proc.returncode == 1
    assert line.startswith(expected), line


def test_label_checks_name_the_column_before_anything_is_fitted(tmp_path):
    frame = listings(200)
    frame["grade"] = np.where(frame["size"] > 90, 2, 1)
    split = ingest(str(write_csv(frame, tmp_path / "t.csv")), "grade")
    # An integer class that appears only in the eval split: validate stops with one line.
    only_eval = split.eval.assign(grade=split.eval["grade"].where(split.eval.index != 0, 7))
    with pytest.raises(KfkitError) as info:
        validate(split.train, only_eval, "grade", problem_type="classification")
    assert str(info.value) == (
        "eval split: label 'grade' has class(es) ['7'] (1 rows) that the train split lacks; a model "
        "cannot learn them: add rows of those classes or change split_key or eval_fraction"
    )
    # train checks its own input too (it can be composed without validate).
    folder = tmp_path / "schema"
    result, protos = validate(split.train, split.eval, "size")
    write_outputs(protos, result, str(tmp_path / "s"), str(folder), str(tmp_path / "a"))
    with pytest.raises(
        KfkitError,
        match=r"^train split: label 'size' holds \d+ distinct float values in \d+ rows: "
        r"it looks continuous; use problem_type=regression$",
    ):
        train(split.train, str(folder / "schema.pbtxt"), "size", "m", str(tmp_path / "model"))
    with pytest.raises(
        KfkitError, match=r"^train split: label 'title' is not numeric for regression: \d+ of \d+ rows"
    ):
        train(
            split.train,
            str(folder / "schema.pbtxt"),
            "title",
            "m",
            str(tmp_path / "model"),
            problem_type="regression",
            estimator="ridge",
        )


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("1000.00", 1000.0),
        (" 1000 ", 1000.0),
        ("1,000.00", 1000.0),
        ("16,800.00", 16800.0),
        ("-$1,200.5", -1200.5),
        ("1e3", 1000.0),
        ("1,5", None),
        ("12,34", None),
        ("1,0000", None),
        ("nan", None),
        ("inf", None),
        ("1_000", None),
        ("12 EUR", None),
        ("", None),
    ],
)
def test_one_rule_reads_numeric_text(text, number):
    from kfkit.values import parse_number

    assert parse_number(text) == number


def test_ingest_keeps_codes_and_mixed_columns_as_text_and_reads_timestamps_as_dates(tmp_path):
    from kfkit.components.ingest.executor import normalise

    frame = pd.DataFrame(
        {
            "zip": ["02134", "10001", "94105"],
            "mixed": ["12", "twelve", None],
            "money": ["1,200.00", None, " 7 "],
            "day": pd.to_datetime(["2024-01-05", "2024-02-29", None]),
            "moment": pd.to_datetime(["2024-01-05 10:30:00", "2024-01-06", "2024-01-07"]),
            "text_day": ["2024-01-05 00:00:00", "2024-02-29", None],
        }
    )
    out = normalise(frame).where(frame.notna(), "<missing>")  # missing is NaN in every column
    assert normalise(frame).isna().equals(frame.isna())
    assert out["zip"].tolist() == ["02134", "10001", "94105"]
    assert out["mixed"].tolist() == ["12", "twelve", "<missing>"]
    assert out["money"].tolist() == [1200.0, "<missing>", 7.0]
    assert out["day"].tolist() == ["2024-01-05", "2024-02-29", "<missing>"]
    assert out["text_day"].tolist() == ["2024-01-05", "2024-02-29", "<missing>"]
    assert out["moment"].tolist() == ["2024-01-05T10:30:00", "2024-01-06T00:00:00", "2024-01-07T00:00:00"]
