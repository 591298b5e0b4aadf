"""Shared fixtures for tests/ and every components/<name>/tests/: a real SeaweedFS S3 server
for the session and the real `kfkit` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))  # the test helpers beside the tests

from mariadb_server import MariaDB  # noqa: E402

from kfkit.local_store import LocalObjectStore  # noqa: E402
from kfkit.storage import ObjectStore  # noqa: E402

REPO = Path(__file__).resolve().parent
# The suites test what tasks do, so they run them: no local run cache unless a test turns it on
# (tests/test_local_cache.py).
os.environ.setdefault("KFKIT_CACHE", "0")
KFKIT = str(Path(sys.executable).parent / "kfkit")
PENGUINS = REPO / "sdk" / "kfkit" / "data" / "penguins.csv"


@pytest.fixture(scope="session")
def kfkit_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kfkit-home")


@pytest.fixture(scope="session")
def local_store(kfkit_home):
    """The real local object store, started once for the session and always stopped."""
    store = LocalObjectStore(root=kfkit_home)
    state = store.start()
    try:
        yield state
    finally:
        store.stop()


@pytest.fixture(scope="session")
def store_env(local_store, kfkit_home) -> dict[str, str]:
    """Environment for a kfkit process that should use the session's store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFKIT_", "AWS_"))}
    env.update(local_store.config.to_env())
    env["KFKIT_HOME"] = str(kfkit_home)
    env["KFKIT_CACHE"] = os.environ["KFKIT_CACHE"]
    return env


@pytest.fixture(scope="session")
def objects(local_store) -> ObjectStore:
    return ObjectStore(local_store.config)


def run_kfkit(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([KFKIT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def run_pipeline(env: dict[str, str], *params: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`kfkit run-local --json` with the penguins config; returns the process and its JSON."""
    args = ["run-local", "--config", "configs/penguins.yaml", "--json"]
    for param in params:
        args += ["--param", param]
    proc = run_kfkit(args, env)
    document = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc, document


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one line a failure ends with; asserts there is no traceback."""
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("kfkit: error: "), proc.stderr[-2000:]
    return lines[-1]


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    """A real MariaDB on loopback for the session (installed with apt-get if missing)."""
    server = MariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    saved = os.environ.get("KFKIT_METADATA_MYSQL_PASSWORD")
    os.environ.update(server.env)
    try:
        yield server
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("KFKIT_METADATA_MYSQL_PASSWORD", None)


def make_artifact(kind, folder: Path, name: str, metadata: dict | None = None):
    """A kfp artifact as kfp's executor hands it to a component: a URI under ``folder``
    (its ``.path``) and metadata."""
    return kind(name=name, uri=str(folder / name), metadata=dict(metadata or {}))


def write_schema(frame, folder: Path) -> Path:
    """A schema.pbtxt as validate writes it (FLOAT for numbers, BYTES for text), without
    TensorFlow: for tests of the components downstream of validate."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    for column, dtype in frame.dtypes.items():
        feature = schema.feature.add(name=str(column))
        feature.type = schema_pb2.FLOAT if dtype.kind in "fi" else schema_pb2.BYTES
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schema.pbtxt").write_text(text_format.MessageToString(schema))
    return folder


def make_outputs(component, folder: Path) -> dict:
    """Every output artifact a kfp component declares, as its executor would hand them over:
    read from the component's signature, so a new output needs no change in the tests."""
    import typing

    from kfkit.runtime import signature

    hints = typing.get_type_hints(component.python_func, include_extras=True)
    kinds = {name: typing.get_args(hints[name])[0] for name in signature(component).outputs}
    return {name: make_artifact(kind, folder, name) for name, kind in kinds.items()}
