"""Benchmark (not a test): wall time of each task of the penguins pipeline under kfp.local.

Runs the pipeline on the bundled data against a fresh local store, `--runs` times, and prints
per-task times beside the fixed cost every task pays before its own work (a bare Python start
plus `import kfp.dsl.executor_main`, measured in the same run) so the table reads as ratios.
Writes benchmarks/results/pipeline_timing.md.

    .venv/bin/python benchmarks/pipeline_timing.py [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 15.0


def _time_command(args: list[str], repeat: int = 3) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()

    os.environ["KFKIT_HOME"] = tempfile.mkdtemp(prefix="kfkit-bench-")
    os.environ["KFKIT_REPO"] = str(REPO)
    for key in ("KFKIT_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.pop(key, None)
    from kfkit import names
    from kfkit.local_run import object_store_env, run_local

    python_start = _time_command([sys.executable, "-c", "pass"])
    kfp_start = _time_command([sys.executable, "-c", "import kfp.dsl.executor_main"])
    tf_import = _time_command([sys.executable, "-c", "import tensorflow_data_validation"], repeat=1)

    runs = []
    with object_store_env():
        for index in range(args.runs):
            print(f"run {index + 1}/{args.runs} ...", file=sys.stderr, flush=True)
            summary = run_local(
                {"data_uri": str(REPO / "sdk/kfkit/data/penguins.csv"), "model_name": "penguins-bench"},
                progress=lambda line: print(line, file=sys.stderr),
            )
            if summary.status != "SUCCEEDED":
                raise SystemExit(f"benchmark run failed: {summary.error}")
            runs.append(summary)

    lines = [
        "# Penguins pipeline timing (kfp.local SubprocessRunner)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores, {args.runs} runs, "
        "median per task. Target for the whole pipeline: "
        f"<= {TARGET_S:.0f} s.",
        "",
        "| task | median s | x kfp task start |",
        "|---|---:|---:|",
    ]
    totals = []
    for task in names.TASKS:
        values = [run.task_seconds.get(task, float("nan")) for run in runs]
        median = statistics.median(values)
        lines.append(f"| {task} | {median:.2f} | {median / kfp_start:.1f} |")
    totals = [run.seconds for run in runs]
    total = statistics.median(totals)
    lines += [
        f"| **pipeline total** | **{total:.2f}** | {total / kfp_start:.1f} |",
        "",
        "Fixed costs measured in the same run:",
        "",
        "| what | s |",
        "|---|---:|",
        f"| bare `python -c pass` | {python_start:.2f} |",
        f"| `import kfp.dsl.executor_main` (every task pays it) | {kfp_start:.2f} |",
        f"| `import tensorflow_data_validation` (validate only) | {tf_import:.2f} |",
        "",
        f"Whole pipeline {'meets' if total <= TARGET_S else 'misses'} the {TARGET_S:.0f} s target "
        f"({total / TARGET_S:.2f}x of it).",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    out = REPO / "benchmarks" / "results" / "pipeline_timing.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
