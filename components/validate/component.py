"""The validate component: its kfp declaration. The logic is ``executor.run``."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Output

from kfkit.images import VALIDATE_IMAGE


@dsl.component(base_image=VALIDATE_IMAGE, install_kfp_package=False)
def validate(
    train_split: Input[Dataset],
    eval_split: Input[Dataset],
    baseline: Input[Artifact],
    statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    report: Output[Markdown],
    html: Output[HTML],
    policy: str = "fail",
    schema_uri: str = "",
    schema_identity: str = "",
    drift_thresholds: Optional[dict] = None,
    skew_thresholds: Optional[dict] = None,
    keep_features: Optional[list] = None,
    problem_type: str = "",
    beam_options: Optional[list] = None,
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Checks both splits against a schema with TensorFlow Data Validation: a curated one, else
    the baseline's, else one inferred from the train split. Then drift (the train split against
    the baseline's training statistics) and train/eval skew with TFDV's comparators: L-infinity
    distance for categorical features, Jensen-Shannon divergence for numeric ones, each 0.2 by
    default. A feature beyond its threshold is an anomaly (`drift:<feature>`, `skew:<feature>`).
    Each feature gets a role, written into the schema as a `kfkit:<role>` annotation with its
    evidence: identifier and free text (left out of the model), date, numeric or categorical.

    Example:
        validate(train_split=..., eval_split=..., baseline=..., policy="fail")

    Outputs:
        statistics: TFDV statistics (train.pb, eval.pb).
        schema: The schema used (schema.pbtxt), each feature annotated with its role;
            metadata `feature_roles` (feature -> role) and `excluded_features` (feature -> why).
        anomalies: anomalies.pbtxt; metadata `blessed` is the gate train reads, `drift` and
            `skew` the measured distances.
        report: Markdown report rendered by the KFP UI.
        html: The same as one self-contained HTML page with inline SVG charts (no scripts, no
            network), rendered by the KFP UI: each feature's distribution in the train split,
            the eval split and the baseline's training data, anomalies highlighted, drift and
            skew distances against their thresholds.

    Args:
        train_split: The train rows (from ingest); its metadata names the label column. An
            empty label column means data to score: checked in TFDV's SERVING environment,
            where the baseline's label (its metadata `label_column`) is not expected.
        eval_split: The eval rows (from ingest); empty (ingest's no split): no skew check.
        baseline: What the data is compared with (from resolve_baseline): its
            schema.pbtxt, when its metadata says `found`, is the schema checked against, and its
            train_statistics.pb the training data drift is measured from.
        policy: "fail" ends the task on anomalies; "warn" continues unblessed.
        schema_uri: A curated schema (s3:// or local pbtxt) used instead of the baseline's.
        schema_identity: The curated schema's content identity from resolve_source: it puts the
            schema's content, not only its URI, into the cache key; a schema changed since is
            refused. Empty: not checked.
        drift_thresholds: Per-feature overrides of the drift threshold (default 0.2), e.g.
            {"income": 0.4}; 1 or more, or "off" (or null), turns a feature's check off. Unknown
            features are an error.
        skew_thresholds: Per-feature overrides of the train/eval skew threshold, the same way.
        keep_features: Features to use even though they look like identifiers (unique per row)
            or free text (many distinct, long values), which are otherwise left out of the
            model; e.g. ["customer_id"]. Each feature's role is recorded in the schema.
        problem_type: "classification" or "regression": checks that the label suits it (and,
            for classification, that no class appears only in the eval split); "" skips that.
        beam_options: Beam pipeline options; given, the statistics run as a Beam pipeline
            instead of in this process, e.g. ["--direct_running_mode=multi_processing",
            "--direct_num_workers=4"] or ["--runner=FlinkRunner", "--flink_master=host:8081"].
            Never credentials: they are refused, give them to the runner by its environment.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.validate.executor import run
    from kfkit.runtime import execute

    execute(validate, locals(), run)
