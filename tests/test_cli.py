"""CLI contract: --help on every verb, and the model-name rule. Every other bad input ends in one
line and a non-zero exit in tests/test_bad_input_corpus.py."""

from __future__ import annotations

import subprocess

import pytest
from conftest import KFKIT, error_line, run_kfkit


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


def test_pipeline_defaults_keep_their_declared_types():
    """The compiled spec writes an integer default as a float (random_seed 42 as 42.0); run-local
    without --config fills defaults from it, and pre-flight must accept them as declared."""
    from kfkit.catalog import pipeline_spec_file
    from kfkit.local_run import pipeline_spec, preflight, with_defaults

    spec = pipeline_spec(pipeline_spec_file("training"))
    values = with_defaults(spec, {"data_uri": "penguins.csv"})
    assert values["random_seed"] == 42 and isinstance(values["random_seed"], int)
    preflight(spec, values)  # raised "must be an integer. Got 42.0" before
