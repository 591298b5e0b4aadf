"""`kfkit schema show|diff|freeze|reset` against the real store, and what reset does to the next
run's baseline (recorded on resolve_baseline's artifact, i.e. in lineage)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import PENGUINS, make_artifact, run_kfkit, write_schema
from kfp.dsl import Artifact

from kfkit.components import resolve_baseline
from kfkit.components.ingest.executor import ingest
from kfkit.components.push.executor import push
from kfkit.components.train.executor import train


def _push_version(tmp_path: Path, model_name: str, objects, frame: pd.DataFrame | None = None) -> str:
    split = ingest(str(PENGUINS), "species")
    train_frame = split.train if frame is None else frame
    schema = write_schema(train_frame, tmp_path / "schema")
    train(train_frame, str(schema / "schema.pbtxt"), "species", model_name, str(tmp_path / "model"))
    return push(str(tmp_path / "model"), model_name, store=objects).version


@pytest.fixture(scope="module")
def two_versions(objects, tmp_path_factory):
    model = "schema-cli"
    first = _push_version(tmp_path_factory.mktemp("v1"), model, objects)
    extra = ingest(str(PENGUINS), "species").train.assign(tag="x")  # a new column in version 2
    second = _push_version(tmp_path_factory.mktemp("v2"), model, objects, extra)
    return model, first, second


def _json(args: list[str], env: dict[str, str]) -> dict:
    proc = run_kfkit([*args, "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_show_is_the_latest_versions_schema(two_versions, store_env):
    model, first, second = two_versions
    shown = _json(["schema", "show", "--model", model], store_env)
    assert shown["version"] == second and "tag" in {f["feature"] for f in shown["features"]}
    older = _json(["schema", "show", "--model", model, "--version", first], store_env)
    features = {f["feature"]: f for f in older["features"]}
    assert "tag" not in features and features["bill_length_mm"]["type"] == "FLOAT"
    text = run_kfkit(["schema", "show", "--model", model], store_env)
    assert text.returncode == 0 and "bill_length_mm" in text.stdout and "FLOAT" in text.stdout


def test_diff_names_what_changed(two_versions, store_env):
    model, first, second = two_versions
    changes = _json(["schema", "diff", "--model", model, "--from", first, "--to", second], store_env)[
        "changes"
    ]
    assert {"feature": "tag", "change": "added", "type": "BYTES"} in changes
    same = run_kfkit(["schema", "diff", "--model", model, "--from", second], store_env)
    assert same.returncode == 0 and "no change" in same.stdout


def test_freeze_writes_a_reviewable_file_and_never_overwrites(two_versions, store_env, tmp_path):
    model, _, second = two_versions
    out = tmp_path / "schemas" / f"{model}.pbtxt"
    proc = run_kfkit(["schema", "freeze", "--model", model, "--out", str(out)], store_env)
    assert proc.returncode == 0 and f"schema_uri={out}" in proc.stdout
    assert out.read_text().startswith(f"# Frozen from s3://models/{model}/{second}/schema.pbtxt")
    again = run_kfkit(["schema", "freeze", "--model", model, "--out", str(out)], store_env)
    assert again.returncode == 1 and "exists; nothing written" in again.stderr


def test_reset_needs_yes_then_the_next_baseline_carries_no_schema(
    two_versions, store_env, tmp_path, monkeypatch
):
    model, _, second = two_versions
    refused = run_kfkit(["schema", "reset", "--model", model], store_env)
    assert refused.returncode == 1 and "add --yes" in refused.stderr
    record = _json(["schema", "reset", "--model", model, "--yes"], store_env)
    assert record["after_version"] == int(second)
    gone = run_kfkit(["schema", "show", "--model", model], store_env)
    assert gone.returncode == 1 and f"reset after version {second}" in gone.stderr
    for key in ("KFKIT_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, store_env[key])
    baseline = make_artifact(Artifact, tmp_path, "baseline")
    resolve_baseline.python_func(model_name=model, baseline=baseline, task_name="resolve-baseline")
    assert (
        baseline.metadata["found"] is True and baseline.metadata["version"] == second
    )  # the model still counts
    assert f"reset after version {second}" in baseline.metadata["schema_reset"]
    assert not (Path(baseline.path) / "schema.pbtxt").exists()
    assert not (Path(baseline.path) / "train_statistics.pb").exists()


def test_a_model_never_pushed_has_no_reference(store_env):
    proc = run_kfkit(["schema", "show", "--model", "never-pushed-schema"], store_env)
    assert proc.returncode == 1 and "has no reference schema: no pushed version" in proc.stderr
