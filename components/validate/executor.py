"""Validate's logic: TFDV statistics for each split, a schema, anomalies, a report.

The only step that imports TensorFlow (through TFDV); keep it that way, the import costs
several seconds.

The schema, in order: a curated schema given by URI; else the schema of the baseline (the
``baseline`` input: the latest pushed version trained against it); else one inferred now from
the train split. Every one of them is an input the run shows; nothing is read from or written
to a hidden place.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfkit import feature_roles, names
from kfkit.errors import KfkitError, first_line
from kfkit.feature_roles import FeatureRole
from kfkit.label_checks import check_eval_classes, check_label
from kfkit.params import check_choice, check_thresholds
from kfkit.splits import ARROW_BATCH_ROWS, Split, arrow_batches, arrow_column, arrow_schema, split_rows
from kfkit.storage import ObjectStore, is_object_uri

if TYPE_CHECKING:
    import pyarrow as pa

    from kfkit.runtime import Task

_MAX_ANOMALIES_IN_MESSAGE = 5

# Drift (this run's train split against the baseline's training data) and skew (train split
# against eval split) with TFDV's comparators: L-infinity distance between the value
# frequencies of a categorical (BYTES) feature, Jensen-Shannon divergence between the
# histograms of a numeric (INT/FLOAT) one. Both lie in [0, 1].
COMPARATORS = {"categorical": "infinity_norm", "numeric": "jensen_shannon_divergence"}
COMPARATOR_NAMES = {
    "infinity_norm": "L-infinity distance",
    "jensen_shannon_divergence": "Jensen-Shannon divergence",
}
# Measured on generated data (see the README's gates paragraph): +3 sd on a numeric column
# gives a divergence of 0.75 (+1 sd 0.16), remapping grades B and C to A an L-infinity
# distance of 0.52; fresh random samples of one distribution stay under 0.05 at 4,000 rows and
# under 0.17 at 276 vs 68 rows (penguins-sized splits). 0.2 sits above that noise.
DEFAULT_THRESHOLDS = {"infinity_norm": 0.2, "jensen_shannon_divergence": 0.2}
# TFDV's schema environments: data to score is checked in SERVING, where the label is absent.
TRAINING, SERVING = "TRAINING", "SERVING"
_OFF = 1.0  # neither distance exceeds 1: the comparator still measures, never flags
_HIGH = ("COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH")


@dataclass
class Comparison:
    """One feature's drift or skew check."""

    feature: str
    comparator: str  # "infinity_norm" or "jensen_shannon_divergence"
    threshold: float | None  # None: turned off (measured, never flagged)
    distance: float | None = None  # None: not measured (the feature is missing on one side)
    flagged: bool = False
    most_changed: str = ""  # TFDV names the categorical value whose frequency moved most

    @property
    def verdict(self) -> str:
        if self.distance is None:
            return "not measured"
        if self.threshold is None:
            return "off"
        return "DRIFTED" if self.flagged else "ok"


@dataclass
class ValidationResult:
    blessed: bool
    anomalies: dict[str, str]  # "<split>:<feature>" -> description
    schema_source: str  # "curated", "baseline" or "inferred"
    schema_uri: str
    metadata: dict[str, Any] = field(default_factory=dict)
    drift: list[Comparison] = field(default_factory=list)
    skew: list[Comparison] = field(default_factory=list)
    drift_note: str = ""  # why drift was not checked ("" when it was)
    roles: dict[str, FeatureRole] = field(default_factory=dict)  # feature -> its role, schema order

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


def _tfdv_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A split's record batch in the form TFDV's generators take: each column a list array of
    numbers or bytes. Booleans count as integers (TFDV's DataFrame reader does the same);
    dictionary-encoded text is decoded; columns of other types (timestamps, nested values) are
    left out, as TFDV's DataFrame reader leaves them out."""
    import pyarrow as pa
    from tfx_bsl.arrow import table_util

    arrays, names_kept = [], []
    for name, array in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_dictionary(array.type):
            array = array.cast(array.type.value_type)
        if pa.types.is_boolean(array.type):
            array = array.cast(pa.int64())
        # A column with no value at all (Arrow's null type) stays: TFDV records it as missing.
        if any(
            is_kind(array.type)
            for is_kind in (pa.types.is_integer, pa.types.is_floating, pa.types.is_null, _is_text)
        ):
            arrays.append(array)
            names_kept.append(name)
    return table_util.CanonicalizeRecordBatch(pa.RecordBatch.from_arrays(arrays, names_kept))


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    kinds = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
    return any(is_kind(arrow_type) for is_kind in kinds)


def _statistics_options(beam: bool):
    """TFDV's options, the same generators in both paths: the in-process path always uses the
    sketch-based top-k (Misra-Gries counts, KMV distinct estimate: bounded memory); Beam's
    default would count every distinct value exactly in a shuffle, so it is told to as well."""
    tfdv = _tfdv()
    return tfdv.StatsOptions(use_sketch_based_topk_uniques=True) if beam else tfdv.StatsOptions()


def split_statistics(
    splits: dict[str, Split], beam_options: list[str] | None = None, batch_rows: int = ARROW_BATCH_ROWS
) -> dict[str, Any]:
    """TFDV statistics of each split (name -> DatasetFeatureStatisticsList), read in Arrow record
    batches: memory bounded by a batch and TFDV's sketches, not by the split. Without
    ``beam_options``, in this process: each batch's partial statistics merged into the running
    ones with TFDV's in-memory generators. With them, the same generators as one Beam pipeline
    for all splits on the runner they name (DirectRunner multi-processing locally,
    Flink/Spark/Dataflow in a cluster). Measured on 2 cores, in this process is the faster at
    every size tried (the README has the figures)."""
    if beam_options:
        return _beam_statistics(splits, beam_options, batch_rows)
    from tensorflow_data_validation.statistics import stats_impl

    options = _statistics_options(beam=False)
    generators = stats_impl.get_generators(options, in_memory=True)
    found = {}
    for name, split in splits.items():
        merged = [g.create_accumulator() for g in generators]
        for batch in arrow_batches(split, batch_rows):
            part = stats_impl.generate_partial_statistics_in_memory(_tfdv_batch(batch), options, generators)
            merged = [g.merge_accumulators([m, p]) for g, m, p in zip(generators, merged, part, strict=True)]
        found[name] = stats_impl.extract_statistics_output(merged, generators)
    return found


def _record_batches(table: pa.Table, rows: int) -> list[pa.RecordBatch]:
    return table.to_batches(max_chunksize=rows)


def _beam_statistics(splits: dict[str, Split], beam_options: list[str], batch_rows: int) -> dict[str, Any]:
    """One pipeline for all splits: its workers (processes that import TFDV) start once."""
    import apache_beam as beam

    tfdv = _tfdv()
    pipeline_options = beam_pipeline_options(beam_options)
    with tempfile.TemporaryDirectory(prefix="kfkit-validate-") as scratch:
        outputs = {name: str(Path(scratch) / f"{name}.pb") for name in splits}
        with beam.Pipeline(options=pipeline_options) as pipeline:
            for name, split in splits.items():
                if isinstance(split, str):
                    batches = (
                        pipeline
                        | f"Read {name}" >> beam.io.ReadFromParquetBatched(split)
                        | f"RecordBatches {name}" >> beam.FlatMap(_record_batches, batch_rows)
                    )
                else:
                    batches = pipeline | f"Batches {name}" >> beam.Create(
                        list(arrow_batches(split, batch_rows))
                    )
                _ = (
                    batches
                    | f"TfdvBatches {name}" >> beam.Map(_tfdv_batch)
                    | f"Statistics {name}" >> tfdv.GenerateStatistics(_statistics_options(beam=True))
                    | f"Write {name}" >> tfdv.WriteStatisticsToBinaryFile(outputs[name])
                )
        return {name: tfdv.load_stats_binary(output) for name, output in outputs.items()}


# A Beam pipeline option as a list item: "--name=value" or a bare "--flag"; a value holding
# " --" is two options written as one item, which Beam would read as one odd value.
_BEAM_OPTION = re.compile(r"--([A-Za-z][A-Za-z0-9_]*)(=(?!.*\s--).*)?", re.DOTALL)
# Option names that carry secrets (Beam's --s3_secret_access_key, --s3_access_key_id,
# --s3_session_token, ...): a parameter is stored in the pipeline spec and in lineage, so
# credentials reach Beam from the environment or a mounted secret, never through here.
_CREDENTIAL_WORDS = ("secret", "password", "token", "access_key", "credential", "private_key")


def check_beam_options(beam_options: Any) -> list[str]:
    """The shape of ``beam_options`` (no Beam import: run-local checks this before any task):
    a list of "--name=value" or "--flag" strings, none of them a credential."""
    if beam_options is None:
        return []
    if not isinstance(beam_options, list | tuple) or not all(isinstance(o, str) for o in beam_options):
        # Values are never echoed in these messages: a misplaced secret would land in the log.
        raise KfkitError(
            "The 'beam_options' parameter of validate must be a list of Beam pipeline options such as "
            f"['--direct_running_mode=multi_processing']. Got a {type(beam_options).__name__} instead."
        )
    for position, option in enumerate(beam_options, start=1):
        found = _BEAM_OPTION.fullmatch(option)
        if found is None:
            raise KfkitError(
                f"The 'beam_options' parameter of validate: item {position} (starting "
                f"{option.split('=', 1)[0][:40]!r}) is not one option; each item must be "
                "'--name=value' or '--flag'"
            )
        if any(word in found.group(1).lower() for word in _CREDENTIAL_WORDS):
            raise KfkitError(
                f"The 'beam_options' parameter of validate has --{found.group(1)}: credentials must "
                "not go through a pipeline parameter (it is stored in the pipeline and in lineage); "
                "give them to the runner through its environment or a mounted secret"
            )
    return list(beam_options)


def beam_pipeline_options(beam_options: list[str]):
    """Beam's PipelineOptions of ``beam_options``, refusing option names Beam does not know and
    values it rejects, with one line (Beam itself only warns about unknown names, and exits the
    process on a bad value)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    check_beam_options(beam_options)
    options = PipelineOptions(beam_options)
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):
            known = options.get_all_options()
    except SystemExit:
        lines = [line for line in usage.getvalue().splitlines() if line.strip()]
        reason = lines[-1].split("error: ", 1)[-1] if lines else "rejected by Beam"
        raise KfkitError(f"The 'beam_options' parameter of validate: {reason}") from None
    unknown = [o for o in beam_options if _BEAM_OPTION.fullmatch(o).group(1) not in known]
    if unknown:
        raise KfkitError(
            f"The 'beam_options' parameter of validate has option(s) Beam does not know: {unknown}"
        )
    return options


class _BothSplits:
    """The whole table's columns (train rows, then eval rows) read one at a time from both
    splits: feature_roles.TableColumns. Numbers of two types (integers in one split, floats where
    the other has a missing value) become floats, and anything else mixed becomes text, as a
    DataFrame of both would hold them."""

    def __init__(self, train: Split, evaluation: Split) -> None:
        self.splits = (train, evaluation)
        self.schemas = [arrow_schema(split) for split in self.splits]

    def type_of(self, name: str) -> pa.DataType | None:
        import pyarrow as pa

        kinds = {schema.field(name).type for schema in self.schemas if name in schema.names}
        if len(kinds) < 2:
            return next(iter(kinds), None)
        numeric = all(pa.types.is_integer(k) or pa.types.is_floating(k) or pa.types.is_null(k) for k in kinds)
        return pa.float64() if numeric else pa.string()

    def values(self, name: str) -> pa.ChunkedArray:
        import pyarrow as pa

        kind = self.type_of(name)
        parts = [
            values.cast(kind) for split in self.splits if (values := arrow_column(split, name)) is not None
        ]
        return pa.chunked_array([chunk for values in parts for chunk in values.chunks], type=kind)


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
    train: Split,
    evaluation: Split,
    label_column: str,
    policy: str = "fail",
    schema_uri: str = "",
    baseline_schema: str | None = None,
    baseline_uri: str = "",
    store: ObjectStore | None = None,
    baseline_statistics: str | None = None,
    baseline_name: str = "the baseline",
    drift_note: str = "",
    drift_thresholds: dict[str, Any] | None = None,
    skew_thresholds: dict[str, Any] | None = None,
    keep_features: list[str] | None = None,
    problem_type: str = "",
    beam_options: list[str] | None = None,
    absent_label: str = "",
) -> tuple[ValidationResult, dict[str, Any]]:
    """Returns the result and the protos to write: train/eval statistics, schema, anomalies.

    ``train`` and ``evaluation``: each split's Parquet file (read in batches and by column, never
    whole), or a DataFrame already in memory.
    ``baseline_schema``: the path of the baseline's schema.pbtxt (None: no baseline);
    ``baseline_uri``: where that baseline lives, for messages. ``baseline_statistics``: the
    path of the baseline's train_statistics.pb (None: drift is not checked, ``drift_note``
    says why); ``baseline_name`` names it in messages. ``drift_thresholds`` and
    ``skew_thresholds``: feature -> threshold overrides of :data:`DEFAULT_THRESHOLDS`.
    ``keep_features``: identifiers or free text to use as features all the same.
    ``problem_type``: "classification" or "regression" checks the label for it ("": no check).
    ``beam_options``: Beam pipeline options; given, the statistics run as a Beam pipeline.
    ``absent_label``: the schema's label, which this data lacks (a batch to score, ``label_column``
    empty): the data is checked in TFDV's ``SERVING`` environment, where that label is not
    expected. An empty eval split (no split) has no statistics and no skew."""
    check_choice("validate", "policy", policy, names.VALIDATION_POLICIES)
    keep_features = feature_roles.check_keep_features(keep_features)
    beam_options = check_beam_options(beam_options)
    if problem_type:
        check_choice("validate", "problem_type", problem_type, names.PROBLEM_TYPES)
        # Only the label column is read (a column of millions of numbers is megabytes).
        labels = {
            where: arrow_column(split, label_column)
            for where, split in (("train split", train), ("eval split", evaluation))
        }
        labels = {split: values.to_pandas() for split, values in labels.items() if values is not None}
        for split, values in labels.items():
            check_label(values, label_column, problem_type, split)
        if problem_type == "classification" and len(labels) == 2:
            check_eval_classes(labels["train split"], labels["eval split"], label_column)
        del labels
    tfdv = _tfdv()
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    splits = {"train": train, "eval": evaluation}
    if split_rows(evaluation) == 0:
        del splits["eval"]  # ingest's no-split mode (a batch to score): nothing to compare with
    stats = split_statistics(splits, beam_options)
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

    # What each column is to the model (identifier, free text, date, number, category), decided
    # on the whole table and written into the schema, so train and reviewers read it there.
    roles = feature_roles.decide_roles(_BothSplits(train, evaluation), schema, label_column, keep_features)
    excluded = {name for name, role in roles.items() if role.excluded}

    environment = None
    if absent_label:
        schema, environment = _serving_schema(schema, absent_label), SERVING
    anomalies: dict[str, str] = {}
    anomaly_protos = anomalies_pb2.Anomalies()
    for split, split_stats in stats.items():
        found = tfdv.validate_statistics(split_stats, schema, environment=environment)
        anomalies.update(_anomaly_map(found, split))
        for feature, info in found.anomaly_info.items():
            anomaly_protos.anomaly_info[f"{split}:{feature}"].CopyFrom(info)

    features = [f.name for f in schema.feature]
    drift_limits = check_thresholds("validate", "drift_thresholds", drift_thresholds, features)
    skew_limits = check_thresholds("validate", "skew_thresholds", skew_thresholds, features)
    drift: list[Comparison] = []
    control = None
    if baseline_statistics is not None:
        control = _read_statistics(baseline_statistics, f"{baseline_name}: {names.TRAIN_STATISTICS_FILE}")
        drift = compare(stats["train"], control, schema, drift_limits, "drift", anomaly_protos, excluded)
    skew = []
    if "eval" in stats:
        skew = compare(stats["train"], stats["eval"], schema, skew_limits, "skew", anomaly_protos, excluded)
    for check in drift:
        if check.flagged:
            anomalies[f"drift:{check.feature}"] = (
                f"drifted from {baseline_name}'s training data: {COMPARATOR_NAMES[check.comparator]} "
                f"{check.distance:.4f} above the threshold {check.threshold:g}{_most_changed(check)}"
            )
    for check in skew:
        if check.flagged:
            anomalies[f"skew:{check.feature}"] = (
                f"eval split differs from the train split: {COMPARATOR_NAMES[check.comparator]} "
                f"{check.distance:.4f} above the threshold {check.threshold:g}{_most_changed(check)}"
            )
    blessed = not anomalies
    result = ValidationResult(
        blessed=blessed,
        anomalies=anomalies,
        schema_source=source,
        schema_uri=where,
        drift=drift,
        skew=skew,
        drift_note="" if baseline_statistics is not None else drift_note,
        roles=roles,
    )
    result.metadata = {
        "blessed": blessed,
        "reason": "no anomalies" if blessed else f"{len(anomalies)} anomalies: {result.summary()}",
        "policy": policy,
        "anomaly_count": len(anomalies),
        "anomalies": anomalies,
        "schema_source": source,
        "schema_uri": where,
        "label_column": label_column,
        # The measured distances (feature -> distance), so lineage keeps them.
        "drift": {c.feature: round(c.distance, 6) for c in drift if c.distance is not None},
        "skew": {c.feature: round(c.distance, 6) for c in skew if c.distance is not None},
        "drift_baseline": baseline_name if baseline_statistics is not None else "",
        "drift_note": result.drift_note,
        # What each feature is to the model, and the features left out with the evidence.
        "feature_roles": {name: role.role for name, role in roles.items()},
        "excluded_features": {name: role.describe() for name, role in roles.items() if role.excluded},
    }
    protos = {
        "statistics": stats,
        "schema": schema,
        "anomalies": anomaly_protos,
        "baseline_statistics": control if baseline_statistics is not None else None,
    }
    return result, protos


def _serving_schema(schema: Any, label: str) -> Any:
    """A copy of ``schema`` whose ``label`` is not expected in the ``SERVING`` environment (TFDV's
    standard way to check data without its label); every other feature is in both environments."""
    serving = type(schema)()
    serving.CopyFrom(schema)
    for environment in (TRAINING, SERVING):
        if environment not in serving.default_environment:
            serving.default_environment.append(environment)
    for feature in serving.feature:
        if feature.name == label and SERVING not in feature.not_in_environment:
            feature.not_in_environment.append(SERVING)
    return serving


def _most_changed(check: Comparison) -> str:
    return f" (most changed value: {check.most_changed})" if check.most_changed else ""


def _read_statistics(path: str, where: str):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    try:
        return statistics_pb2.DatasetFeatureStatisticsList.FromString(Path(path).read_bytes())
    except Exception as exc:  # noqa: BLE001 - a protobuf DecodeError says little more
        raise KfkitError(f"{where}: not valid TFDV statistics: {first_line(exc)}") from None


def comparator_for(feature) -> str | None:
    """TFDV's comparator for a schema feature: L-infinity for BYTES, Jensen-Shannon for numbers."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    if feature.type == schema_pb2.BYTES:
        return COMPARATORS["categorical"]
    if feature.type in (schema_pb2.INT, schema_pb2.FLOAT):
        return COMPARATORS["numeric"]
    return None


def compare(
    current,
    control,
    schema,
    overrides: dict[str, float | None],
    mode: str,
    into=None,
    skip: set[str] | frozenset[str] = frozenset(),
) -> list[Comparison]:
    """Drift (``mode="drift"``: ``control`` is earlier data) or skew (``"skew"``: ``control`` is
    the serving side, here the eval split) of every schema feature, measured and judged by
    TFDV's ``validate_statistics`` with a comparator set on each feature. ``into``: an
    Anomalies proto that receives the flagged features (``<mode>:<feature>``) and the raw
    measurements (``drift_skew_info``). ``skip``: features the model leaves out (identifiers,
    free text), whose new values are expected, not drift."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

    tfdv = _tfdv()
    configured = schema_pb2.Schema()
    configured.CopyFrom(schema)
    checks: dict[str, Comparison] = {}
    for feature in configured.feature:
        feature.ClearField("drift_comparator")
        feature.ClearField("skew_comparator")
        comparator = comparator_for(feature)
        if comparator is None or feature.name in skip:
            continue
        threshold = overrides.get(feature.name, DEFAULT_THRESHOLDS[comparator])
        threshold = None if threshold is None or threshold >= _OFF else threshold
        checks[feature.name] = Comparison(feature.name, comparator, threshold)
        side = feature.drift_comparator if mode == "drift" else feature.skew_comparator
        getattr(side, comparator).threshold = _OFF if threshold is None else threshold
    control_arg = {"previous_statistics": control} if mode == "drift" else {"serving_statistics": control}
    found = tfdv.validate_statistics(current, configured, **control_arg)
    for info in found.drift_skew_info:
        name = ".".join(info.path.step)
        measurements = info.drift_measurements if mode == "drift" else info.skew_measurements
        if name in checks and measurements:
            checks[name].distance = float(measurements[0].value)
    high = {anomalies_pb2.AnomalyInfo.Type.Value(t) for t in _HIGH}
    for name, info in found.anomaly_info.items():
        reasons = [r for r in info.reason if r.type in high]
        if name in checks and reasons and checks[name].threshold is not None:
            checks[name].flagged = True
            _, _, value = reasons[0].description.partition("maximum difference is: ")
            checks[name].most_changed = value.strip()
            if into is not None:
                entry = into.anomaly_info[f"{mode}:{name}"]
                entry.path.CopyFrom(info.path)
                entry.severity = info.severity
                entry.reason.extend(reasons)
                entry.short_description = reasons[0].short_description
                entry.description = " ".join(r.description for r in reasons)
    if into is not None:
        into.drift_skew_info.extend(found.drift_skew_info)
    return list(checks.values())


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
        f"**{verdict}**: {_count(result.anomalies)} against the {result.schema_source} "
        f"schema"
        + (f" (`{result.schema_uri}`)." if result.schema_uri else " (inferred from the train split)."),
        "",
    ]
    if result.anomalies:
        lines += ["| split:feature | anomaly |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(result.anomalies.items())]
        lines.append("")
    lines += ["## Feature roles", "", _ROLES_NOTE, ""]
    lines += ["| feature | role | model input | evidence |", "|---|---|---|---|"]
    lines += [f"| {name} | {cells[0]} | {cells[1]} | {cells[2]} |" for name, *cells in _role_rows(result)]
    lines += ["", "## Drift against the baseline", ""]
    if result.drift_note:
        lines += [result.drift_note, ""]
    else:
        lines += [
            f"This run's train split against {result.metadata.get('drift_baseline')}'s training data.",
            "",
        ]
        lines += _comparison_table(result.drift)
    lines += ["## Skew between the train and eval splits", ""]
    lines += _comparison_table(result.skew, verdict_word="SKEWED")
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


def _feature_stats(statistics) -> dict[str, Any]:
    """Feature name -> its FeatureNameStatistics in the first dataset of a statistics list."""
    if statistics is None or not statistics.datasets:
        return {}
    return {(f.path.step[0] if f.path.step else f.name): f for f in statistics.datasets[0].features}


def _standard_buckets(feature) -> list[tuple[float, float, float]]:
    """The equal-width histogram TFDV computes for a numeric feature: (low, high, count)."""
    for histogram in feature.num_stats.histograms:
        if histogram.type == histogram.STANDARD:
            return [(b.low_value, b.high_value, b.sample_count) for b in histogram.buckets]
    return []


def _top_values(feature, limit: int = 10) -> dict[str, float]:
    """A categorical feature's most frequent values -> share of its non-missing rows."""
    stats = feature.string_stats
    rows = stats.common_stats.num_non_missing or 1
    return {v.value: v.frequency / rows for v in stats.top_values[:limit]}


def report_html(protos: dict[str, Any], result: ValidationResult) -> str:
    """One self-contained HTML page (KFP's HTML artifact): verdict, anomalies, drift and skew
    distances against their thresholds, and each feature's distribution in the train split, the
    eval split and the baseline's training data."""
    from kfkit.html_report import Page

    page = Page("Data validation")
    verdict = "blessed" if result.blessed else "NOT blessed"
    where = f" ({result.schema_uri})" if result.schema_uri else " (inferred from the train split)"
    page.paragraph(
        f"{verdict}: {_count(result.anomalies)} against the {result.schema_source} schema{where}.",
        "verdict-ok" if result.blessed else "verdict-bad",
    )
    if result.anomalies:
        page.heading("Anomalies")
        rows = sorted(result.anomalies.items())
        page.table(["split:feature", "anomaly"], rows, [True] * len(rows))

    page.heading("Feature roles")
    page.paragraph(_ROLES_NOTE)
    rows = _role_rows(result)
    page.table(["feature", "role", "model input", "evidence"], rows, [r[2] == "no" for r in rows])

    page.heading("Drift against the baseline")
    if result.drift_note:
        page.paragraph(result.drift_note)
    else:
        page.paragraph(
            f"This run's train split against {result.metadata.get('drift_baseline')}'s training data; "
            "dashed: the threshold; red: beyond it."
        )
        _distance_chart(page, result.drift, "drift")
    page.heading("Skew between the train and eval splits")
    page.paragraph("Dashed: the threshold; red: beyond it.")
    _distance_chart(page, result.skew, "skew")

    splits = {name: _feature_stats(s) for name, s in protos["statistics"].items()}
    baseline_label = f"{result.metadata.get('drift_baseline') or 'baseline'} train"
    if protos.get("baseline_statistics") is not None:
        splits[baseline_label] = _feature_stats(protos["baseline_statistics"])
    sizes = ", ".join(
        f"{name} {s.datasets[0].num_examples} rows"
        for name, s in [*protos["statistics"].items(), (baseline_label, protos.get("baseline_statistics"))]
        if s is not None and s.datasets
    )
    page.heading("Features")
    page.paragraph(f"Distributions as shares of each split's rows ({sizes}).")
    page.legend(list(splits))
    for feature in [f.name for f in protos["schema"].feature] + sorted(
        set(splits["train"]) - {f.name for f in protos["schema"].feature}
    ):
        found = {k: v for k, v in sorted(result.anomalies.items()) if k.split(":", 1)[1] == feature}
        page.open_section("feature anomaly" if found else "feature", f"feature-{feature}")
        page.heading(feature, 3)
        page.items([f"{k}: {v}" for k, v in found.items()], "anomalies")
        present = {name: stats[feature] for name, stats in splits.items() if feature in stats}
        rows = []
        if any(f.HasField("num_stats") for f in present.values()):
            page.histograms(
                [(name, _standard_buckets(f)) for name, f in present.items() if f.HasField("num_stats")],
                css="numeric",
            )
            for name, f in present.items():
                num = f.num_stats
                rows.append([name, num.common_stats.num_missing, num.mean, num.std_dev, num.min, num.max])
            page.table(["split", "missing", "mean", "std", "min", "max"], rows)
        elif any(f.HasField("string_stats") for f in present.values()):
            shares = {name: _top_values(f) for name, f in present.items() if f.HasField("string_stats")}
            order = list(dict.fromkeys(v for values in shares.values() for v in values))[:10]
            series = list(shares)
            page.bars(
                [(value, {name: shares[name].get(value, 0.0) for name in series}) for value in order],
                series,
                css="categorical",
            )
            for name, f in present.items():
                text = f.string_stats
                rows.append([name, text.common_stats.num_missing, text.unique])
            page.table(["split", "missing", "unique values"], rows)
        page.close_section()
    return page.render()


_ROLES_NOTE = (
    "Identifiers and free text are left out of the model unless named in keep_features; dates "
    "become days since 1970-01-01. Recorded in the schema as kfkit:<role> annotations."
)


def _role_rows(result: ValidationResult) -> list[list[str]]:
    return [
        [name, role.role.replace("_", " "), "no" if role.excluded else "yes", role.evidence]
        for name, role in result.roles.items()
    ]


def _distance_chart(page, checks: list[Comparison], mode: str) -> None:
    measured = [c for c in checks if c.distance is not None]
    if measured:
        page.bars(
            [(c.feature, {"distance": c.distance}) for c in measured],
            ["distance"],
            marks={c.feature: c.threshold for c in measured},
            over=[c.feature for c in measured if c.flagged],
            css=mode,
        )
    rows = [
        [
            c.feature,
            COMPARATOR_NAMES[c.comparator],
            "" if c.distance is None else f"{c.distance:.4f}",
            "off" if c.threshold is None else f"{c.threshold:g}",
            c.verdict,
        ]
        for c in checks
    ]
    page.table(
        ["feature", "comparator", "distance", "threshold", "verdict"], rows, [c.flagged for c in checks]
    )


def _comparison_table(checks: list[Comparison], verdict_word: str = "DRIFTED") -> list[str]:
    lines = ["| feature | comparator | distance | threshold | verdict |", "|---|---|---|---|---|"]
    for check in checks:
        distance = "" if check.distance is None else f"{check.distance:.4f}"
        threshold = "off" if check.threshold is None else f"{check.threshold:g}"
        verdict = verdict_word if check.verdict == "DRIFTED" else check.verdict
        name = COMPARATOR_NAMES[check.comparator]
        lines.append(f"| {check.feature} | {name} | {distance} | {threshold} | {verdict} |")
    return [*lines, ""]


def check(params: dict[str, Any]) -> None:
    """The parameters alone, before any task runs (the features are known only at run time:
    threshold values are checked here, their feature names when the schema is known)."""
    if "policy" in params:
        check_choice("validate", "policy", params["policy"], names.VALIDATION_POLICIES)
    if "keep_features" in params:
        feature_roles.check_keep_features(params["keep_features"])
    if "beam_options" in params:
        check_beam_options(params["beam_options"])
    if params.get("problem_type"):
        check_choice("validate", "problem_type", params["problem_type"], names.PROBLEM_TYPES)
    for parameter in ("drift_thresholds", "skew_thresholds"):
        value = params.get(parameter)
        if value is not None and not isinstance(value, dict):
            raise KfkitError(
                f"The '{parameter}' parameter of validate must be a mapping. Got {value!r} instead."
            )
        if value:
            check_thresholds("validate", parameter, value, list(value))


def check_schema_identity(schema_uri: str, expected: str) -> None:
    """KFP cached (or not) this task under the schema identity resolve_source saw: a schema
    edited since would be validated against under the wrong key."""
    if not schema_uri or not expected:
        return
    from kfkit.components.resolve_source.executor import schema_identity

    now = schema_identity(schema_uri)
    if now != expected:
        raise KfkitError(
            f"{schema_uri}: the schema changed between resolve_source and validate (content identity "
            f"{expected[:19]} then {now[:19]}); run the pipeline again"
        )


def run(task: Task) -> None:
    train_split, eval_split = task.inputs["train_split"], task.inputs["eval_split"]
    baseline, p = task.inputs["baseline"], task.params
    check_schema_identity(p["schema_uri"], p.get("schema_identity") or "")
    baseline_schema = Path(baseline.path) / "schema.pbtxt"
    found = bool(baseline.metadata.get("found")) and baseline_schema.is_file()
    baseline_statistics = Path(baseline.path) / names.TRAIN_STATISTICS_FILE
    baseline_name = (
        f"{baseline.metadata.get('model_name', 'the model')} version {baseline.metadata.get('version', '?')}"
    )
    if not baseline.metadata.get("found"):
        drift_note = "First run of this model: no baseline, nothing to compare with."
    elif not baseline_statistics.is_file():
        drift_note = (
            f"{baseline_name} has no training statistics ({names.TRAIN_STATISTICS_FILE}; pushed before "
            "kfkit kept them, or trained without the statistics input): drift not checked."
        )
    else:
        drift_note = ""
    label_column = train_split.metadata["label_column"]
    # Data without its label (a batch to score): the label the baseline's schema expects.
    absent_label = "" if label_column or not found else str(baseline.metadata.get("label_column") or "")
    result, protos = validate(
        train_split.path,
        eval_split.path,
        label_column=label_column,
        policy=p["policy"],
        schema_uri=p["schema_uri"],
        baseline_schema=str(baseline_schema) if found else None,
        baseline_uri=f"{baseline.metadata.get('uri', baseline.uri).rstrip('/')}/schema.pbtxt",
        baseline_statistics=None if drift_note else str(baseline_statistics),
        baseline_name=baseline_name,
        drift_note=drift_note,
        drift_thresholds=p["drift_thresholds"],
        skew_thresholds=p["skew_thresholds"],
        keep_features=p["keep_features"],
        problem_type=p["problem_type"],
        beam_options=p["beam_options"],
        absent_label=absent_label,
    )
    out = task.outputs
    write_outputs(protos, result, out["statistics"].path, out["schema"].path, out["anomalies"].path)
    Path(out["report"].path).write_text(report_markdown(protos, result))
    Path(out["html"].path).parent.mkdir(parents=True, exist_ok=True)
    Path(out["html"].path).write_text(report_html(protos, result))
    fingerprint = train_split.metadata.get("dataset_fingerprint", "")
    for artifact in out.values():
        artifact.metadata.update(result.metadata)
        artifact.metadata["dataset_fingerprint"] = fingerprint
    if result.schema_source == "inferred":
        task.say(
            f"inferred the schema from the train split ({baseline.metadata.get('reason', 'no baseline')})"
        )
    if result.drift_note:
        task.say(result.drift_note)
    left_out = result.metadata["excluded_features"]
    if left_out:
        task.say(
            "left out of the model (keep_features keeps one): "
            + "; ".join(f"{name}: {why}" for name, why in left_out.items())
        )
    if result.blessed:
        drift = "" if result.drift_note else f", no drift from {baseline_name}"
        skew = ", no train/eval skew" if "eval" in protos["statistics"] else ""
        task.say(f"blessed: no anomalies against the {result.schema_source} schema{drift}{skew}")
    elif p["policy"] == "fail":
        raise KfkitError(
            f"data validation failed ({_count(result.anomalies)} against the "
            f"{result.schema_source} schema): {result.summary()}"
        )
    elif absent_label:
        task.say(f"NOT blessed (policy warn: reported, the batch is still scored): {result.summary()}")
    else:
        task.say(f"NOT blessed (policy warn, nothing will be trained or pushed): {result.summary()}")


def _count(anomalies: dict[str, str]) -> str:
    return f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'}"
