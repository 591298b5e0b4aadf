"""``kfkit score``: a batch scored by a pushed model version on this machine, through kfkit's
scoring pipeline (``pipelines/scoring.py``) run by :func:`kfkit.local_run.run_local`, so that a
scoring from the command line is the same run, with the same lineage, as one in a cluster."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfkit import names
from kfkit.errors import KfkitError
from kfkit.storage import is_object_uri

SCORING_PIPELINE = "scoring"
SCORE_TASK = "score"


@dataclass
class ScoringResult:
    """What ``kfkit score`` prints: the scoring's outcome, and where everything is."""

    run_id: str
    data: str
    model_name: str
    model_version: str
    model_sha256: str
    dataset_fingerprint: str
    rows: int
    rows_scored: int
    rows_rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    class_distribution: dict[str, int] = field(default_factory=dict)
    data_anomalies: dict[str, str] = field(default_factory=dict)  # validate's, reported not blocking
    predictions_uri: str = ""  # the batch folder
    predictions_object: str = ""  # its predictions file, named by its content
    written: bool = True  # False: this version had already scored this batch; nothing was written
    predictions: str = ""  # this run's local copies
    rejects: str = ""
    summary: str = ""
    seconds: float = 0.0
    log: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_batch(
    data: str,
    model: str,
    key_column: str = "",
    metadata_uri: str | None = None,
    progress: Any = None,
    use_cache: bool = True,
) -> ScoringResult:
    """Score ``data`` (a local file or folder, or an s3:// object or prefix) with ``model``
    (``NAME[:VERSION]``; no version: the version serving now, else the latest pushed) by running
    the scoring pipeline locally. One-line :class:`KfkitError` when it fails."""
    from kfkit.local_run import run_local

    name, version = names.parse_model_reference(model)
    if not is_object_uri(data):
        if not Path(data).exists():
            raise KfkitError(f"{data}: no such file or folder")
        data = str(Path(data).resolve())
    parameters = {"data_uri": data, "model_name": name, "model_version": version, "key_column": key_column}
    summary = run_local(
        parameters,
        pipeline=SCORING_PIPELINE,
        progress=progress,
        metadata_uri=metadata_uri,
        use_cache=use_cache,
    )
    if summary.status != "SUCCEEDED":
        raise KfkitError(summary.error or f"scoring run {summary.run_id} failed; see {summary.log}")
    scored = summary.scored[SCORE_TASK]
    predictions = summary.artifacts[f"{SCORE_TASK}.predictions"]
    return ScoringResult(
        run_id=summary.run_id,
        data=data,
        model_name=name,
        model_version=str(scored["model_version"]),
        model_sha256=str(predictions.get("model_sha256", "")),
        dataset_fingerprint=str(predictions.get("dataset_fingerprint", "")),
        rows=int(scored["rows"]),
        rows_scored=int(scored["rows_scored"]),
        rows_rejected=int(scored["rows_rejected"]),
        rejected_by_reason=dict(scored.get("rejected_by_reason") or {}),
        class_distribution=dict(scored.get("class_distribution") or {}),
        data_anomalies=dict(predictions.get("data_anomalies") or {}),
        predictions_uri=str(scored["predictions_uri"]),
        predictions_object=str(predictions.get("predictions_object", "")),
        written=bool(scored["written"]),
        predictions=summary.artifact_uris.get(f"{SCORE_TASK}.predictions", ""),
        rejects=summary.artifact_uris.get(f"{SCORE_TASK}.rejects", ""),
        summary=summary.artifact_uris.get(f"{SCORE_TASK}.summary", ""),
        seconds=summary.seconds,
        log=summary.log,
    )


def format_scoring(result: ScoringResult) -> str:
    """The result as a terminal table."""
    from kfkit.tables import key_values

    rejected = str(result.rows_rejected)
    if result.rejected_by_reason:
        rejected += (
            " (" + ", ".join(f"{reason}: {n}" for reason, n in result.rejected_by_reason.items()) + ")"
        )
    rows: list[tuple[str, Any]] = [
        ("model", f"{result.model_name} version {result.model_version} (sha256 {result.model_sha256[:12]})"),
        ("data", result.data),
        ("dataset fingerprint", result.dataset_fingerprint),
        ("rows", result.rows),
        ("scored", result.rows_scored),
        ("rejected", rejected),
    ]
    for label, count in result.class_distribution.items():
        rows.append((f"  class {label}", f"{count} ({count / max(result.rows_scored, 1):.1%})"))
    if result.data_anomalies:
        rows.append(
            ("data anomalies", f"{len(result.data_anomalies)} (reported; the batch is scored all the same)")
        )
        rows += [(f"  {name}", text) for name, text in sorted(result.data_anomalies.items())]
    already = "" if result.written else " (already scored by this version: nothing new written)"
    rows += [
        ("predictions", result.predictions_uri + already),
        ("  file", result.predictions_object or "-"),
        ("rejects", result.rejects),
        ("run", result.run_id),
        ("time", f"{result.seconds:.1f}s"),
    ]
    return key_values(rows)
