"""Executors: what each kfp component runs, between kfp's artifacts and kfkit's step logic.

``components/<name>/component.py`` declares inputs, outputs and parameters and calls one
function here (TFX's component/executor split). Artifacts are used only through ``.path``
and ``.metadata``, so these functions run the same in a cluster, under ``kfp.local`` and in
tests. Gating lives here, reading the upstream blessing, so the identical pipeline runs
locally (kfp.local refuses ``dsl.If``) and in a cluster.

Heavy imports stay inside the functions: ingest, train, evaluate and push never import
TensorFlow; only :func:`run_validate` does.
"""

from __future__ import annotations

from typing import Any

from kfkit import names
from kfkit.steps.runtime import task_errors


def _say(task: str, message: str) -> None:
    print(f"kfkit {task}: {message}", flush=True)


def run_ingest(
    source_uri: str,
    label_column: str,
    train_split: Any,
    eval_split: Any,
    eval_fraction: float,
    split_key: str,
) -> None:
    from kfkit.steps import ingest

    with task_errors(names.INGEST):
        result = ingest.ingest(source_uri, label_column, eval_fraction, split_key)
        ingest.write_split(result.train, train_split.path)
        ingest.write_split(result.eval, eval_split.path)
        for artifact, split, frame in (
            (train_split, "train", result.train),
            (eval_split, "eval", result.eval),
        ):
            artifact.metadata.update(result.metadata)
            artifact.metadata.update({"split": split, "split_rows": len(frame)})
        m = result.metadata
        _say(
            names.INGEST,
            f"{m['rows']} rows x {m['columns']} columns from {source_uri} "
            f"-> train {m['train_rows']}, eval {m['eval_rows']}; "
            f"fingerprint {m['dataset_fingerprint'][:12]}",
        )


def run_validate(
    train_split: Any,
    eval_split: Any,
    model_name: str,
    policy: str,
    schema_uri: str,
    statistics: Any,
    schema: Any,
    anomalies: Any,
    report: Any,
) -> None:
    from pathlib import Path

    from kfkit.errors import KfkitError
    from kfkit.steps import validate
    from kfkit.steps.ingest import read_split

    with task_errors(names.VALIDATE):
        label_column = train_split.metadata["label_column"]
        result, protos = validate.validate(
            read_split(train_split.path),
            read_split(eval_split.path),
            label_column=label_column,
            model_name=model_name,
            policy=policy,
            schema_uri=schema_uri,
        )
        validate.write_outputs(protos, result, statistics.path, schema.path, anomalies.path)
        Path(report.path).write_text(validate.report_markdown(protos, result))
        fingerprint = train_split.metadata.get("dataset_fingerprint", "")
        for artifact in (statistics, schema, anomalies, report):
            artifact.metadata.update(result.metadata)
            artifact.metadata["dataset_fingerprint"] = fingerprint
        if result.blessed and result.schema_source == "inferred":
            validate.keep_reference_schema(protos["schema"], model_name)
            _say(names.VALIDATE, f"learned the reference schema {result.schema_uri}")
        if result.blessed:
            _say(names.VALIDATE, f"blessed: no anomalies against the {result.schema_source} schema")
        elif policy == "fail":
            raise KfkitError(
                f"data validation failed ({len(result.anomalies)} anomalies against the "
                f"{result.schema_source} schema): {result.summary()}"
            )
        else:
            _say(
                names.VALIDATE,
                f"NOT blessed (policy warn, nothing will be trained or pushed): {result.summary()}",
            )


def run_train(
    train_split: Any,
    schema: Any,
    anomalies: Any,
    model_name: str,
    problem_type: str,
    estimator: str,
    hyperparameters: dict | None,
    random_seed: int,
    run_id: str,
    model: Any,
) -> None:
    from kfkit.steps import push, train
    from kfkit.steps.ingest import read_split

    with task_errors(names.TRAIN):
        if not anomalies.metadata.get("blessed", False):
            reason = "data validation did not bless the data: " + str(anomalies.metadata.get("anomalies", {}))
            push.write_skipped(model.path, reason)
            model.metadata.update({"trained": False, "reason": reason})
            _say(names.TRAIN, f"not trained: {reason}")
            return
        manifest = train.train(
            read_split(train_split.path),
            schema_path=f"{schema.path}/schema.pbtxt",
            label_column=train_split.metadata["label_column"],
            model_name=model_name,
            model_dir=model.path,
            problem_type=problem_type,
            estimator=estimator,
            hyperparameters=hyperparameters or {},
            seed=random_seed,
            dataset_fingerprint=train_split.metadata.get("dataset_fingerprint", ""),
            run_id=run_id,
        )
        model.metadata.update(train.manifest_metadata(manifest))
        _say(names.TRAIN, f"{estimator} on {len(manifest.features)} features, sha256 {manifest.sha256[:12]}")


def run_evaluate(
    model: Any,
    eval_split: Any,
    thresholds: dict | None,
    metrics: Any,
    classification_metrics: Any,
    blessing: Any,
) -> None:
    from pathlib import Path

    from kfkit.steps import evaluate, push
    from kfkit.steps.ingest import read_split

    with task_errors(names.EVALUATE):
        if not model.metadata.get("trained", False):
            reason = "no model: " + model.metadata.get("reason", "train did not run")
            blessing.metadata.update({"blessed": False, "reason": reason})
            for artifact in (blessing, metrics, classification_metrics):
                push.write_skipped(artifact.path, reason)
            _say(names.EVALUATE, f"not evaluated: {reason}")
            return
        result = evaluate.evaluate(model.path, read_split(eval_split.path), dict(thresholds or {}))
        for name, value in result.metrics.items():
            metrics.log_metric(name, value)
        if result.classes:
            classification_metrics.log_confusion_matrix(result.classes, result.confusion_matrix)
        else:
            push.write_skipped(classification_metrics.path, "regression: no confusion matrix")
        reason = evaluate.blessing_reason(result)
        blessing.metadata.update(
            {
                "blessed": result.blessed,
                "reason": reason,
                "checks": result.checks,
                "metrics": result.metrics,
                "model_sha256": model.metadata.get("sha256", ""),
                "dataset_fingerprint": model.metadata.get("training_data_fingerprint", ""),
            }
        )
        Path(blessing.path).parent.mkdir(parents=True, exist_ok=True)
        Path(blessing.path).write_text(("BLESSED" if result.blessed else "NOT_BLESSED") + "\n")
        shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
        _say(names.EVALUATE, f"{shown}; {'blessed' if result.blessed else 'NOT blessed'}: {reason}")


def run_push(
    model: Any,
    blessing: Any,
    model_name: str,
    serving_namespace: str,
    pushed_model: Any,
    seldon_deployment: Any,
    deploy_strategy: str = "local",
    canary_traffic: int = 10,
    deploy_timeout: int = 600,
) -> None:
    from kfkit.steps import push

    with task_errors(names.PUSH):
        push.check_deploy_strategy(deploy_strategy)
        if not blessing.metadata.get("blessed", False):
            reason = "model not blessed: " + blessing.metadata.get("reason", "no blessing")
            for artifact in (pushed_model, seldon_deployment):
                push.write_skipped(artifact.path, reason)
            pushed_model.metadata.update({"pushed": False, "reason": reason})
            _say(names.PUSH, f"not pushed: {reason}")
            return
        result = push.push(model.path, model_name, namespace=serving_namespace)
        record = {
            "pushed": True,
            "model_name": model_name,
            "version": result.version,
            "pushed_uri": result.uri,
            "sha256": result.sha256,
            "dataset_fingerprint": model.metadata.get("training_data_fingerprint", ""),
        }
        push.write_record(pushed_model.path, record)  # the model itself lives at the URI
        pushed_model.metadata.update(record)
        push.write_deployment(result.deployment, seldon_deployment.path)
        seldon_deployment.metadata.update(
            {"model_name": model_name, "version": result.version, "namespace": serving_namespace}
        )
        _say(names.PUSH, f"pushed {model_name} version {result.version} to {result.uri}")
        deployed = push.deploy(
            result,
            model_name,
            deploy_strategy,
            namespace=serving_namespace,
            canary_traffic=canary_traffic,
            timeout=deploy_timeout,
            progress=lambda line: _say(names.PUSH, line),
        )
        pushed_model.metadata.update(deployed)
