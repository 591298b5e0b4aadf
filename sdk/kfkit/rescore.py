"""``kfkit rescore --model NAME[:VERSION]``: every batch a model has scored, scored again by one
version, and how its predictions differ from the version that scored it before.

For each batch any version of the model scored (:func:`kfkit.prediction_registry.list_scored_batches`,
one per dataset fingerprint), unless the target version scored it already (its folder exists):

1. the batch's data is checked where its record says it came from (``source_uri``, and ingest's
   content identity recorded then: :func:`kfkit.reproduce.check_recorded_source`); gone or
   changed, the batch fails with one line naming the file or object, and the others go on;
2. it is scored through ``kfkit score``'s own path (the scoring pipeline, run locally:
   :func:`kfkit.scoring.score_batch`), so its predictions, rejects, lineage and write-once folder
   are those of any scoring; the fingerprint it gets must be the batch's;
3. its predictions are compared, row by row (``row_number``), with those of the most recent
   version before the target that scored it (none before: the nearest after), and the diff is
   written once, as Markdown, beside the new predictions:
   ``s3://predictions/<model>/<version>/<fingerprint>/rescore-from-<earlier version>.md``.

Nothing is pushed or deployed: rescoring with a candidate version is its backtest before it
is promoted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kfkit import names
from kfkit.errors import KfkitError, first_line
from kfkit.storage import ObjectStore, ObjectUri

Progress = Callable[[str], None]

RESCORED, SKIPPED, FAILED = "rescored", "skipped", "failed"
REPORT_PREFIX = "rescore-from-"
TOP_ROWS = 10  # disagreements listed per batch
# The deploy target `kfkit score` asks which version serves (the scoring pipeline's defaults).
DEPLOY_STRATEGY = "auto"


@dataclass
class BatchDiff:
    """One batch: rescored (with its diff), skipped (already scored by the version) or failed."""

    dataset_fingerprint: str
    source_uri: str
    status: str
    message: str = ""
    compared_version: str = ""  # the earlier version whose predictions these are compared with
    predictions_uri: str = ""
    report_uri: str = ""
    run_id: str = ""
    rows_compared: int = 0  # rows both versions scored
    rows_changed: int = 0  # of those, rows whose prediction differs
    rows_only_before: int = 0  # scored by the earlier version only (the new one rejected them)
    rows_only_after: int = 0
    classes_before: dict[str, int] = field(default_factory=dict)
    classes_after: dict[str, int] = field(default_factory=dict)
    largest_changes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Rescoring:
    model_name: str
    model_version: str
    version_source: str  # how the version was chosen
    batches: list[BatchDiff]

    @property
    def exit_code(self) -> int:
        return 1 if any(b.status == FAILED for b in self.batches) else 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


def target_version(store: ObjectStore, model_name: str, version: str) -> tuple[str, str]:
    """(version, how it was chosen): the one asked for (it must be pushed), else the version
    serving now as the scoring pipeline resolves it, else the latest pushed."""
    from kfkit.components.resolve_baseline.executor import choose_version
    from kfkit.model_registry import resolve

    if version:
        resolve(store, f"{model_name}:{version}")
        return version, "as asked"
    chosen, _, how = choose_version(store, model_name, DEPLOY_STRATEGY)
    if chosen is None:
        raise KfkitError(f"model {model_name} has no pushed version: nothing to rescore with")
    return chosen, how


def compared_version(versions: list[str], target: str) -> str:
    """The most recent version before ``target`` among ``versions``; none before: the nearest after."""
    before = [v for v in versions if int(v) < int(target)]
    return max(before, key=int) if before else min(versions, key=int)


def rescore(
    model: str,
    metadata_uri: str | None = None,
    progress: Progress | None = None,
    top: int = TOP_ROWS,
) -> Rescoring:
    """Rescore every batch of ``model`` (``NAME[:VERSION]``) with that version; see the module.
    The object store is the environment's, else the local one (started if needed, as
    ``kfkit score`` does)."""
    from kfkit.local_run import object_store_env

    name, asked = names.parse_model_reference(model)
    with object_store_env():
        return _rescore(ObjectStore.from_env(), name, asked, metadata_uri, progress, top)


def _rescore(
    store: ObjectStore,
    name: str,
    asked: str,
    metadata_uri: str | None,
    progress: Progress | None,
    top: int,
) -> Rescoring:
    from kfkit.prediction_registry import list_scored_batches

    version, how = target_version(store, name, asked)
    by_batch: dict[str, dict[str, Any]] = {}
    for scored in list_scored_batches(store, name):
        by_batch.setdefault(scored.dataset_fingerprint, {})[scored.model_version] = scored
    say = progress or (lambda line: None)
    results = []
    for number, (fingerprint, versions) in enumerate(by_batch.items(), start=1):
        earlier = versions[compared_version([v for v in versions if v != version] or [version], version)]
        source = str(earlier.record.get("source_uri") or "")
        where = f"batch {number}/{len(by_batch)} {fingerprint[:12]} ({source or 'no source recorded'})"
        if version in versions:
            results.append(
                BatchDiff(
                    fingerprint,
                    source,
                    SKIPPED,
                    f"already scored by version {version}: {versions[version].uri}",
                    predictions_uri=versions[version].uri,
                )
            )
            say(f"{where}: skipped, already scored by version {version}")
            continue
        say(f"{where}: scoring with version {version}, comparing with version {earlier.model_version}")
        try:
            diff = rescore_batch(store, earlier, name, version, metadata_uri, top)
        except KfkitError as exc:
            diff = BatchDiff(fingerprint, source, FAILED, f"batch {fingerprint[:12]}: {first_line(exc)}")
        say(f"{where}: {diff.status}: {diff.message}")
        results.append(diff)
    return Rescoring(name, version, how, results)


def rescore_batch(
    store: ObjectStore, earlier: Any, model_name: str, version: str, metadata_uri: str | None, top: int
) -> BatchDiff:
    """One batch (``earlier``: a :class:`kfkit.prediction_registry.ScoredBatch`) scored by
    ``version`` and diffed against ``earlier``'s predictions. One line when it cannot be."""
    from kfkit.reproduce import check_recorded_source
    from kfkit.scoring import score_batch

    record, fingerprint = earlier.record, earlier.dataset_fingerprint
    source = str(record.get("source_uri") or "")
    if not source:
        raise KfkitError(f"{earlier.uri}: its record names no source_uri: the data cannot be found again")
    check_recorded_source(source, record, str(record.get("run_id") or "?"))
    scored = score_batch(
        source,
        f"{model_name}:{version}",
        key_column=str(record.get("key_column") or ""),
        metadata_uri=metadata_uri,
    )
    if scored.dataset_fingerprint != fingerprint:
        raise KfkitError(
            f"{source}: its data now has fingerprint {scored.dataset_fingerprint[:12]}, not the batch's "
            f"{fingerprint[:12]} (changed since run {record.get('run_id') or '?'}); scored as a new "
            f"batch in {scored.predictions_uri}, not compared"
        )
    before = _predictions(store, earlier.uri)
    after = _predictions(store, scored.predictions_uri)
    diff = compare(before, after, str(record.get("key_column") or ""), top)
    diff.update(
        dataset_fingerprint=fingerprint,
        source_uri=source,
        status=RESCORED,
        compared_version=earlier.model_version,
        predictions_uri=scored.predictions_uri,
        run_id=scored.run_id,
    )
    result = BatchDiff(**diff)
    report = ObjectUri.parse(scored.predictions_uri).child(f"{REPORT_PREFIX}{earlier.model_version}.md")
    text = report_markdown(result, model_name, version)
    # Write-once like the folder: an existing report (same batch, same two versions) stays.
    store.create_bytes(report, text.encode(), "text/markdown")
    result.report_uri = str(report)
    result.message = (
        f"{result.rows_changed} of {result.rows_compared} predictions changed "
        f"(version {earlier.model_version} -> {version}); report {report}"
    )
    return result


def _predictions(store: ObjectStore, folder: str) -> pd.DataFrame:
    from kfkit.prediction_registry import read_table

    return read_table(store, folder)


def compare(before: pd.DataFrame, after: pd.DataFrame, key_column: str, top: int) -> dict[str, Any]:
    """Two predictions tables of one batch, joined on ``row_number``: the counts, the class
    distributions (of the rows both scored) and the ``top`` rows whose probabilities (regression:
    predictions) moved most, largest first."""
    from kfkit.components.score.executor import PREDICTION, PROBABILITY_PREFIX, ROW_NUMBER

    joined = before.merge(after, on=ROW_NUMBER, suffixes=("_before", "_after"))
    old, new = joined[f"{PREDICTION}_before"], joined[f"{PREDICTION}_after"]
    probabilities = sorted(
        c[len(PROBABILITY_PREFIX) :]
        for c in set(before.columns) & set(after.columns)
        if c.startswith(PROBABILITY_PREFIX)
    )
    if probabilities:
        moved = np.max(
            [
                np.abs(joined[f"{PROBABILITY_PREFIX}{c}_after"] - joined[f"{PROBABILITY_PREFIX}{c}_before"])
                for c in probabilities
            ],
            axis=0,
        )
    else:
        moved = np.abs(new.astype(float) - old.astype(float)).to_numpy()
    order = np.lexsort((joined[ROW_NUMBER].to_numpy(), -np.asarray(moved, dtype=float)))[:top]
    largest = []
    for i in order:
        row = {"row_number": int(joined[ROW_NUMBER].iloc[i])}
        if key_column and f"{key_column}_before" in joined:
            row[key_column] = _plain(joined[f"{key_column}_before"].iloc[i])
        row.update(before=_plain(old.iloc[i]), after=_plain(new.iloc[i]), change=float(moved[i]))
        largest.append(row)
    classify = bool(probabilities) or before[PREDICTION].dtype == object
    return {
        "rows_compared": len(joined),
        "rows_changed": int((old != new).sum()),
        "rows_only_before": int((~before[ROW_NUMBER].isin(after[ROW_NUMBER])).sum()),
        "rows_only_after": int((~after[ROW_NUMBER].isin(before[ROW_NUMBER])).sum()),
        "classes_before": _counts(old) if classify else {},
        "classes_after": _counts(new) if classify else {},
        "largest_changes": largest,
    }


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(values.value_counts().items())}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def report_markdown(diff: BatchDiff, model_name: str, version: str) -> str:
    """The diff of one batch as Markdown (the report kept beside the new predictions)."""
    was = diff.compared_version
    share = diff.rows_changed / max(diff.rows_compared, 1)
    lines = [
        f"# Rescoring: {model_name} version {was} -> {version}",
        "",
        "| | |",
        "|---|---|",
        f"| batch (dataset fingerprint) | `{diff.dataset_fingerprint}` |",
        f"| data | `{diff.source_uri}` |",
        f"| predictions of version {version} | `{diff.predictions_uri}` (run {diff.run_id}) |",
        f"| rows compared (scored by both) | {diff.rows_compared} |",
        f"| predictions changed | {diff.rows_changed} ({share:.1%}) |",
        f"| rows scored by version {was} only | {diff.rows_only_before} |",
        f"| rows scored by version {version} only | {diff.rows_only_after} |",
    ]
    if diff.classes_before or diff.classes_after:
        lines += ["", "## Predicted classes", "", f"| class | version {was} | version {version} | change |"]
        lines.append("|---|---|---|---|")
        for label in sorted(set(diff.classes_before) | set(diff.classes_after)):
            a, b = diff.classes_before.get(label, 0), diff.classes_after.get(label, 0)
            lines.append(f"| {label} | {a} | {b} | {b - a:+d} |")
    if diff.largest_changes:
        what = "largest probability change" if diff.classes_before else "absolute change"
        keys = [k for k in diff.largest_changes[0] if k not in ("before", "after", "change")]
        lines += ["", f"## Where the versions disagree most ({what})", ""]
        lines.append("| " + " | ".join([*keys, f"version {was}", f"version {version}", "change"]) + " |")
        lines.append("|" + "---|" * (len(keys) + 3))
        for row in diff.largest_changes:
            cells = [str(row[k]) for k in keys] + [str(row["before"]), str(row["after"])]
            cells.append(f"{row['change']:.4f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_rescoring(result: Rescoring) -> str:
    """The terminal table: one row per batch."""
    from kfkit.tables import grid

    head = f"model {result.model_name} version {result.model_version} ({result.version_source})"
    if not result.batches:
        return f"{head}\nno batch of {result.model_name} has been scored yet: nothing to rescore"
    rows = []
    for b in result.batches:
        shift = ", ".join(
            f"{c} {b.classes_before.get(c, 0)}->{b.classes_after.get(c, 0)}"
            for c in sorted(set(b.classes_before) | set(b.classes_after))
        )
        rows.append(
            [
                b.dataset_fingerprint[:12],
                b.status,
                b.compared_version or "-",
                b.rows_compared if b.status == RESCORED else "-",
                b.rows_changed if b.status == RESCORED else "-",
                shift or "-",
            ]
        )
    table = grid(["batch", "status", "vs version", "rows", "changed", "classes before->after"], rows)
    notes = [f"{b.dataset_fingerprint[:12]}: {b.report_uri or b.message}" for b in result.batches]
    failed = sum(b.status == FAILED for b in result.batches)
    tail = f"{failed} of {len(result.batches)} batch(es) failed" if failed else "all batches done"
    return "\n".join([head, table, "", *notes, tail])
