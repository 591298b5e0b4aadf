"""Score's logic: a batch of rows scored by a pushed model version, as its server would answer.

The model is loaded by serving's own class (:class:`kfkit.serving.model.KfkitModel`: signature,
sha256 and scikit-learn version checked; the numpy fast path only where it is proven equal), and
every row goes through serving's one conversion (``rows_to_columns``) and prediction
(``predict_checked`` or the fast path). A row the server would refuse (a numeric feature holding
text or infinity, a date that is no date, values the model turns into infinity) is not scored:
it is written to the rejects file with its row number, the column and what was wrong, and
counted by reason. Missing values are scored, as the server scores them (imputed).

Memory is bounded by a batch of rows: the table is read, converted, scored and written
``batch_rows`` at a time. Plainly typed columns are converted a column at a time to the very
values ``rows_to_columns`` gives (:meth:`BatchScorer.plain_columns`); other batches go row by
row. A batch the server would refuse is halved until each refused row is alone (a handful of
extra conversions per bad row), then its other rows are scored in one call; a clean batch costs
one call.

``score_table()`` is the plain function (a model folder, a Parquet table, an output folder);
``run()`` is what the component runs through :func:`kfkit.runtime.execute`: it also copies the
results write-once to ``s3://predictions/<model>/<version>/<data fingerprint>/``
(:mod:`kfkit.prediction_registry`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfkit import settings
from kfkit.errors import KfkitError
from kfkit.model_folder import sha256_file
from kfkit.prediction_registry import PREDICTIONS_FILE, REJECTS_FILE, SUMMARY_FILE, batch_folder, publish
from kfkit.serving.finite import OutOfRangeError, predict_checked
from kfkit.serving.model import (
    CATEGORICAL,
    CLASSIFICATION,
    DATE,
    NUMERIC,
    FeatureError,
    KfkitModel,
    columns_to_frame,
    rows_to_columns,
)
from kfkit.values import days_since_epoch

if TYPE_CHECKING:
    from kfkit.runtime import Task

# Rows per batch: what bounds score's memory. KFKIT_SCORE_BATCH_ROWS overrides it; the results
# do not depend on it.
BATCH_ROWS_ENV = "KFKIT_SCORE_BATCH_ROWS"
DEFAULT_BATCH_ROWS = 65_536
ROW_NUMBER = "row_number"  # the row's position in the scored table, from 0
PREDICTION = "prediction"
PROBABILITY_PREFIX = "probability_"
# Why a row was not scored, by the kind of the feature the server refused.
REASONS = {NUMERIC: "not a number", DATE: "not a date", CATEGORICAL: "not a category"}
OUT_OF_RANGE = "out of range"
REFUSED = "refused"  # refused as a whole row, no single value to blame
_REFUSALS = (FeatureError, OutOfRangeError)
# Ingest's record of what it read, kept in a batch folder's record so the batch can be read again.
_KNOWN_DATES = 1_000_000  # converted date texts a scorer keeps
SOURCE_FIELDS = ("source_identity", "source_files", "source_etag", "source_version_id")


def batch_rows_setting() -> int:
    """The batch size in rows: KFKIT_SCORE_BATCH_ROWS, else DEFAULT_BATCH_ROWS."""
    return settings.batch_rows(BATCH_ROWS_ENV, DEFAULT_BATCH_ROWS)


@dataclass
class Reject:
    row: int
    column: str
    reason: str
    value: str
    message: str


@dataclass
class ScoreSummary:
    """What one scoring did: the model, the batch, and what became of its rows."""

    model_name: str
    model_version: str
    model_sha256: str
    problem_type: str
    dataset_fingerprint: str
    key_column: str
    rows: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejected_by_column: dict[str, int] = field(default_factory=dict)
    class_distribution: dict[str, int] = field(default_factory=dict)  # classification: rows per class
    prediction_range: dict[str, float] = field(default_factory=dict)  # regression: min, mean, max
    fast_path: bool = False
    batches: int = 0
    # Batches converted by serving's rows_to_columns row by row (a column not plainly typed, or a
    # refused row); the others were converted a column at a time, to the same values.
    batches_row_by_row: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BatchScorer:
    """A verified model folder, scoring rows exactly as its server answers them."""

    def __init__(self, model_folder: str | os.PathLike[str]) -> None:
        self.server = KfkitModel(model_folder)
        self.server.load()
        assert self.server.manifest is not None
        self.manifest = self.server.manifest
        self.names = self.manifest.feature_names
        self.kinds = [feature.kind for feature in self.manifest.features]
        self.classify = self.manifest.problem_type == CLASSIFICATION
        self.outputs = self.server.class_names()
        # Date texts already converted (a table repeats its days from batch to batch).
        self.days: dict[str, float | None] = {}

    def answers(self, rows: np.ndarray) -> np.ndarray:
        """``KfkitModel.predict``'s answer for these rows (feature values in manifest order), with
        the refusal's own type: ``FeatureError`` or ``OutOfRangeError``."""
        return self.predict(rows_to_columns(rows, self.manifest, names=self.names))

    def predict(self, columns: dict[str, Any]) -> np.ndarray:
        """The answer for converted values (``rows_to_columns``' shape), as ``KfkitModel.predict``."""
        if self.server.fast is not None:
            return self.server.fast.predict(columns)
        return predict_checked(self.server.model, self.frame(columns), self.classify, columns)

    def frame(self, columns: dict[str, Any]) -> pd.DataFrame:
        """``columns_to_frame``'s frame. Arrays already of the dtypes it gives (float64; object for
        a categorical feature), as :meth:`plain_columns` returns them, are framed as they are:
        the same frame without pandas' per-column casts (a fifth of score's time at 1M rows)."""
        plain = all(
            isinstance(values, np.ndarray) and values.dtype == (object if kind == CATEGORICAL else np.float64)
            for values, kind in zip((columns[name] for name in self.names), self.kinds, strict=True)
        )
        if not plain:
            return columns_to_frame(columns, self.manifest)
        return pd.DataFrame({name: columns[name] for name in self.names}, columns=self.names)

    def plain_columns(self, batch: pa.RecordBatch) -> dict[str, Any] | None:
        """The batch's feature values as ``rows_to_columns`` converts them, a column at a time, where
        that is the same value for value: a numeric feature in an integer or float column (NaN
        and null missing, as there; None when a value is infinite, which the server refuses), a
        categorical one in a text column (null as NaN), a date in a text column (each distinct
        text converted by serving's own function; None when one is no date), an all-missing
        column. None when a
        feature's column is of another type: then the rows go through ``rows_to_columns``."""
        columns: dict[str, Any] = {}
        for name, kind in zip(self.names, self.kinds, strict=True):
            array = batch.column(batch.schema.get_field_index(name))
            if pa.types.is_null(array.type) and kind in (NUMERIC, CATEGORICAL, DATE):
                values = np.full(len(array), np.nan, dtype=np.float64 if kind != CATEGORICAL else object)
            elif kind == NUMERIC and (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
                values = pc.fill_null(pc.cast(array, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
                if np.isinf(values).any():
                    return None
            elif kind == CATEGORICAL and _is_text(array.type):
                values = array.to_numpy(zero_copy_only=False)
                values[array.is_null().to_numpy(zero_copy_only=False)] = np.nan
            elif kind == DATE and _is_text(array.type):
                values = _date_days(array, self.days)
                if values is None:
                    return None
            else:
                return None
            columns[name] = values
        return columns

    def score_batch(
        self, batch: pa.RecordBatch, first_row: int
    ) -> tuple[np.ndarray, np.ndarray, list[Reject], bool]:
        """:meth:`score` of a record batch, its columns converted at once where
        :meth:`plain_columns` can; the last value says whether the rows went one by one."""
        columns = self.plain_columns(batch)
        if columns is not None:
            try:
                return np.arange(batch.num_rows), self.predict(columns), [], False
            except _REFUSALS:
                pass  # a row out of range: serving's conversion, row by row, finds it
        return (*self.score(_feature_rows(batch, self.names), first_row), True)

    def score(self, rows: np.ndarray, first_row: int) -> tuple[np.ndarray, np.ndarray, list[Reject]]:
        """(positions of the scored rows, their answers, the refused rows). The rows left once
        the refused ones are found are scored in one call: the answer a server gives to one
        request holding exactly them."""
        try:
            return np.arange(len(rows)), self.answers(rows), []
        except _REFUSALS:
            pass
        refused = self.refused(rows, first_row)
        kept = np.setdiff1d(np.arange(len(rows)), [r.row - first_row for r in refused])
        answers = self.answers(rows[kept]) if len(kept) else np.empty((0, len(self.outputs)))
        return kept, answers, refused

    def refused(self, rows: np.ndarray, first_row: int) -> list[Reject]:
        """The rows the server refuses: a refused block is halved until each refused row is alone."""
        try:
            self.answers(rows)
            return []
        except _REFUSALS as exc:
            if len(rows) == 1:
                return [self.reject(rows[0], first_row, exc)]
        half = len(rows) // 2
        return self.refused(rows[:half], first_row) + self.refused(rows[half:], first_row + half)

    def reject(self, row: np.ndarray, row_number: int, refusal: Exception) -> Reject:
        """The first feature (manifest order) whose value alone the server refuses, and why."""
        for position, (name, kind) in enumerate(zip(self.names, self.kinds, strict=True)):
            alone = np.full((1, len(self.names)), None, dtype=object)
            alone[0, position] = row[position]
            try:
                if isinstance(refusal, FeatureError):
                    rows_to_columns(alone, self.manifest, names=self.names)
                else:
                    self.answers(alone)
            except _REFUSALS as exc:
                reason = REASONS.get(kind, REFUSED) if isinstance(exc, FeatureError) else OUT_OF_RANGE
                return Reject(row_number, name, reason, _shown(row[position]), _for_row(exc, row_number))
        reason = OUT_OF_RANGE if isinstance(refusal, OutOfRangeError) else REFUSED
        return Reject(row_number, "", reason, "", _for_row(refusal, row_number))


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _date_days(array: pa.Array, known: dict[str, float | None] | None = None) -> np.ndarray | None:
    """A text column of dates as serving's ``_to_days`` turns each value (days since 1970-01-01,
    null as NaN), converting each distinct text once (a table of dates repeats a few thousand
    days; ``known``: texts converted before, and kept); None when one is no date, for serving's
    own conversion to find and refuse."""
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    known = {} if known is None else known
    if len(known) > _KNOWN_DATES:  # date-times rarely repeat: keep memory bounded
        known.clear()
    days = []
    for text in encoded.dictionary.to_pylist():
        if text not in known:
            known[text] = days_since_epoch(text)
        days.append(known[text])
    if any(day is None for day in days):
        return None
    lookup = np.array([*days, np.nan], dtype=np.float64)
    return lookup[pc.fill_null(encoded.indices, len(days)).to_numpy(zero_copy_only=False)]


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _for_row(exc: Exception, row_number: int) -> str:
    """The server's message about its one-row request, naming the row of the table instead."""
    return str(exc).replace("row 0", f"row {row_number}", 1)


def _feature_rows(batch: pa.RecordBatch, names: list[str]) -> np.ndarray:
    """The batch's feature values as the rows a request would carry (manifest order)."""
    rows = np.empty((batch.num_rows, len(names)), dtype=object)
    for position, name in enumerate(names):
        rows[:, position] = batch.column(batch.schema.get_field_index(name)).to_numpy(zero_copy_only=False)
    return rows


def _output_schema(scorer: BatchScorer, key: pa.Field | None) -> pa.Schema:
    fields = [pa.field(ROW_NUMBER, pa.int64())]
    if key is not None:
        fields.append(key)
    if scorer.classify:
        fields.append(pa.field(PREDICTION, pa.string()))
        fields += [pa.field(f"{PROBABILITY_PREFIX}{name}", pa.float64()) for name in scorer.outputs]
    else:
        fields.append(pa.field(PREDICTION, pa.float64()))
    return pa.schema([*fields, pa.field("model_name", pa.string()), pa.field("model_version", pa.string())])


def _rejects_schema(key: pa.Field | None) -> pa.Schema:
    fields = [pa.field(ROW_NUMBER, pa.int64())] + ([key] if key is not None else [])
    return pa.schema(fields + [pa.field(n, pa.string()) for n in ("column", "reason", "value", "message")])


def score_table(
    model_folder: str | os.PathLike[str],
    table_path: str | os.PathLike[str],
    out_folder: str | os.PathLike[str],
    key_column: str = "",
    model_version: str = "",
    dataset_fingerprint: str = "",
    batch_rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScoreSummary:
    """Score the Parquet table ``table_path`` with the verified model in ``model_folder``; write
    ``predictions.parquet``, ``rejects.parquet`` and ``summary.md`` into ``out_folder``.

    Predictions carry the row number (from 0, in the table's order), ``key_column``'s value when
    given, the prediction, each class's probability (classification) and the model's name and
    ``model_version``. ``dataset_fingerprint``: the batch's (default: the table file's sha256).
    ``progress(rows done, rows in all)`` after each batch."""
    started = time.perf_counter()
    scorer = BatchScorer(model_folder)
    manifest = scorer.manifest
    table_path = str(table_path)
    try:
        parquet = pq.ParquetFile(table_path)
    except (pa.ArrowException, OSError) as exc:
        raise KfkitError(f"{table_path}: cannot read as Parquet: {exc}") from None
    columns = parquet.schema_arrow.names
    missing = [name for name in scorer.names if name not in columns]
    if missing:
        raise KfkitError(
            f"{table_path}: the data lacks feature column(s) {', '.join(missing)} of model "
            f"{manifest.model_name!r} (columns: {', '.join(columns)})"
        )
    key: pa.Field | None = None
    if key_column:
        if key_column not in columns:
            raise KfkitError(
                f"{table_path}: key column '{key_column}' not found (columns: {', '.join(columns)})"
            )
        key = parquet.schema_arrow.field(key_column)
        taken = set(_output_schema(scorer, None).names) | set(_rejects_schema(None).names)
        if key_column in taken:
            raise KfkitError(
                f"key column '{key_column}' has the name of an output column ({', '.join(taken)})"
            )
    summary = ScoreSummary(
        model_name=manifest.model_name,
        model_version=str(model_version),
        model_sha256=manifest.sha256,
        problem_type=manifest.problem_type,
        dataset_fingerprint=dataset_fingerprint or sha256_file(table_path),
        key_column=key_column,
        fast_path=scorer.server.fast is not None,
    )
    out = Path(out_folder)
    out.mkdir(parents=True, exist_ok=True)
    schema, rejects_schema = _output_schema(scorer, key), _rejects_schema(key)
    read = list(dict.fromkeys([*scorer.names, *([key_column] if key_column else [])]))
    classes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    by_column: Counter[str] = Counter()
    low, high, total = np.inf, -np.inf, 0.0
    total_rows = parquet.metadata.num_rows
    with (
        pq.ParquetWriter(out / PREDICTIONS_FILE, schema) as predictions,
        pq.ParquetWriter(out / REJECTS_FILE, rejects_schema) as rejects,
    ):
        for batch in parquet.iter_batches(batch_size=batch_rows or batch_rows_setting(), columns=read):
            first = summary.rows
            kept, answers, refused, row_by_row = scorer.score_batch(batch, first)
            summary.rows += batch.num_rows
            summary.batches += 1
            summary.batches_row_by_row += int(row_by_row)
            arrays: list[pa.Array] = [pa.array(kept + first, pa.int64())]
            if key is not None:
                arrays.append(batch.column(batch.schema.get_field_index(key_column)).take(pa.array(kept)))
            if scorer.classify:
                best = np.argmax(answers, axis=1) if len(kept) else np.empty(0, np.int64)
                arrays.append(pa.array(list(scorer.outputs), pa.string()).take(pa.array(best)))
                arrays += [pa.array(answers[:, i], pa.float64()) for i in range(len(scorer.outputs))]
                counts = np.bincount(best, minlength=len(scorer.outputs))
                classes.update({scorer.outputs[i]: int(n) for i, n in enumerate(counts) if n})
            else:
                values = answers[:, 0] if len(kept) else np.empty(0)
                arrays.append(pa.array(values, pa.float64()))
                if len(values):
                    low, high, total = min(low, values.min()), max(high, values.max()), total + values.sum()
            same = pa.array(np.zeros(len(kept), np.int64))
            arrays += [
                pa.array([manifest.model_name], pa.string()).take(same),
                pa.array([str(model_version)], pa.string()).take(same),
            ]
            predictions.write_table(pa.Table.from_arrays(arrays, schema=schema))
            summary.rows_scored += len(kept)
            if refused:
                where = pa.array([r.row - first for r in refused], pa.int64())
                record = [pa.array([r.row for r in refused], pa.int64())]
                if key is not None:
                    record.append(batch.column(batch.schema.get_field_index(key_column)).take(where))
                for name in ("column", "reason", "value", "message"):
                    record.append(pa.array([getattr(r, name) for r in refused], pa.string()))
                rejects.write_table(pa.Table.from_arrays(record, schema=rejects_schema))
                summary.rows_rejected += len(refused)
                reasons.update(r.reason for r in refused)
                by_column.update(r.column for r in refused if r.column)
            if progress is not None:
                progress(summary.rows, total_rows)
    summary.class_distribution = dict(sorted(classes.items()))
    summary.rejected_by_reason = dict(sorted(reasons.items()))
    summary.rejected_by_column = dict(sorted(by_column.items()))
    if summary.rows_scored and not scorer.classify:
        summary.prediction_range = {
            "min": float(low),
            "mean": total / summary.rows_scored,
            "max": float(high),
        }
    summary.seconds = round(time.perf_counter() - started, 3)
    (out / SUMMARY_FILE).write_text(summary_markdown(summary))
    return summary


def summary_markdown(summary: ScoreSummary, where: str = "", data_check: dict[str, Any] | None = None) -> str:
    """The summary the KFP UI renders: what scored what, rows scored and rejected by reason, the
    class distribution; ``data_check``: validate's verdict on the batch (its anomalies)."""
    version = summary.model_version or "?"
    lines = [
        f"# Scoring: {summary.model_name} version {version}",
        "",
        "| | |",
        "|---|---|",
        f"| model sha256 | `{summary.model_sha256[:12]}` |",
        f"| data fingerprint | `{summary.dataset_fingerprint[:12]}` |",
        f"| rows | {summary.rows} |",
        f"| scored | {summary.rows_scored} |",
        f"| rejected | {summary.rows_rejected} |",
        f"| time | {summary.seconds:.1f} s |",
    ]
    if where:
        lines.append(f"| predictions | `{where}` |")
    if data_check is not None:
        found = data_check.get("anomalies") or {}
        lines.append(f"| data validation | {'no anomalies' if not found else f'{len(found)} anomalies'} |")
        if found:
            lines += [
                "",
                "## Data anomalies (reported, not blocking)",
                "",
                "| feature | anomaly |",
                "|---|---|",
            ]
            lines += [f"| {name} | {text} |" for name, text in sorted(found.items())]
    if summary.rejected_by_reason:
        lines += ["", "## Rejected rows by reason", "", "| reason | rows |", "|---|---|"]
        lines += [f"| {reason} | {count} |" for reason, count in summary.rejected_by_reason.items()]
        lines += ["", "| column | rows |", "|---|---|"]
        lines += [f"| `{column}` | {count} |" for column, count in summary.rejected_by_column.items()]
    if summary.class_distribution:
        lines += ["", "## Predicted classes", "", "| class | rows | share |", "|---|---|---|"]
        for label, count in summary.class_distribution.items():
            lines.append(f"| {label} | {count} | {count / max(summary.rows_scored, 1):.1%} |")
    if summary.prediction_range:
        lines += ["", "## Predictions", "", "| min | mean | max |", "|---|---|---|"]
        r = summary.prediction_range
        lines.append(f"| {r['min']:.6g} | {r['mean']:.6g} | {r['max']:.6g} |")
    return "\n".join(lines) + "\n"


def check(params: dict[str, Any]) -> None:
    """The parameters alone, before any task runs."""
    key = params.get("key_column")
    if key is not None and not isinstance(key, str):
        raise KfkitError(f"The 'key_column' parameter of score must be a column name. Got {key!r} instead.")


def run(task: Task) -> None:
    from kfkit.storage import ObjectStore

    batch, baseline = task.inputs["batch"], task.inputs["baseline"]
    if not baseline.metadata.get("found"):
        name = baseline.metadata.get("model_name") or "?"
        raise KfkitError(f"model {name} has no pushed version in s3://models/{name}/: nothing to score with")
    version = str(baseline.metadata.get("version") or "")
    fingerprint = str(batch.metadata.get("dataset_fingerprint") or "")
    with tempfile.TemporaryDirectory(prefix="kfkit-score-") as folder:
        summary = score_table(
            baseline.path,
            batch.path,
            folder,
            key_column=task.params.get("key_column") or "",
            model_version=version,
            dataset_fingerprint=fingerprint,
            progress=lambda done, total: task.say(f"scored {done} of {total} rows") if done < total else None,
        )
        if summary.model_sha256 != baseline.metadata.get("sha256"):
            raise KfkitError(
                f"{baseline.path}: the model's sha256 {summary.model_sha256[:12]} is not the one "
                f"resolve_baseline verified ({str(baseline.metadata.get('sha256'))[:12]})"
            )
        where = batch_folder(summary.model_name, version, summary.dataset_fingerprint)
        data_check = dict(task.inputs["anomalies"].metadata) if "anomalies" in task.inputs else None
        (Path(folder) / SUMMARY_FILE).write_text(summary_markdown(summary, str(where), data_check))
        data = {}
        if data_check is not None:
            data = {
                "data_blessed": bool(data_check.get("blessed")),
                "data_anomalies": dict(data_check.get("anomalies") or {}),
            }
        record = {
            **summary.to_dict(),
            **data,
            "source_uri": batch.metadata.get("source_uri", ""),
            # What the data was when scored (ingest's content identity): kfkit rescore reads the
            # batch again from source_uri and refuses it when it is gone or changed since.
            **{name: batch.metadata[name] for name in SOURCE_FIELDS if name in batch.metadata},
            "run_id": task.run_id,
        }
        published = publish(ObjectStore.from_env(), Path(folder), record)
        outputs = {"predictions": PREDICTIONS_FILE, "rejects": REJECTS_FILE, "summary": SUMMARY_FILE}
        for output, name in outputs.items():
            Path(task.outputs[output].path).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(Path(folder) / name), task.outputs[output].path)
    lineage = {
        "model_name": summary.model_name,
        "model_version": version,
        "model_sha256": summary.model_sha256,
        "dataset_fingerprint": summary.dataset_fingerprint,
        "rows": summary.rows,
        "rows_scored": summary.rows_scored,
        "rows_rejected": summary.rows_rejected,
        "rejected_by_reason": summary.rejected_by_reason,
        "predictions_uri": published.uri,
        # The folder's predictions file, named by its content (its record says which).
        "predictions_object": published.predictions_uri,
        "written": published.written,
        **data,
    }
    task.outputs["predictions"].metadata.update(
        {**lineage, "class_distribution": summary.class_distribution, "fast_path": summary.fast_path}
    )
    task.outputs["rejects"].metadata.update({**lineage, "rejected_by_column": summary.rejected_by_column})
    reasons = ", ".join(f"{count} {reason}" for reason, count in summary.rejected_by_reason.items())
    task.say(
        f"{summary.rows_scored} of {summary.rows} rows scored by {summary.model_name} version {version}"
        + (f"; {summary.rows_rejected} rejected ({reasons})" if summary.rows_rejected else "")
    )
    task.say(published.message)
    stored_key = published.record.get("key_column", "")
    if not published.written and stored_key != summary.key_column:
        task.say(
            f"the stored predictions carry key column {stored_key!r} (this run's own copy, the "
            f"task's output, carries {summary.key_column!r}): a key column is not part of a batch's identity"
        )
