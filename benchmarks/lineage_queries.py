"""Benchmark (not a test): record 1,000 pipeline runs in ML Metadata and time each lineage
query, on SQLite and on MariaDB side by side in one run.

Runs are recorded through kfkit's own recorder API (the calls a local run makes): five
tasks with the artifacts kfkit's components write, one new dataset fingerprint every ten
runs, one pushed ``penguins`` version per run. Each query is then repeated and its median
and 95th percentile reported; the MariaDB/SQLite column is the ratio. Writes
benchmarks/results/lineage_queries.md.

    .venv/bin/python benchmarks/lineage_queries.py [--runs 1000] [--repeat 30] [--no-mysql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the throwaway MariaDB server the tests use

from mariadb_server import MariaDB  # noqa: E402

from kfkit.metadata import open_store  # noqa: E402
from kfkit.metadata.lineage import compare_runs, dataset_lineage, list_runs, model_lineage, show_run  # noqa: E402
from kfkit.metadata.store import MetadataStore, OutputArtifact  # noqa: E402

TASKS = (
    ("ingest", {}, {"train_split": "system.Dataset", "eval_split": "system.Dataset"}),
    (
        "validate",
        {"train_split": ("ingest", "train_split")},
        {"statistics": "system.Artifact", "schema": "system.Artifact", "anomalies": "system.Artifact"},
    ),
    (
        "train",
        {
            "train_split": ("ingest", "train_split"),
            "schema": ("validate", "schema"),
            "anomalies": ("validate", "anomalies"),
        },
        {"model": "system.Model"},
    ),
    (
        "evaluate",
        {"model": ("train", "model"), "eval_split": ("ingest", "eval_split")},
        {"metrics": "system.Metrics", "blessing": "system.Artifact"},
    ),
    (
        "push",
        {"model": ("train", "model"), "blessing": ("evaluate", "blessing")},
        {"pushed_model": "system.Model"},
    ),
)


ARTIFACTS = sum(len(outputs) for _, _, outputs in TASKS)
EVENTS = ARTIFACTS + sum(len(inputs) for _, inputs, _ in TASKS)


def fingerprint(n: int) -> str:
    return f"{n // 10:08x}" * 8


def record_run(store: MetadataStore, n: int) -> str:
    run_id = f"kfkit-training-bench-{n:05d}"
    fp = fingerprint(n)
    run = store.start_run(
        "kfkit-training",
        run_id,
        {"model_name": "penguins", "estimator": "logistic_regression", "seed": n},
        "/bench",
    )
    produced: dict[tuple[str, str], int] = {}
    for task, inputs, outputs in TASKS:
        task_id = store.start_task(
            run, task, "ghcr.io/kfkit/kfkit:0.1.0", {"n": n}, {k: produced[v] for k, v in inputs.items()}
        )
        artifacts = []
        for name, type_name in outputs.items():
            meta: dict = {"dataset_fingerprint": fp}
            if name in ("train_split", "eval_split"):
                meta.update(rows=344, split=name.split("_")[0], source_uri="s3://raw/penguins/")
            elif name == "anomalies":
                meta.update(blessed=True, anomalies={}, schema_source="reference")
            elif name == "metrics":
                meta = {"accuracy": 0.9 + (n % 10) / 100, "macro_f1": 0.9}
            elif name == "blessing":
                meta.update(blessed=True, reason="all thresholds met")
            elif name == "model":
                meta.update(trained=True, sha256=f"{n:064x}")
            elif name == "pushed_model":
                meta.update(
                    pushed=True,
                    model_name="penguins",
                    version=str(n + 1),
                    pushed_uri=f"s3://models/penguins/{n + 1}/",
                    sha256=f"{n:064x}",
                )
            artifacts.append(OutputArtifact(name, type_name, f"/bench/{run_id}/{task}/{name}", meta))
        for name, artifact_id in store.finish_task(run, task_id, "COMPLETE", artifacts).items():
            produced[(task, name)] = artifact_id
    store.finish_run(run, "COMPLETE")
    return run_id


def time_query(query: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        query()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def bench_backend(uri: str, runs: int, repeat: int) -> dict[str, tuple[float, float]]:
    store = open_store(uri)
    start = time.perf_counter()
    for n in range(runs):
        record_run(store, n)
        if (n + 1) % 100 == 0:
            print(f"  {uri.split(':')[0]}: recorded {n + 1}/{runs} runs", file=sys.stderr, flush=True)
    record_ms = (time.perf_counter() - start) * 1000 / runs
    mid = runs // 2
    queries = {
        "lineage model penguins (latest)": lambda: model_lineage(store, "penguins"),
        f"lineage model penguins:{mid + 1}": lambda: model_lineage(store, f"penguins:{mid + 1}"),
        "lineage dataset <fingerprint> (10 runs)": lambda: dataset_lineage(store, fingerprint(mid)[:12]),
        "runs list (20 newest)": lambda: list_runs(store, limit=20),
        "runs show <run>": lambda: show_run(store, f"kfkit-training-bench-{mid:05d}"),
        "runs compare <run> <run>": lambda: compare_runs(
            store, [f"kfkit-training-bench-{mid:05d}", f"kfkit-training-bench-{mid + 1:05d}"]
        ),
    }
    results = {"record one run (5 tasks)": (record_ms, record_ms)}
    for name, query in queries.items():
        results[name] = time_query(query, repeat)
    store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-mysql", action="store_true", help="SQLite only")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kfkit-lineage-bench-"))
    backends = {"SQLite": f"sqlite://{work / 'mlmd.sqlite'}"}
    server = None
    if not args.no_mysql:
        server = MariaDB(work / "mariadb")
        backends["MariaDB"] = server.start()
        os.environ.update(server.env)
    try:
        results = {}
        for label, uri in backends.items():
            print(f"recording {args.runs} runs into {label}", file=sys.stderr, flush=True)
            results[label] = bench_backend(uri, args.runs, args.repeat)
    finally:
        if server:
            server.stop()

    labels = list(results)
    header = "| query | " + " | ".join(f"{b} p50 ms | {b} p95 ms" for b in labels)
    header += " | MariaDB/SQLite p50 |" if len(labels) == 2 else " |"
    lines = [header, "|---|" + "---:|" * (2 * len(labels) + (1 if len(labels) == 2 else 0))]
    for query in results[labels[0]]:
        cells = [f"{results[b][query][0]:.1f} | {results[b][query][1]:.1f}" for b in labels]
        ratio = (
            f" | {results[labels[1]][query][0] / results[labels[0]][query][0]:.2f}x"
            if len(labels) == 2
            else ""
        )
        lines.append(f"| {query} | " + " | ".join(cells) + ratio + " |")
    table = "\n".join(lines)
    print(table)
    out = REPO / "benchmarks" / "results" / "lineage_queries.md"
    out.write_text(
        "# Lineage query latency (ML Metadata)\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores: {args.runs} runs recorded "
        f"through kfkit's recorder API, each query repeated {args.repeat} times. A 'record one run' row is "
        f"the mean wall time to record one five-task run ({ARTIFACTS} artifacts, {EVENTS} events).\n\n"
        f"{table}\n"
    )
    print(f"wrote {out.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
