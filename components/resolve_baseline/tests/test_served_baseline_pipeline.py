"""The whole pipeline, run locally three times: version 1 pushed and deployed, version 2 pushed
and deployed, `kfkit deploy rollback` back to version 1; the third run compares with version 1,
the version serving, not with version 2, the latest pushed, and its lineage and log say so."""

from __future__ import annotations

import json

import pytest
from conftest import PENGUINS, run_kfkit, run_pipeline

pytestmark = pytest.mark.slow


def test_after_a_rollback_the_next_run_compares_with_the_version_serving(store_env):
    model = "penguins-rolled-back"
    # Version 2: another regularisation, so another model; its log_loss may move, which is not
    # what this test is about.
    for run, hyperparameters in ((1, "{}"), (2, "{C: 2.0}")):
        proc, document = run_pipeline(
            store_env,
            f"data_uri={PENGUINS}",
            f"model_name={model}",
            f"hyperparameters={hyperparameters}",
            "tolerances={log_loss: 1}",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert document["pushed"]["push"]["version"] == str(run)
    second = document["artifacts"]["resolve-baseline.baseline"]
    assert (second["version"], second["baseline_source"]) == ("1", "served")  # 1 served, 1 latest

    proc = run_kfkit(["deploy", "rollback", "--model", model, "--target", "local", "--json"], store_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["serving_version"] == "1"

    proc, third = run_pipeline(store_env, f"data_uri={PENGUINS}", f"model_name={model}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    baseline = third["artifacts"]["resolve-baseline.baseline"]
    assert baseline["found"] and baseline["version"] == "1"
    assert baseline["baseline_source"] == "served"
    assert (
        baseline["baseline_source_reason"]
        == "deploy target 'local' serves version 1 (the latest pushed is 2)"
    )
    assert (
        "[resolve-baseline] compares with penguins-rolled-back version 1 (serving now: deploy target "
        "'local' serves version 1 (the latest pushed is 2))"
    ) in proc.stderr
    # evaluate compared the candidate with version 1's model.
    assert third["artifacts"]["evaluate.blessing"]["baseline_version"] == "1"
