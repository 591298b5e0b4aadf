"""Signed models: a model folder whose ``model.joblib`` and the sha256 in ``kfkit-model.json``
were both rewritten (a pickle that runs a shell command when loaded) is refused by every reader
before a byte of the pickle is read, and so is an unsigned model or one signed by a key nobody
trusts. Real keys (Ed25519), real scikit-learn, the real store and seldon-core-microservice."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from pathlib import Path

import joblib
import pandas as pd
import pytest
from conftest import PENGUINS, REPO, run_pipeline
from sklearn.linear_model import LogisticRegression

from kfkit import signing
from kfkit.components.push.executor import push
from kfkit.errors import KfkitError
from kfkit.model_folder import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    Feature,
    ModelManifest,
    load_verified_model,
    save_model,
    sha256_file,
)
from kfkit.model_registry import download, download_companions, version_folder
from kfkit.serving.model import KfkitModel
from kfkit.serving.server import start_server


class RunsAShellCommand:
    """What an attacker plants: unpickling it runs a shell command (here: touch a marker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder of its own (so a key pair of its own), and no key configuration inherited."""
    for name in (signing.SIGNING_KEY_ENV, signing.TRUSTED_KEYS_DIR_ENV, signing.TRUSTED_KEYS_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KFKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _train(folder: Path) -> Path:
    frame = pd.read_csv(PENGUINS).dropna(subset=["bill_length_mm", "flipper_length_mm"])
    features = ["bill_length_mm", "flipper_length_mm"]
    model = LogisticRegression(max_iter=500).fit(frame[features], frame["species"])
    save_model(
        folder,
        model,
        model_name="penguins",
        problem_type="classification",
        label_column="species",
        features=[Feature(name, "numeric") for name in features],
        estimator="logistic_regression",
        classes=[str(c) for c in model.classes_],
    )
    return folder


@pytest.fixture
def model_dir(home: Path, tmp_path: Path) -> Path:
    return _train(tmp_path / "model")


def _plant(folder: Path, marker: Path) -> None:
    """Replace model.joblib with a live payload and rewrite the manifest's sha256 to match it:
    everything a sha256 check alone can see is consistent."""
    joblib.dump(RunsAShellCommand(marker), folder / MODEL_FILE)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["sha256"] = sha256_file(folder / MODEL_FILE)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _other_key(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(signing.private_pem(signing.new_private_key()))
    return path


def test_an_untouched_model_loads_and_its_keys_are_private(model_dir: Path, home: Path):
    model, manifest = load_verified_model(model_dir)
    assert manifest.model_name == "penguins" and hasattr(model, "predict_proba")
    document = json.loads((model_dir / SIGNATURE_FILE).read_text())
    key, key_id = signing.signing_key()
    assert document["key_id"] == key_id and document["algorithm"] == "Ed25519"
    keys = home / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / signing.LOCAL_PRIVATE_KEY).stat().st_mode) == 0o600
    assert (keys / "trusted" / f"{key_id}.pem").read_bytes() == signing.public_pem(key.public_key())
    loaded = KfkitModel(model_dir)
    loaded.load()
    assert loaded.manifest is not None and loaded.manifest.sha256 == manifest.sha256


def test_the_planted_payload_is_live(model_dir: Path, tmp_path: Path):
    """The control: unpickled without kfkit's checks, the planted file does run its command."""
    marker = tmp_path / "ran"
    _plant(model_dir, marker)
    joblib.load(model_dir / MODEL_FILE)
    assert marker.exists()


def test_rewritten_model_and_sha256_are_refused_before_unpickling(model_dir: Path, tmp_path: Path):
    marker = tmp_path / "ran"
    _plant(model_dir, marker)
    with pytest.raises(KfkitError) as error:
        load_verified_model(model_dir)
    assert str(error.value) == (
        f"{model_dir}: signature of key {signing.signing_key()[1]} does not match kfkit-model.json "
        "(changed after signing); refusing to load it"
    )
    model = KfkitModel(model_dir)
    with pytest.raises(KfkitError, match="does not match kfkit-model.json"):
        model.load()
    assert model.model is None
    assert not marker.exists()


@pytest.mark.slow
def test_model_server_refuses_the_planted_model_and_runs_nothing(model_dir: Path, tmp_path: Path):
    """`kfkit serve` serves through start_server: the real seldon-core-microservice, whose
    workers call KfkitModel.load."""
    marker = tmp_path / "ran"
    _plant(model_dir, marker)
    with pytest.raises(KfkitError) as error:
        start_server(model_dir, log_path=tmp_path / "server.log", timeout=60)
    message = str(error.value)
    assert "exited during start" in message and "does not match kfkit-model.json" in message, message
    assert not marker.exists()


def test_an_unsigned_model_is_refused(model_dir: Path, tmp_path: Path):
    marker = tmp_path / "ran"
    _plant(model_dir, marker)
    (model_dir / SIGNATURE_FILE).unlink()
    with pytest.raises(KfkitError) as error:
        load_verified_model(model_dir)
    assert str(error.value) == (f"{model_dir}: model is not signed (no kfkit-model.sig); refusing to load it")
    assert not marker.exists()


def test_a_model_signed_by_an_untrusted_key_is_refused(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The attacker signs the rewritten manifest with a key of their own: well-formed, but no
    reader trusts it."""
    marker = tmp_path / "ran"
    _plant(model_dir, marker)
    _, trusted_id = signing.signing_key()
    monkeypatch.setenv(signing.SIGNING_KEY_ENV, str(_other_key(tmp_path / "attacker" / "key.pem")))
    attacker_id = signing.sign_folder(model_dir)
    monkeypatch.delenv(signing.SIGNING_KEY_ENV)
    with pytest.raises(KfkitError) as error:
        load_verified_model(model_dir)
    assert f"signed by key {attacker_id}, which is not trusted" in str(error.value)
    assert trusted_id in str(error.value)  # names the keys it does trust
    with pytest.raises(KfkitError, match="which is not trusted"):
        KfkitModel(model_dir).load()
    assert not marker.exists()


def test_trusted_keys_from_a_folder_or_a_file(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A cluster's keys: the private key from KFKIT_SIGNING_KEY_FILE (a mounted Secret), public
    keys from KFKIT_TRUSTED_KEYS_DIR (a mounted ConfigMap, with its `..data` entries) or a file."""
    key_file = _other_key(tmp_path / "secret" / "signing-key.pem")
    monkeypatch.setenv(signing.SIGNING_KEY_ENV, str(key_file))
    folder = _train(tmp_path / "model")
    key, key_id = signing.signing_key()
    assert not (home / "keys" / signing.LOCAL_PRIVATE_KEY).exists()  # no local key was made
    with pytest.raises(KfkitError, match="which is not trusted"):
        load_verified_model(folder)  # the local trust does not include the cluster's key

    config_map = tmp_path / "trusted"
    (config_map / "..2026_12_01").mkdir(parents=True)
    (config_map / "..2026_12_01" / "model-signing.pem").write_bytes(signing.public_pem(key.public_key()))
    (config_map / "model-signing.pem").symlink_to(config_map / "..2026_12_01" / "model-signing.pem")
    monkeypatch.setenv(signing.TRUSTED_KEYS_DIR_ENV, str(config_map))
    assert load_verified_model(folder)[1].model_name == "penguins"

    monkeypatch.delenv(signing.TRUSTED_KEYS_DIR_ENV)
    bundle = tmp_path / "trusted.pem"
    other = signing.new_private_key().public_key()
    bundle.write_bytes(signing.public_pem(other) + signing.public_pem(key.public_key()))
    monkeypatch.setenv(signing.TRUSTED_KEYS_FILE_ENV, str(bundle))
    assert load_verified_model(folder)[1].model_name == "penguins"
    assert set(signing.trusted_keys().keys) == {key_id, signing.key_id(other)}


def test_a_rotated_local_key_still_trusts_older_models(model_dir: Path):
    _, old_id = signing.signing_key()
    new_id = signing.create_local_key()
    assert new_id != old_id and signing.signing_key()[1] == new_id
    assert load_verified_model(model_dir)[1].model_name == "penguins"  # signed with the old key
    newer = _train(model_dir.parent / "newer")
    assert json.loads((newer / SIGNATURE_FILE).read_text())["key_id"] == new_id


def test_pushed_versions_carry_the_signature_and_download_verifies_it(
    model_dir: Path, tmp_path: Path, objects, monkeypatch: pytest.MonkeyPatch
):
    model_name = "signed-pushes"
    manifest = ModelManifest.read(model_dir)
    manifest.model_name = model_name
    manifest.write(model_dir)
    signing.sign_folder(model_dir)
    version = push(str(model_dir), model_name, store=objects).version
    folder = version_folder(model_name, version)
    assert objects.get_bytes(folder.child(SIGNATURE_FILE)) == (model_dir / SIGNATURE_FILE).read_bytes()
    assert objects.get_bytes(folder.child(MANIFEST_FILE)) == (model_dir / MANIFEST_FILE).read_bytes()
    fetched = download(objects, model_name, version, tmp_path / "fetched")
    assert load_verified_model(fetched)[1].model_name == model_name

    # Rewrite the pushed version in the store: the payload and a manifest that matches it.
    marker = tmp_path / "ran"
    planted = tmp_path / "planted"
    shutil.copytree(model_dir, planted)
    _plant(planted, marker)
    objects.put_bytes(folder.child(MODEL_FILE), (planted / MODEL_FILE).read_bytes())
    objects.put_bytes(folder.child(MANIFEST_FILE), (planted / MANIFEST_FILE).read_bytes())
    for fetch in (download, download_companions):
        target = tmp_path / f"refused-{fetch.__name__}"
        with pytest.raises(KfkitError, match="does not match kfkit-model.json"):
            fetch(objects, model_name, version, target)
        assert not (target / MODEL_FILE).exists()  # nothing past the manifest was fetched
    assert not marker.exists()


def test_push_refuses_an_unsigned_model(model_dir: Path, objects):
    (model_dir / SIGNATURE_FILE).unlink()
    with pytest.raises(KfkitError, match="model is not signed; nothing pushed"):
        push(str(model_dir), "penguins", store=objects)


def _key_material(home: Path) -> dict[str, str]:
    """Every form in which the local key pair could leak: the PEM bodies and the raw keys."""
    from cryptography.hazmat.primitives import serialization

    key, _ = signing.signing_key()
    raw_private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    private_body = "".join(signing.private_pem(key).decode().splitlines()[1:-1])
    public_body = "".join(signing.public_pem(key.public_key()).decode().splitlines()[1:-1])
    return {
        "private PEM": private_body,
        "private key (base64)": base64.b64encode(raw_private).decode(),
        "private key (hex)": raw_private.hex(),
        "public PEM": public_body,
        "public key (hex)": raw_public.hex(),
    }


@pytest.mark.slow
def test_pipeline_signs_automatically_and_no_key_reaches_yaml_logs_or_lineage(
    store_env, objects, monkeypatch: pytest.MonkeyPatch
):
    """Two runs of the real pipeline: each model is signed with the local key, the second run's
    evaluate loads the first version as its baseline (verified), and no key material appears in
    the compiled pipeline, the run's log and records, its artifacts or the metadata store."""
    model_name = "penguins-signed"
    runs = []
    for seed in (42, 7):
        proc, document = run_pipeline(
            store_env, f"data_uri={PENGUINS}", f"model_name={model_name}", f"random_seed={seed}"
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert document["outcome"] == "pushed"
        runs.append(document)
    assert runs[1]["artifacts"]["evaluate.blessing"]["baseline_version"] == "1"
    assert runs[1]["artifacts"]["evaluate.blessing"]["baseline_metrics"]

    home = Path(store_env["KFKIT_HOME"])
    monkeypatch.setenv("KFKIT_HOME", str(home))
    for name in (signing.SIGNING_KEY_ENV, signing.TRUSTED_KEYS_DIR_ENV, signing.TRUSTED_KEYS_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    _, key_id = signing.signing_key()
    for document in runs:
        version = document["pushed"]["push"]["version"]
        signature = json.loads(objects.get_bytes(version_folder(model_name, version).child(SIGNATURE_FILE)))
        assert signature["key_id"] == key_id

    texts = {
        "compiled pipeline": (REPO / "pipelines" / "compiled" / "training.yaml").read_text(),
        "metadata store": (home / "metadata" / "mlmd.sqlite").read_bytes().decode("latin-1"),
    }
    for document in runs:
        texts[f"summary {document['run_id']}"] = json.dumps(document)
        texts[f"log {document['run_id']}"] = Path(document["log"]).read_text()
        for path in Path(document["run_root"]).rglob("*"):
            if path.is_file() and path.name != SIGNATURE_FILE:
                texts[str(path)] = path.read_bytes().decode("latin-1")
    assert len(texts) > 10
    for form, material in _key_material(home).items():
        for where, text in texts.items():
            assert material not in text, f"{form} in {where}"


def test_in_a_cluster_train_reads_the_secret_and_loaders_the_config_map():
    """The compiled pipeline mounts the signing Secret into train only and the trusted keys'
    ConfigMap into the tasks that load models, as files whose paths are the env variables; the
    model server push deploys mounts the same ConfigMap. Names and paths, no key."""
    import yaml

    from kfkit.deploy.seldon import seldon_deployment

    spec, platform = yaml.safe_load_all((REPO / "pipelines" / "compiled" / "training.yaml").read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    mounted_secrets = {label: e["secretAsVolume"] for label, e in executors.items() if "secretAsVolume" in e}
    assert {label: [v["secretName"] for v in vs] for label, vs in mounted_secrets.items()} == {
        "exec-train": [signing.SIGNING_KEY_SECRET]
    }
    trusting = {label for label, e in executors.items() if "configMapAsVolume" in e}
    assert trusting == {"exec-resolve-baseline", "exec-evaluate"}
    containers = spec["deploymentSpec"]["executors"]
    assert containers["exec-train"]["container"]["env"] == [
        {"name": signing.SIGNING_KEY_ENV, "value": "/etc/kfkit/model-signing/signing-key.pem"}
    ]
    for label in trusting:
        assert executors[label]["configMapAsVolume"][0]["mountPath"] == signing.TRUSTED_KEYS_MOUNT
        assert containers[label]["container"]["env"] == [
            {"name": signing.TRUSTED_KEYS_DIR_ENV, "value": signing.TRUSTED_KEYS_MOUNT}
        ]
    (predictor,) = seldon_deployment("penguins", "3", "s3://models/penguins/3")["spec"]["predictors"]
    pod = predictor["componentSpecs"][0]["spec"]
    assert {"name": "trusted-model-keys", "configMap": {"name": signing.TRUSTED_KEYS_CONFIG_MAP}} in pod[
        "volumes"
    ]
    (container,) = pod["containers"]
    assert {"name": signing.TRUSTED_KEYS_DIR_ENV, "value": signing.TRUSTED_KEYS_MOUNT} in container["env"]
    assert signing.TRUSTED_KEYS_MOUNT in [mount["mountPath"] for mount in container["volumeMounts"]]


def test_keys_cli_shows_ids_and_public_key_never_the_private_key(tmp_path: Path):
    from conftest import run_kfkit

    env = {k: v for k, v in os.environ.items() if not k.startswith("KFKIT_")}
    env["KFKIT_HOME"] = str(tmp_path / "home")
    shown = run_kfkit(["keys", "show", "--json"], env)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    private = (tmp_path / "home" / "keys" / signing.LOCAL_PRIVATE_KEY).read_text()
    body = "".join(private.splitlines()[1:-1])
    assert body not in shown.stdout + shown.stderr
    assert document["trusted"] == [document["signing_key_id"]]
    rotated = run_kfkit(["keys", "rotate", "--json"], env)
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["previous"] == document["signing_key_id"]
    after = json.loads(run_kfkit(["keys", "show", "--json"], env).stdout)
    assert set(after["trusted"]) == {document["signing_key_id"], after["signing_key_id"]}
    public = run_kfkit(["keys", "show", "--public"], env).stdout
    assert public.startswith("-----BEGIN PUBLIC KEY-----") and public == after["public_key"]
