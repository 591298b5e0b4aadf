"""The majority_baseline component: its kfp declaration, with its logic in the body.

kfp runs a lightweight component's body alone (the function's source, nothing else from this
file or folder), and kfkit's image holds kfkit, not this folder: so the logic lives in the body
and calls only kfkit's library. See README.md, "Why the logic is in the body".
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def majority_baseline(
    model: Input[Model],
    eval_split: Input[Dataset],
    metrics: Output[Metrics],
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Compares a classifier with always predicting the eval split's majority class.

    Example:
        majority_baseline(model=train_task.outputs["model"],
                          eval_split=ingest_task.outputs["eval_split"])

    Outputs:
        metrics: baseline_accuracy, model_accuracy and lift (model_accuracy - baseline_accuracy).

    Args:
        model: The trained classifier (from train); skipped when train did not run.
        eval_split: The eval rows (from ingest); its metadata names the label column.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.errors import KfkitError
    from kfkit.model_folder import feature_frame, load_verified_model
    from kfkit.runtime import execute
    from kfkit.splits import read_split

    def run(task):
        split = task.inputs["eval_split"]
        frame = read_split(split.path)
        label = split.metadata.get("label_column", "")
        if label not in frame.columns:
            raise KfkitError(f"eval split: label column {label!r} not among {list(frame.columns)}")
        if frame.empty:
            raise KfkitError("eval split: no rows to compare on")
        fitted, manifest = load_verified_model(task.inputs["model"].path)
        if manifest.problem_type != "classification":
            raise KfkitError(f"majority_baseline needs a classifier; the model is {manifest.problem_type}")
        truth = frame[label].astype(str).to_numpy()
        counts = frame[label].astype(str).value_counts()
        majority = sorted(counts.index[counts == counts.max()])[0]  # ties: the first by name
        predicted = fitted.predict(feature_frame(frame, manifest.features, "eval split")).astype(str)
        values = {
            "baseline_accuracy": float((truth == majority).mean()),
            "model_accuracy": float((predicted == truth).mean()),
        }
        values["lift"] = values["model_accuracy"] - values["baseline_accuracy"]
        for name, value in values.items():
            task.outputs["metrics"].log_metric(name, round(value, 9))
        shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
        task.say(f"majority class {majority!r} of {len(truth)} rows; {shown}")

    execute(majority_baseline, locals(), run)
