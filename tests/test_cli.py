"""CLI contract: --help on every verb; bad usage ends in one line and a non-zero exit."""

from __future__ import annotations

import subprocess

import pytest
from conftest import KFKIT, REPO, error_line, run_kfkit


def _verbs(group=None, prefix=()) -> list[list[str]]:
    """Every command and group of the CLI, walked from its click tree (not listed by hand)."""
    import click

    from kfkit.cli import main

    group = group or main
    found = [list(prefix)]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _verbs(command, (*prefix, name))
        else:
            found.append([*prefix, name])
    return found


VERBS = _verbs()


def test_the_verb_walk_finds_the_groups_and_their_commands():
    assert ["schema", "reset"] in VERBS and ["store", "env"] in VERBS and ["run-local"] in VERBS
    assert len(VERBS) > 20


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v) or "kfkit")
def test_every_verb_has_help(verb):
    proc = run_kfkit([*verb, "--help"], env=None, timeout=60)
    assert proc.returncode == 0 and "Usage:" in proc.stdout


@pytest.mark.parametrize("verb", [["store", "env"], ["store", "start"]], ids=" ".join)
def test_store_verbs_that_print_credentials_say_so(verb):
    proc = run_kfkit([*verb, "--help"], env=None, timeout=60)
    assert proc.returncode == 0 and "credentials" in proc.stdout.lower()


def _one_line(proc):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    return lines[-1]


def test_missing_config_file(tmp_path):
    proc = run_kfkit(["run-local", "--config", str(tmp_path / "none.yaml")], env=None, timeout=60)
    assert _one_line(proc) == f"kfkit: error: {tmp_path / 'none.yaml'}: config file not found"


def test_unknown_pipeline_parameter(tmp_path):
    proc = run_kfkit(
        ["run-local", "--config", "configs/penguins.yaml", "--param", "learning_rate=3"], env=None, timeout=60
    )
    assert "unknown pipeline parameter(s) ['learning_rate']" in _one_line(proc)


def test_malformed_param():
    proc = run_kfkit(["run-local", "--param", "novalue"], env=None, timeout=60)
    assert "--param 'novalue': expected name=value" in _one_line(proc)


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("missing.py", None, "missing.py: no such file"),
        ("crash.py", "from kfp import dsl\nvalue = 1 / 0\n", "crash.py:2: cannot import: ZeroDivisionError"),
        ("syntax.py", "def broken(:\n", "syntax.py:1: cannot import: SyntaxError"),
        ("empty.py", "from kfp import dsl\n", "expected exactly one @dsl.pipeline in the file, found 0"),
        ("notes.yaml", "just: [some, notes]\n", "notes.yaml: not a compiled kfp pipeline"),
        ("training", None, None),  # kfkit's own by name: gets past the file checks
        ("no-such-pipeline", None, "unknown pipeline 'no-such-pipeline'"),
    ],
)
def test_run_local_pipeline_that_cannot_be_loaded_is_one_line(tmp_path, file, content, expected):
    if content is not None:
        (tmp_path / file).write_text(content)
    env = {"KFKIT_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [KFKIT, "run-local", "--pipeline", file, "--param", "no_such_parameter=1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = error_line(proc)
    if expected is None:  # loaded, so the parameter check is what fails, before anything runs
        assert "unknown pipeline parameter(s) ['no_such_parameter']" in line
    else:
        assert expected in line
    assert not (tmp_path / "home" / "pipeline_root").exists()


@pytest.mark.parametrize("name", ["Wine", "x y", "a/b", "../evil", "ünïcode", "-lead", "a" * 64])
def test_a_bad_model_name_is_refused_before_anything_is_read(tmp_path, name):
    env = {"KFKIT_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [KFKIT, "serve", "--model", f"{name}:1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "The 'model_name' parameter must be a DNS-1123 label" in error_line(proc)


def test_one_model_name_rule():
    from kfkit.errors import KfkitError
    from kfkit.names import check_model_name

    for good in ("penguins", "a", "loans-2026", "a" * 63, "0x"):
        assert check_model_name(good) == good
    for bad in (
        "",
        "Wine",
        "x y",
        "x_y",
        "a/b",
        "../evil",
        "penguins:1",
        "ünïcode",
        "-a",
        "a-",
        "a" * 64,
        None,
    ):
        with pytest.raises(KfkitError, match="must be a DNS-1123 label"):
            check_model_name(bad)


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("eval_fraction=abc", "The 'eval_fraction' parameter of the pipeline must be a number. Got 'abc'"),
        ("eval_fraction=1", "ingest: The 'eval_fraction' parameter of ingest must be a float in the range"),
        ("eval_fraction=-1", "ingest: The 'eval_fraction' parameter of ingest must be a float in the range"),
        ("random_seed=abc", "The 'random_seed' parameter of the pipeline must be an integer"),
        ("random_seed=1.5", "The 'random_seed' parameter of the pipeline must be an integer"),
        ("estimator=svm", "train: The 'estimator' parameter of train must be one of"),
        ("problem_type=ranking", "train: The 'problem_type' parameter of train must be one of"),
        (
            "hyperparameters={n_trees: 3}",
            "train: The 'hyperparameters' parameter of train has unknown key(s) ['n_trees']",
        ),
        ("hyperparameters=5", "The 'hyperparameters' parameter of the pipeline must be a mapping"),
        ("thresholds=0.9", "The 'thresholds' parameter of the pipeline must be a mapping"),
        (
            "thresholds={accuracy: high}",
            "evaluate: The 'thresholds' parameter of evaluate must map metrics to numbers",
        ),
        (
            "thresholds={acc: 0.9}",
            "evaluate: The 'thresholds' parameter of evaluate has unknown metric(s) ['acc']",
        ),
        (
            "tolerances={accuracy: lots}",
            "evaluate: The 'tolerances' parameter of evaluate must map metrics to numbers",
        ),
        ("trivial_margin=2", "evaluate: The 'trivial_margin' parameter of evaluate must be in [0, 1)"),
        (
            "validation_policy=maybe",
            "validate: The 'policy' parameter of validate must be one of 'fail', 'warn'",
        ),
        (
            "drift_thresholds={income: -1}",
            "validate: The 'drift_thresholds' parameter of validate must map each feature",
        ),
        ("skew_thresholds=3", "The 'skew_thresholds' parameter of the pipeline must be a mapping"),
        ("model_name=Wine", "The 'model_name' parameter must be a DNS-1123 label"),
        ("model_name=../evil", "The 'model_name' parameter must be a DNS-1123 label"),
        ("model_name=", "The 'model_name' parameter must be a DNS-1123 label"),
        ("deploy_strategy=blue-green", "The 'deploy_strategy' parameter of resolve_baseline must be one of"),
        ("data_uri=", "ingest: The 'source_uri' parameter of ingest must name a file, folder or object"),
    ],
)
def test_every_parameter_mistake_is_one_line_before_any_task_runs(tmp_path, param, expected):
    env = {"KFKIT_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    args = ["run-local", "--config", str(REPO / "configs/penguins.yaml"), "--param", "data_uri=x.csv"]
    proc = subprocess.run(
        [KFKIT, *args, "--param", param], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert expected in error_line(proc)
    # Nothing ran, nothing was recorded: no task folder, no run in the metadata store.
    assert not (tmp_path / "home" / "pipeline_root").exists()
    assert not (tmp_path / "home" / "metadata").exists()
