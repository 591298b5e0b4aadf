"""Example: kfkit's components plus one component of this folder's own, in one pipeline.

ingest -> validate (against the model's baseline) -> train twice (logistic regression, random
forest) -> evaluate each -> majority_baseline for each: how much each model beats always
predicting the majority class.

Run it (from the repository's root)::

    kfkit run-local --pipeline pipelines/examples/majority_baseline/pipeline.py \\
        --param data_uri=sdk/kfkit/data/penguins.csv --param model_name=penguins-baseline
"""

import importlib.util
from pathlib import Path

from kfp import dsl

from kfkit.components import evaluate, ingest, resolve_baseline, train, validate
from kfkit.platform import use_object_store


def _component(name: str):
    """The component declared in ``components/<name>/component.py`` beside this file. By file:
    this folder is not a package, and ``kfkit run-local --pipeline`` imports this file by path."""
    path = Path(__file__).resolve().parent / "components" / name / "component.py"
    spec = importlib.util.spec_from_file_location(f"{name}_component", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


majority_baseline = _component("majority_baseline")


@dsl.pipeline(
    name="kfkit-majority-baseline-example",
    description="Two models, each evaluated and compared with a majority-class baseline.",
)
def majority_baseline_example(
    data_uri: str,
    model_name: str,
    label_column: str = "species",
    thresholds: dict = {"accuracy": 0.9},  # noqa: B006 - kfp pipeline defaults are values, not objects
):
    ingest_task = use_object_store(ingest(source_uri=data_uri, label_column=label_column))
    eval_split = ingest_task.outputs["eval_split"]
    baseline = use_object_store(resolve_baseline(model_name=model_name)).outputs["baseline"]
    validate_task = validate(
        train_split=ingest_task.outputs["train_split"], eval_split=eval_split, baseline=baseline
    )
    for estimator in ("logistic_regression", "random_forest"):
        model = train(
            train_split=ingest_task.outputs["train_split"],
            schema=validate_task.outputs["schema"],
            anomalies=validate_task.outputs["anomalies"],
            statistics=validate_task.outputs["statistics"],
            model_name=model_name,
            estimator=estimator,
            run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        ).outputs["model"]
        evaluate(
            model=model,
            eval_split=eval_split,
            train_split=ingest_task.outputs["train_split"],
            baseline=baseline,
            thresholds=thresholds,
        )
        majority_baseline(model=model, eval_split=eval_split)
