"""resolve_source against the real object store and local files: an identity that changes
exactly when the content ingest reads (or the registry resolve_baseline reads) changes, and
ingest refusing data that changed after it was resolved."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import PENGUINS

from kfkit.components import resolve_source as component
from kfkit.components.ingest.executor import ingest
from kfkit.components.resolve_source.executor import (
    IDENTITIES,
    NO_REGISTRY,
    NO_SCHEMA,
    baseline_identity,
    registry_identity,
    resolve,
    schema_identity,
)
from kfkit.errors import KfkitError
from kfkit.model_registry import version_folder


@pytest.fixture()
def store_environment(store_env, monkeypatch):
    for key, value in store_env.items():
        if key.startswith(("KFKIT_S3", "AWS_")):
            monkeypatch.setenv(key, value)


def _prefix(objects) -> str:
    objects.ensure_bucket("raw")
    return f"s3://raw/resolve-source-{uuid.uuid4().hex[:8]}/"


def test_a_prefix_keeps_its_identity_until_an_object_ingest_reads_changes(objects):
    prefix = _prefix(objects)
    data = PENGUINS.read_bytes()
    objects.put_bytes(prefix + "a.csv", data)
    first = resolve(prefix, store=objects)["source_identity"]
    assert first.startswith("sha256:") and resolve(prefix, store=objects)["source_identity"] == first
    objects.put_bytes(prefix + "notes.txt", b"not read by ingest")
    assert resolve(prefix, store=objects)["source_identity"] == first
    objects.put_bytes(prefix + "a.csv", data.replace(b"Adelie", b"adelie", 1))
    changed = resolve(prefix, store=objects)["source_identity"]
    assert changed != first
    objects.put_bytes(prefix + "b.csv", data)
    assert resolve(prefix, store=objects)["source_identity"] not in (first, changed)


def test_a_local_file_is_known_by_its_bytes(tmp_path):
    data = tmp_path / "penguins.csv"
    data.write_bytes(PENGUINS.read_bytes())
    first = resolve(str(data))
    assert first["source_files"] == 1 and first["baseline_identity"] == NO_REGISTRY
    data.write_bytes(PENGUINS.read_bytes())  # rewritten, same bytes: same identity
    assert resolve(str(data))["source_identity"] == first["source_identity"]
    data.write_bytes(PENGUINS.read_bytes() + b"\n")
    assert resolve(str(data))["source_identity"] != first["source_identity"]


def test_ingest_records_the_identity_and_refuses_data_that_changed_since(tmp_path):
    data = tmp_path / "penguins.csv"
    data.write_bytes(PENGUINS.read_bytes())
    resolved = resolve(str(data))["source_identity"]
    result = ingest(str(data), "species", expected_identity=resolved)
    assert result.metadata["source_identity"] == resolved
    data.write_bytes(PENGUINS.read_bytes().replace(b"Adelie", b"adelie", 1))
    with pytest.raises(KfkitError, match="the data changed between resolve_source and ingest"):
        ingest(str(data), "species", expected_identity=resolved)


def test_the_registry_identity_follows_pushes_and_resets(objects):
    model = f"resolve-source-{uuid.uuid4().hex[:8]}"
    objects.ensure_bucket("models")
    assert registry_identity(model, objects) == NO_REGISTRY
    objects.put_bytes(version_folder(model, 1).child("kfkit-model.json"), b"{}")
    pushed = registry_identity(model, objects)
    assert pushed.startswith("sha256:") and registry_identity(model, objects) == pushed
    objects.put_bytes(f"s3://models/{model}/kfkit-schema-reset.json", b"{}")
    assert registry_identity(model, objects) != pushed
    # Another model's pushes are not this model's.
    assert registry_identity(model + "-other", objects) == NO_REGISTRY


def test_the_component_writes_its_identities_as_output_parameters(
    objects, tmp_path, store_environment, capsys
):
    prefix = _prefix(objects)
    objects.put_bytes(prefix + "penguins.csv", PENGUINS.read_bytes())
    outputs = {name: str(tmp_path / "outputs" / name) for name in IDENTITIES}
    component.python_func(source_uri=prefix, model_name="never-pushed", task_name="resolve-source", **outputs)
    written = {name: Path(path).read_text() for name, path in outputs.items()}
    assert written == {
        "source_identity": resolve(prefix, store=objects)["source_identity"],
        "baseline_identity": NO_REGISTRY,
        "schema_identity": NO_SCHEMA,
    }
    assert f"1 file(s) at {prefix}" in capsys.readouterr().out


def test_a_curated_schema_is_known_by_its_content_and_validate_refuses_an_edit(objects, tmp_path):
    """Local file or object: the same bytes keep the identity, an edit in place changes it, and
    validate refuses a schema edited after resolve_source looked (it would be cached wrongly)."""
    from kfkit.components.validate.executor import check_schema_identity

    local = tmp_path / "schema.pbtxt"
    local.write_text('feature { name: "species" type: BYTES }\n')
    objects.ensure_bucket("schemas")
    remote = f"s3://schemas/{uuid.uuid4().hex[:8]}/schema.pbtxt"
    objects.put_bytes(remote, local.read_bytes())
    for uri, rewrite in (
        (str(local), local.write_text),
        (remote, lambda text: objects.put_bytes(remote, text.encode())),
    ):
        first = schema_identity(uri, objects)
        assert first.startswith("sha256:") and schema_identity(uri, objects) == first
        rewrite('feature { name: "species" type: BYTES }\n')  # same bytes again
        assert schema_identity(uri, objects) == first
        rewrite('feature { name: "island" type: BYTES }\n')
        assert schema_identity(uri, objects) != first
        if uri == str(local):
            with pytest.raises(KfkitError, match="the schema changed between resolve_source and validate"):
                check_schema_identity(uri, first)
            check_schema_identity(uri, schema_identity(uri))  # unchanged: accepted
    assert schema_identity("") == NO_SCHEMA
    with pytest.raises(KfkitError, match="curated schema not found"):
        schema_identity(str(tmp_path / "missing.pbtxt"))


def test_a_missing_source_is_one_line(tmp_path):
    with pytest.raises(KfkitError, match="no such file or folder"):
        resolve(str(tmp_path / "missing.csv"))


def test_an_objects_identity_is_its_etag_not_its_version_id():
    """A versioned bucket gives identical bytes uploaded again a new version id: same data,
    same identity (else every re-upload would rerun the pipeline from ingest)."""
    from kfkit.components.ingest.executor import SourceFile, source_identity

    first = SourceFile("s3://raw/p.csv", b"", "etag-1", "version-1", is_object=True)
    again = SourceFile("s3://raw/p.csv", b"", "etag-1", "version-2", is_object=True)
    changed = SourceFile("s3://raw/p.csv", b"", "etag-2", "version-3", is_object=True)
    assert source_identity([first]) == source_identity([again]) != source_identity([changed])


def test_the_baseline_identity_follows_the_version_serving(objects, tmp_path, monkeypatch):
    """A rollback changes resolve_baseline's answer with no change in the registry: the
    identity asks the deploy target as resolve_baseline does (here the local record)."""
    from kfkit import deploy
    from kfkit.deploy.local import LocalTarget
    from kfkit.deploy.request import DeploymentRequest

    monkeypatch.setenv("KFKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    model = f"resolve-served-{uuid.uuid4().hex[:8]}"
    objects.ensure_bucket("models")
    for version in ("1", "2"):
        objects.put_bytes(version_folder(model, version).child("kfkit-model.json"), b"{}")

    def identity() -> str:
        return baseline_identity(model, objects, "auto")

    nothing_served = identity()
    assert nothing_served == baseline_identity(model, objects, None)  # nobody to ask, nothing served
    for version in ("1", "2"):
        request = DeploymentRequest(model, version, f"s3://models/{model}/{version}", "0" * 64)
        deploy.deploy(request, "auto", timeout=1)
        if version == "1":
            serving_one = identity()
    serving_two = identity()
    assert len({nothing_served, serving_one, serving_two}) == 3
    LocalTarget.from_context(deploy.target.TargetContext()).rollback(model)
    assert identity() == serving_one
