"""The bad-input corpus: every mistake a user can make with data files, parameters, model names,
data URIs, credentials, pipeline files and config files ends the same way. Exit code non-zero,
exactly one `kfkit: error:` line (the last on stderr), no traceback, the line names what was
wrong and where, no credential printed, and nothing pushed or deployed: the models bucket and the
local deployment record are the same after the case as before it.

Mistakes the pre-flight catches (parameters, names, pipeline and config files) must also leave no
run behind and print nothing but that one line. The others run the real pipeline against the
session's real object store until the task that refuses the input (warm start off: a failing
ingest does not need TFDV's fork server)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import KFKIT, PENGUINS, REPO

from kfkit.deploy.local import LocalTarget, record_path
from kfkit.deploy.request import DeploymentRequest
from kfkit.storage import ACCESS_KEY_ENV, ENDPOINT_ENV, SECRET_KEY_ENV

MODEL = "corpus"
CONFIG = str(REPO / "configs" / "penguins.yaml")


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # after `kfkit`; {data} is the folder of bad files, {tmp} the case's own
    expected: str  # in the error line
    preflight: bool = False  # refused before any task runs: no run recorded, one stderr line
    env: dict[str, str] = field(default_factory=dict)  # on top of the store's ({secret}: the real one)
    files: dict[str, str | None] = field(default_factory=dict)  # written into {tmp} (None: absent)
    cwd_tmp: bool = False  # run in {tmp} instead of the repository
    slow: bool = False  # runs validate (TFDV) and train before the refusal


def run_local(*params: str) -> tuple[str, ...]:
    args: tuple[str, ...] = ("run-local", "--config", CONFIG, "--param", f"model_name={MODEL}")
    for param in params:
        args += ("--param", param)
    return args


def preflight(param: str, expected: str) -> Case:
    return Case(f"param:{param}", run_local("data_uri=x.csv", param), expected, preflight=True)


def data(name: str, expected: str, *params: str) -> Case:
    return Case(
        f"data:{name}:{'+'.join(params)}".rstrip(":"),
        run_local(f"data_uri={{data}}/{name}", *params),
        expected,
    )


def pipeline_file(file: str, content: str | None, expected: str) -> Case:
    return Case(
        f"pipeline:{file}",
        ("run-local", "--pipeline", file, "--param", "no_such_parameter=1"),
        expected,
        preflight=True,
        files={file: content},
        cwd_tmp=True,
    )


def config_file(name: str, content: str, expected: str) -> Case:
    return Case(
        f"config:{name}",
        ("run-local", "--config", "{tmp}/run.yaml"),
        expected,
        preflight=True,
        files={"run.yaml": content},
    )


CASES = [
    # -- parameters: each refused by the pipeline's types or a component's check() ---------------
    preflight(
        "eval_fraction=abc", "The 'eval_fraction' parameter of the pipeline must be a number. Got 'abc'"
    ),
    preflight(
        "eval_fraction=1", "ingest: The 'eval_fraction' parameter of ingest must be a float in the range"
    ),
    preflight(
        "eval_fraction=-1", "ingest: The 'eval_fraction' parameter of ingest must be a float in the range"
    ),
    preflight("random_seed=abc", "The 'random_seed' parameter of the pipeline must be an integer"),
    preflight("random_seed=1.5", "The 'random_seed' parameter of the pipeline must be an integer"),
    preflight("estimator=svm", "train: The 'estimator' parameter of train must be one of"),
    preflight("problem_type=ranking", "validate: The 'problem_type' parameter of validate must be one of"),
    preflight(
        "hyperparameters={n_trees: 3}",
        "train: The 'hyperparameters' parameter of train has unknown key(s) ['n_trees']",
    ),
    preflight("hyperparameters=5", "The 'hyperparameters' parameter of the pipeline must be a mapping"),
    preflight("thresholds=0.9", "The 'thresholds' parameter of the pipeline must be a mapping"),
    preflight(
        "thresholds={accuracy: high}",
        "evaluate: The 'thresholds' parameter of evaluate must map metrics to numbers",
    ),
    preflight(
        "thresholds={acc: 0.9}",
        "evaluate: The 'thresholds' parameter of evaluate has unknown metric(s) ['acc']",
    ),
    preflight(
        "tolerances={accuracy: lots}",
        "evaluate: The 'tolerances' parameter of evaluate must map metrics to numbers",
    ),
    preflight("trivial_margin=2", "evaluate: The 'trivial_margin' parameter of evaluate must be in [0, 1)"),
    preflight(
        "validation_policy=maybe",
        "validate: The 'policy' parameter of validate must be one of 'fail', 'warn'",
    ),
    preflight(
        "drift_thresholds={income: -1}",
        "validate: The 'drift_thresholds' parameter of validate must map each feature",
    ),
    preflight("skew_thresholds=3", "The 'skew_thresholds' parameter of the pipeline must be a mapping"),
    preflight("deploy_strategy=blue-green", "The 'deploy_strategy' parameter of "),
    preflight(
        "serving_replicas=0", "push: The 'serving_replicas' parameter of push must be an integer in 1..100"
    ),
    preflight(
        "serving_resources={memory_request: 2Gi, memory_limit: 1Gi}",
        "push: The 'serving_resources' parameter of push: memory_request '2Gi' is above memory_limit '1Gi'",
    ),
    preflight("data_uri=", "ingest: The 'source_uri' parameter of ingest must name a file, folder or object"),
    preflight("learning_rate=3", "unknown pipeline parameter(s) ['learning_rate']"),
    Case(
        "param:malformed",
        ("run-local", "--param", "novalue"),
        "--param 'novalue': expected name=value",
        preflight=True,
    ),
    # -- model names ---------------------------------------------------------------------------
    preflight("model_name=Wine", "The 'model_name' parameter must be a DNS-1123 label"),
    preflight("model_name=../evil", "The 'model_name' parameter must be a DNS-1123 label"),
    preflight("model_name=", "The 'model_name' parameter must be a DNS-1123 label"),
    preflight("model_name=a_b", "The 'model_name' parameter must be a DNS-1123 label"),
    Case(
        "name:serve-bad", ("serve", "--model", "x y:1"), "The 'model_name' parameter must be a DNS-1123 label"
    ),
    Case(
        "name:schema-bad",
        ("schema", "show", "--model", "Wine"),
        "The 'model_name' parameter must be a DNS-1123 label",
    ),
    Case(
        "name:serve-unknown",
        ("serve", "--model", "corpus-never-pushed"),
        "model corpus-never-pushed has no pushed version",
    ),
    Case(
        "name:serve-no-version", ("serve", "--model", f"{MODEL}:7"), f"model {MODEL} has no pushed version 7"
    ),
    # -- data files -----------------------------------------------------------------------------
    data("empty.csv", "empty.csv: file is empty"),
    data("header_only.csv", "header_only.csv: no data rows (header only)"),
    data("duplicate_header.csv", "duplicate_header.csv: duplicate column name(s) ['a'] in the header"),
    data("empty_header.csv", "empty_header.csv: column(s) [2] of the header have no name"),
    data("binary_junk.csv", "binary_junk.csv: cannot parse"),
    data("corrupt.parquet", "corrupt.parquet: cannot read as Parquet"),
    data("label_missing.csv", "label_missing.csv: label column 'species' is empty in every row"),
    data("latin1.csv", "latin1.csv: cannot parse: 'utf-8' codec can't decode byte 0xe9"),
    data(
        "ragged.csv",
        "ragged.csv: cannot parse: Error tokenizing data. C error: Expected 3 fields in line 3, saw 5",
    ),
    data("one_row.csv", "one_row.csv: 1 rows give an empty eval split at eval_fraction=0.2"),
    data("no_files", "no_files: no CSV or Parquet files in this folder"),
    data("mixed", "two.csv: columns ['a', 'c', 'species'] differ from"),
    data("missing.csv", "missing.csv: no such file or folder"),
    data("penguins.csv", "penguins.csv: label column 'nope' not found (columns: ", "label_column=nope"),
    data("penguins.csv", "penguins.csv: split key column 'island_code' not found", "split_key=island_code"),
    Case(
        "data:one_class.csv",
        run_local("data_uri={data}/one_class.csv"),
        "train: train split: label 'species' has fewer than two classes",
        slow=True,
    ),
    # -- data URIs --------------------------------------------------------------------------------
    Case(
        "uri:dotdot",
        run_local("data_uri=s3://raw/../models/penguins.csv"),
        "'..' is not allowed in an object URI",
    ),
    Case(
        "uri:no-bucket",
        run_local("data_uri=s3://kfkit-no-such-bucket/penguins.csv"),
        "s3://kfkit-no-such-bucket/",
    ),
    Case(
        "uri:empty-prefix",
        run_local("data_uri=s3://raw/corpus-nothing-here/"),
        "no CSV or Parquet objects under this prefix",
    ),
    Case(
        "uri:no-object",
        run_local("data_uri=s3://raw/corpus/missing.csv"),
        "s3://raw/corpus/missing.csv: object does not exist",
    ),
    Case(
        "uri:other-scheme",
        run_local("data_uri=gs://bucket/penguins.csv"),
        "gs://bucket/penguins.csv: no such file or folder",
    ),
    # -- credentials: one line naming the store and the variables, never a secret ---------------
    Case(
        "creds:wrong-secret",
        run_local("data_uri=s3://raw/corpus/penguins.csv"),
        f"refused the credentials (SignatureDoesNotMatch); check {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}",
        env={SECRET_KEY_ENV: "{secret}-but-wrong"},
    ),
    Case(
        "creds:wrong-access-key",
        run_local("data_uri=s3://raw/corpus/penguins.csv"),
        f"refused the credentials (InvalidAccessKeyId); check {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}",
        env={ACCESS_KEY_ENV: "nobody-we-know"},
    ),
    Case(
        "creds:missing",
        run_local("data_uri=s3://raw/corpus/penguins.csv"),
        f"check {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}",
        env={ACCESS_KEY_ENV: "", SECRET_KEY_ENV: ""},
    ),
    Case(
        "creds:unreachable",
        run_local("data_uri=s3://raw/corpus/penguins.csv"),
        "cannot reach the object store at 127.0.0.1:9",
        env={ENDPOINT_ENV: "http://127.0.0.1:9"},
    ),
    # -- pipeline files ----------------------------------------------------------------------------
    pipeline_file("missing.py", None, "missing.py: no such file"),
    pipeline_file(
        "crash.py", "from kfp import dsl\nvalue = 1 / 0\n", "crash.py:2: cannot import: ZeroDivisionError"
    ),
    pipeline_file("syntax.py", "def broken(:\n", "syntax.py:1: cannot import: SyntaxError"),
    pipeline_file(
        "empty.py", "from kfp import dsl\n", "expected exactly one @dsl.pipeline in the file, found 0"
    ),
    pipeline_file("notes.yaml", "just: [some, notes]\n", "notes.yaml: not a compiled kfp pipeline"),
    pipeline_file("no-such-pipeline", None, "unknown pipeline 'no-such-pipeline'"),
    pipeline_file("training", None, "unknown pipeline parameter(s) ['no_such_parameter']"),  # by name: loads
    # -- config files (--config) ---------------------------------------------------------------------
    Case(
        "config:missing",
        ("run-local", "--config", "{tmp}/none.yaml"),
        "none.yaml: config file not found",
        preflight=True,
    ),
    config_file(
        "syntax", "parameters: {a: [1, 2\n", "run.yaml: not valid YAML: line 2, column 1: expected ',' or ']'"
    ),
    config_file(
        "tab", "\tparameters: {}\n", "run.yaml: not valid YAML: line 1, column 1: found character '\\t'"
    ),
    config_file("list", "[1, 2]\n", "run.yaml: expected a mapping with a `parameters` mapping"),
    config_file(
        "parameters-list", "parameters: [a]\n", "run.yaml: expected a mapping with a `parameters` mapping"
    ),
    config_file(
        "unknown-key",
        "pipline: training\n",
        "run.yaml: unknown key(s) ['pipline']; expected pipeline, parameters",
    ),
    config_file("binary", "\udcff\udcfe junk", "run.yaml: config file is not UTF-8 text (byte 0)"),
    config_file("no-data-uri", "parameters: {}\n", "missing pipeline parameter(s) ['data_uri']"),
    config_file(
        "wrong-type",
        "parameters: {data_uri: x.csv, eval_fraction: lots}\n",
        "The 'eval_fraction' parameter of the pipeline must be a number",
    ),
    config_file(
        "unknown-parameter",
        "parameters: {data_uri: x.csv, learning_rate: 3}\n",
        "unknown pipeline parameter(s) ['learning_rate']",
    ),
]


def _write_bad_files(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "empty.csv").write_bytes(b"")
    (folder / "header_only.csv").write_text("a,b,species\n")
    (folder / "duplicate_header.csv").write_text("a,a,species\n1,2,x\n3,4,y\n")
    (folder / "empty_header.csv").write_text("a,,species\n1,2,x\n3,4,y\n")
    (folder / "binary_junk.csv").write_bytes(bytes(range(256)) * 8)
    (folder / "corrupt.parquet").write_bytes(b"PAR1" + bytes(range(200)) + b"PAR1")
    (folder / "label_missing.csv").write_text("a,b,species\n" + "".join(f"{i},{2 * i},\n" for i in range(50)))
    (folder / "latin1.csv").write_bytes(("a,b,species\n" + "1,café,x\n" * 50).encode("latin-1"))
    (folder / "ragged.csv").write_text("a,b,species\n1,2,x\n1,2,3,4,5\n")
    (folder / "one_row.csv").write_text("a,b,species\n1,2,x\n")
    (folder / "no_files").mkdir()
    (folder / "no_files" / "notes.txt").write_text("not data\n")
    (folder / "mixed").mkdir()
    (folder / "mixed" / "one.csv").write_text("a,b,species\n1,2,x\n3,4,y\n")
    (folder / "mixed" / "two.csv").write_text("a,c,species\n1,2,x\n3,4,y\n")
    shutil.copy(PENGUINS, folder / "penguins.csv")
    header, *rows = PENGUINS.read_text().splitlines()
    label = header.split(",").index("species")
    one_class = [
        ",".join("Adelie" if i == label else v for i, v in enumerate(row.split(","))) for row in rows
    ]
    (folder / "one_class.csv").write_text("\n".join([header, *one_class]) + "\n")


@pytest.fixture(scope="module")
def corpus(store_env, objects, tmp_path_factory):
    """One state folder, metadata store and bad-file folder for the whole corpus, on the session's
    store; a deployed version of MODEL whose record every case must leave byte for byte."""
    home = tmp_path_factory.mktemp("corpus-home")
    _write_bad_files(home / "data")
    objects.ensure_bucket("raw")
    objects.put_bytes("s3://raw/corpus/penguins.csv", PENGUINS.read_bytes())
    env = dict(
        store_env,
        KFKIT_HOME=str(home),
        KFKIT_METADATA_URI=f"sqlite://{home / 'metadata.sqlite'}",
        KFKIT_WARM_START="0",
    )
    request = DeploymentRequest(model_name=MODEL, version="1", model_uri=f"s3://models/{MODEL}/1")
    LocalTarget(root=home).apply(request)
    return env, home


def _models(objects) -> list[str]:
    return [info.uri for info in objects.list("s3://models/")] if objects.bucket_exists("models") else []


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case.id, marks=[pytest.mark.slow] if case.slow else []) for case in CASES]
)
def test_a_bad_input_is_one_line_and_nothing_is_pushed(case: Case, corpus, objects, tmp_path):
    env, home = corpus
    secret = env[SECRET_KEY_ENV]
    for name, content in case.files.items():
        if content is not None:
            (tmp_path / name).write_text(content, errors="surrogateescape")
    args = [a.replace("{data}", str(home / "data")).replace("{tmp}", str(tmp_path)) for a in case.args]
    case_env = {**env, **{k: v.replace("{secret}", secret) for k, v in case.env.items()}}
    record = record_path(MODEL, home)
    record_before, models_before = record.read_bytes(), _models(objects)
    runs_before = sorted(os.listdir(home / "pipeline_root")) if (home / "pipeline_root").exists() else []

    proc = subprocess.run(
        [KFKIT, *args],
        env=case_env,
        cwd=tmp_path if case.cwd_tmp else REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("kfkit: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
    assert case.expected in errors[0], errors[0]
    assert secret not in proc.stderr + proc.stdout
    if case.preflight:
        assert lines == errors  # nothing ran, so nothing else was said
        runs_after = sorted(os.listdir(home / "pipeline_root")) if (home / "pipeline_root").exists() else []
        assert runs_after == runs_before
    assert _models(objects) == models_before  # nothing pushed, under any model name
    assert record.read_bytes() == record_before  # nothing deployed
    assert json.loads(record.read_text())["serving"]["version"] == "1"


def test_the_corpus_is_large_enough_and_each_case_is_distinct():
    assert len(CASES) >= 45
    assert len({case.id for case in CASES}) == len(CASES)
