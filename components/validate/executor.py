"""Validate's logic: TFDV statistics for each split, a schema, anomalies, a report.

The only step that imports TensorFlow (through TFDV); keep it that way, the import costs
several seconds.

The schema, in order: a curated schema given by URI; else the schema of the baseline (the
``baseline`` input: the latest pushed version trained against it); else one inferred now from
the train split. Every one of them is an input the run shows; nothing is read from or written
to a hidden place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kfkit import names
from kfkit.errors import KfkitError
from kfkit.params import check_choice
from kfkit.storage import ObjectStore, is_object_uri

if TYPE_CHECKING:
    from kfkit.runtime import Task

# A schema that names these outside their domain is data drift the user must look at.
_MAX_ANOMALIES_IN_MESSAGE = 5


@dataclass
class ValidationResult:
    blessed: bool
    anomalies: dict[str, str]  # "<split>:<feature>" -> description
    schema_source: str  # "curated", "baseline" or "inferred"
    schema_uri: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        items = [f"{key}: {text}" for key, text in sorted(self.anomalies.items())]
        shown = "; ".join(items[:_MAX_ANOMALIES_IN_MESSAGE])
        more = len(items) - _MAX_ANOMALIES_IN_MESSAGE
        return shown + (f"; and {more} more" if more > 0 else "")


def _tfdv():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow_data_validation as tfdv

    return tfdv


def _schema_from_text(text: str):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    return text_format.Parse(text, schema_pb2.Schema())


def _schema_to_text(schema) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(schema)


def load_schema_text(uri: str, store: ObjectStore | None) -> str | None:
    if is_object_uri(uri):
        store = store or ObjectStore.from_env()
        if not store.exists(uri):
            return None
        return store.get_bytes(uri).decode()
    path = Path(uri)
    return path.read_text() if path.is_file() else None


def infer_schema(statistics, label_column: str):
    tfdv = _tfdv()
    schema = tfdv.infer_schema(statistics, infer_feature_shape=False)
    # The label must be present in every row; other features keep the presence TFDV saw.
    label = tfdv.get_feature(schema, label_column)
    label.presence.min_fraction = 1.0
    return schema


def _anomaly_map(anomalies, split: str) -> dict[str, str]:
    found = {}
    for feature, info in anomalies.anomaly_info.items():
        text = info.description or info.short_description
        found[f"{split}:{feature}"] = " ".join(text.split())
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        found[f"{split}:<dataset>"] = info.description or info.short_description
    return found


def validate(
    train: pd.DataFrame,
    evaluation: pd.DataFrame,
    label_column: str,
    policy: str = "fail",
    schema_uri: str = "",
    baseline_schema: str | None = None,
    baseline_uri: str = "",
    store: ObjectStore | None = None,
) -> tuple[ValidationResult, dict[str, Any]]:
    """``baseline_schema``: the path of the baseline's schema.pbtxt (None: no baseline);
    ``baseline_uri``: where that baseline lives, for messages."""
    """Returns the result and the protos to write: train/eval statistics, schema, anomalies."""
    check_choice("validate", "policy", policy, names.VALIDATION_POLICIES)
    tfdv = _tfdv()
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    stats = {
        "train": tfdv.generate_statistics_from_dataframe(train),
        "eval": tfdv.generate_statistics_from_dataframe(evaluation),
    }
    if schema_uri:
        text = load_schema_text(schema_uri, store)
        if text is None:
            raise KfkitError(f"{schema_uri}: curated schema not found")
        schema, source, where = _parse_schema(text, schema_uri), "curated", schema_uri
    elif baseline_schema is not None:
        where = baseline_uri or baseline_schema
        schema, source = _parse_schema(Path(baseline_schema).read_text(), where), "baseline"
    else:
        schema, source, where = infer_schema(stats["train"], label_column), "inferred", ""

    anomalies: dict[str, str] = {}
    anomaly_protos = anomalies_pb2.Anomalies()
    for split, split_stats in stats.items():
        found = tfdv.validate_statistics(split_stats, schema)
        anomalies.update(_anomaly_map(found, split))
        for feature, info in found.anomaly_info.items():
            anomaly_protos.anomaly_info[f"{split}:{feature}"].CopyFrom(info)
    blessed = not anomalies
    result = ValidationResult(blessed=blessed, anomalies=anomalies, schema_source=source, schema_uri=where)
    result.metadata = {
        "blessed": blessed,
        "reason": "no anomalies" if blessed else f"{len(anomalies)} anomalies: {result.summary()}",
        "policy": policy,
        "anomaly_count": len(anomalies),
        "anomalies": anomalies,
        "schema_source": source,
        "schema_uri": where,
        "label_column": label_column,
    }
    protos = {"statistics": stats, "schema": schema, "anomalies": anomaly_protos}
    return result, protos


def _parse_schema(text: str, where: str):
    try:
        return _schema_from_text(text)
    except Exception as exc:  # noqa: BLE001 - protobuf text errors carry line:col
        raise KfkitError(f"{where}: not a valid TFDV schema: {exc}") from None


def write_outputs(
    protos: dict[str, Any],
    result: ValidationResult,
    statistics_dir: str,
    schema_dir: str,
    anomalies_dir: str,
) -> None:
    for folder in (statistics_dir, schema_dir, anomalies_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    for split, split_stats in protos["statistics"].items():
        (Path(statistics_dir) / f"{split}.pb").write_bytes(split_stats.SerializeToString())
    (Path(schema_dir) / "schema.pbtxt").write_text(_schema_to_text(protos["schema"]))
    from google.protobuf import text_format

    (Path(anomalies_dir) / "anomalies.pbtxt").write_text(text_format.MessageToString(protos["anomalies"]))


def report_markdown(protos: dict[str, Any], result: ValidationResult) -> str:
    """A Markdown report the KFP UI renders: verdict, anomalies, per-feature statistics."""
    verdict = "blessed" if result.blessed else "NOT blessed"
    lines = [
        "# Data validation",
        "",
        f"**{verdict}**: {len(result.anomalies)} anomalies against the {result.schema_source} "
        f"schema"
        + (f" (`{result.schema_uri}`)." if result.schema_uri else " (inferred from the train split)."),
        "",
    ]
    if result.anomalies:
        lines += ["| split:feature | anomaly |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(result.anomalies.items())]
        lines.append("")
    for split, split_stats in protos["statistics"].items():
        dataset = split_stats.datasets[0]
        lines += [
            f"## {split} split: {dataset.num_examples} rows",
            "",
            "| feature | type | missing | mean / top value | std / unique | min | max |",
            "|---|---|---|---|---|---|---|",
        ]
        for feature in dataset.features:
            name = feature.path.step[0] if feature.path.step else feature.name
            if feature.HasField("num_stats"):
                num = feature.num_stats
                common = num.common_stats
                missing = common.num_missing
                lines.append(
                    f"| {name} | numeric | {missing} | {num.mean:.4g} | {num.std_dev:.4g} "
                    f"| {num.min:.4g} | {num.max:.4g} |"
                )
            elif feature.HasField("string_stats"):
                text = feature.string_stats
                top = text.top_values[0].value if text.top_values else ""
                lines.append(
                    f"| {name} | categorical | {text.common_stats.num_missing} | {top} | {text.unique} | | |"
                )
        lines.append("")
    return "\n".join(lines)


def run(task: Task) -> None:
    from kfkit.splits import read_split

    train_split, eval_split = task.inputs["train_split"], task.inputs["eval_split"]
    baseline, p = task.inputs["baseline"], task.params
    baseline_schema = Path(baseline.path) / "schema.pbtxt"
    found = bool(baseline.metadata.get("found")) and baseline_schema.is_file()
    result, protos = validate(
        read_split(train_split.path),
        read_split(eval_split.path),
        label_column=train_split.metadata["label_column"],
        policy=p["policy"],
        schema_uri=p["schema_uri"],
        baseline_schema=str(baseline_schema) if found else None,
        baseline_uri=f"{baseline.metadata.get('uri', baseline.uri).rstrip('/')}/schema.pbtxt",
    )
    out = task.outputs
    write_outputs(protos, result, out["statistics"].path, out["schema"].path, out["anomalies"].path)
    Path(out["report"].path).write_text(report_markdown(protos, result))
    fingerprint = train_split.metadata.get("dataset_fingerprint", "")
    for artifact in out.values():
        artifact.metadata.update(result.metadata)
        artifact.metadata["dataset_fingerprint"] = fingerprint
    if result.schema_source == "inferred":
        task.say(
            f"inferred the schema from the train split ({baseline.metadata.get('reason', 'no baseline')})"
        )
    if result.blessed:
        task.say(f"blessed: no anomalies against the {result.schema_source} schema")
    elif p["policy"] == "fail":
        raise KfkitError(
            f"data validation failed ({len(result.anomalies)} anomalies against the "
            f"{result.schema_source} schema): {result.summary()}"
        )
    else:
        task.say(f"NOT blessed (policy warn, nothing will be trained or pushed): {result.summary()}")
