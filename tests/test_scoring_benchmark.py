"""`make bench-scoring`'s script end to end on a tiny table: it trains both models, scores the
batch through kfkit's scoring pipeline, measures the floor and writes its table. The speed itself is
the benchmark's business, not a test's: only that every step ran and reported is asserted here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_scoring_benchmark_runs_both_models_and_writes_its_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFKIT_", "AWS_"))}
    env["KFKIT_HOME"] = str(tmp_path / "state")
    results = tmp_path / "scoring.md"
    rows = ["--rows", "3000", "--train-rows", "3000", "--max-train-rows", "3000", "--repeats", "1"]
    proc = subprocess.run(
        [sys.executable, "benchmarks/scoring.py", *rows, "--results", str(results)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = results.read_text()
    assert text.startswith("# kfkit batch scoring")
    for model in ("logistic regression", "random forest (100 trees)"):
        [row] = [line for line in text.splitlines() if line.startswith(f"| {model} |")]
        assert row.count("rows/s") == 0 and row.count("x)") == 3, row  # score_table, task, run vs floor
        assert f"- {model}: " in text and "rows scored 3,000, rejected 0" in text
    assert "Target (linear model" in text
