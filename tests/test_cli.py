"""CLI contract: --help on every verb; bad usage ends in one line and a non-zero exit."""

from __future__ import annotations

import pytest
from conftest import run_kfkit

VERBS = [
    [],
    ["run-local"],
    ["store"],
    ["store", "start"],
    ["store", "stop"],
    ["store", "env"],
    ["store", "upload"],
    ["compile"],
    ["serve"],
    ["demo"],
]


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
