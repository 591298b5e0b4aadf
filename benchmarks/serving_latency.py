"""Benchmark (not a test): single-row serving latency and throughput, in one run on one machine.

Compares, on the same penguins models:
- in-process ``KfkitModel.predict`` (``predict_proba`` plus the request-row conversion): the floor;
- kfkit's Seldon server (``seldon-core-microservice``, ``--workers 2 --threads 2``, as
  ``kfkit serve`` and the SeldonDeployment run it);
- MLServer's scikit-learn runtime (``benchmarks/mlserver/.venv``, made by ``make bench-serving``),
  in two configurations, when that venv exists.

Loopback only; bounded request counts; one asyncio client process (aiohttp, keep-alive). Writes
benchmarks/results/serving_latency.md.

    .venv/bin/python benchmarks/serving_latency.py [--requests 1500]
"""

from __future__ import annotations

import os

# One thread for OpenMP/BLAS in this process too, as in every server below: the in-process floor
# must not be slowed by threads fighting over the two shared cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import json
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

import kfkit
from kfkit.model_folder import MODEL_FILE, Feature, ModelManifest, current_python_version, sha256_file
from kfkit.net import free_port
from kfkit.serving.model import KfkitModel
from kfkit.serving.server import start_server
from kfkit.steps.train import build_pipeline

REPO = Path(__file__).resolve().parents[1]
MLSERVER_VENV = REPO / "benchmarks" / "mlserver" / ".venv"
RESULTS = REPO / "benchmarks" / "results" / "serving_latency.md"
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
CATEGORICAL = ["island", "sex"]
FEATURES = NUMERIC + CATEGORICAL
CONCURRENCY = (1, 8, 32)


def build_model(folder: Path, estimator: Any) -> tuple[Path, pd.DataFrame]:
    frame = pd.read_csv(Path(kfkit.__file__).parent / "data" / "penguins.csv", na_values=["NA"])
    frame = frame.dropna(subset=FEATURES).reset_index(drop=True)
    frame[NUMERIC] = frame[NUMERIC].astype("float64")
    features = [Feature(n, "numeric") for n in NUMERIC] + [Feature(n, "categorical") for n in CATEGORICAL]
    # kfkit's own training layout, so the benchmark serves what kfkit's train step writes.
    model = build_pipeline(features, estimator).fit(frame[FEATURES], frame["species"])
    folder.mkdir(parents=True)
    joblib.dump(model, folder / MODEL_FILE)
    ModelManifest(
        model_name="penguins",
        sha256=sha256_file(folder / MODEL_FILE),
        sklearn_version=sklearn.__version__,
        python_version=current_python_version(),
        problem_type="classification",
        label_column="species",
        features=features,
        estimator=type(estimator).__name__,
        classes=[str(c) for c in model.classes_],
    ).write(folder)
    return folder, frame


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.99 * (len(ordered) - 1))] * 1000


def in_process(folder: Path, frame: pd.DataFrame, count: int) -> dict[str, Any]:
    model = KfkitModel(folder)
    model.load()
    rows = frame[FEATURES].astype(object).values.tolist()
    samples = []
    for i in range(count + 100):
        row = np.array([rows[i % len(rows)]], dtype=object)
        start = time.perf_counter()
        model.predict(row, FEATURES)
        if i >= 100:
            samples.append(time.perf_counter() - start)
    p50, p99 = percentiles(samples)
    return {"p50": p50, "p99": p99, "rps": {1: count / sum(samples)}}


async def _drive(url: str, bodies: list[bytes], count: int, clients: int) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    errors = 0
    next_index = 0
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal next_index, errors
            while next_index < count:
                body = bodies[next_index % len(bodies)]
                next_index += 1
                start = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - start)

        for _ in range(min(50, count)):  # warm up every worker process
            async with session.post(url, data=bodies[0], headers=headers) as response:
                await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, errors


def measure(url: str, bodies: list[bytes], count: int) -> dict[str, Any]:
    result: dict[str, Any] = {"rps": {}, "errors": 0}
    for clients in CONCURRENCY:
        latencies, elapsed, errors = asyncio.run(_drive(url, bodies, count, clients))
        result["errors"] += errors
        result["rps"][clients] = len(latencies) / elapsed
        if clients == 1:
            result["p50"], result["p99"] = percentiles(latencies)
        result[f"p99_{clients}"] = percentiles(latencies)[1]
    return result


def seldon_bodies(frame: pd.DataFrame) -> list[bytes]:
    rows = frame[FEATURES].values.tolist()
    return [json.dumps({"data": {"names": FEATURES, "ndarray": [row]}}).encode() for row in rows]


def mlserver_bodies(frame: pd.DataFrame) -> list[bytes]:
    bodies = []
    for record in frame[FEATURES].to_dict("records"):
        inputs = []
        for name in FEATURES:
            if name in NUMERIC:
                inputs.append({"name": name, "shape": [1], "datatype": "FP64", "data": [float(record[name])]})
            else:
                inputs.append(
                    {"name": name, "shape": [1], "datatype": "BYTES", "data": [str(record[name])],
                     "parameters": {"content_type": "str"}}
                )  # fmt: skip
        request = {
            "parameters": {"content_type": "pd"},
            "inputs": inputs,
            "outputs": [{"name": "predict_proba"}],
        }
        bodies.append(json.dumps(request).encode())
    return bodies


def start_mlserver(folder: Path, parallel_workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    work = Path(tempfile.mkdtemp(prefix="kfkit-bench-mlserver-"))
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    (work / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "parallel_workers": parallel_workers,
                "debug": False,
            }
        )  # fmt: skip
    )
    (work / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "penguins",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": str(folder / MODEL_FILE), "version": "v1"},
            }
        )  # fmt: skip
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLSERVER_LOGGING_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(work)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlserver exited: see {log}")
        try:
            with urllib.request.urlopen(f"{base}/v2/models/penguins/ready", timeout=2) as response:
                if response.status == 200:
                    return process, f"{base}/v2/models/penguins/infer"
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"mlserver not ready after 120 s: see {log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def check_same_answer(url: str, body: bytes, expected: list[float], kind: str) -> bool:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    if kind == "seldon":
        got = answer["data"]["ndarray"][0]
    else:
        got = answer["outputs"][0]["data"]
    return list(map(float, got)) == list(map(float, expected))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="requests per concurrency level")
    args = parser.parse_args()
    count = args.requests
    root = Path(tempfile.mkdtemp(prefix="kfkit-bench-serving-"))
    lines: list[tuple[str, str, dict[str, Any]]] = []
    notes: list[str] = []
    for label, estimator in (
        ("linear (LogisticRegression)", LogisticRegression(max_iter=1000)),
        ("tree (HistGradientBoosting)", HistGradientBoostingClassifier(max_iter=100)),
    ):
        folder, frame = build_model(root / label.split()[0], estimator)
        expected = KfkitModel(folder)
        expected.load()
        first = expected.predict(np.array([frame[FEATURES].values.tolist()[0]], dtype=object), FEATURES)[0]
        print(f"{label}: in process", file=sys.stderr)
        lines.append((label, "in-process KfkitModel.predict (floor)", in_process(folder, frame, count)))
        print(f"{label}: kfkit Seldon server", file=sys.stderr)
        with start_server(
            folder, workers=2, threads=2, log_path=root / f"{label.split()[0]}-seldon.log"
        ) as server:
            url = server.url + "/api/v1.0/predictions"
            same = check_same_answer(url, seldon_bodies(frame)[0], list(first), "seldon")
            notes.append(f"{label}: kfkit server answer equals in-process predict_proba: {same}")
            lines.append(
                (
                    label,
                    "kfkit seldon-core-microservice, 2 workers x 2 threads",
                    measure(url, seldon_bodies(frame), count),
                )
            )
        if not (MLSERVER_VENV / "bin" / "mlserver").exists():
            notes.append(
                "MLServer not measured: benchmarks/mlserver/.venv missing (make bench-serving makes it)"
            )
            continue
        for workers in (0, 2):
            print(f"{label}: MLServer parallel_workers={workers}", file=sys.stderr)
            log = root / f"{label.split()[0]}-mlserver-{workers}.log"
            try:
                process, url = start_mlserver(folder, workers, log)
            except RuntimeError as exc:
                notes.append(
                    f"{label}: MLServer parallel_workers={workers} did not start ({exc}); MLServer 1.7.1's "
                    "worker processes fail here with 'There is no current event loop' on Python 3.12"
                )
                continue
            try:
                same = check_same_answer(url, mlserver_bodies(frame)[0], list(first), "mlserver")
                notes.append(
                    f"{label}: MLServer (parallel_workers={workers}) answer equals in-process: {same}"
                )
                lines.append(
                    (
                        label,
                        f"MLServer 1.7.1 sklearn runtime, parallel_workers={workers}",
                        measure(url, mlserver_bodies(frame), count),
                    )
                )
            finally:
                stop(process)

    header = (
        "| model | server | p50 ms (1 client) | p99 ms (1 client) | req/s 1 | req/s 8 | req/s 32 "
        "| p99 ms 8 | p99 ms 32 | errors |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = ""
    for label, server, r in lines:
        rps = r["rps"]
        body += (
            f"| {label} | {server} | {r['p50']:.2f} | {r['p99']:.2f} | {rps.get(1, 0):.0f} | "
            f"{rps.get(8, float('nan')):.0f} | {rps.get(32, float('nan')):.0f} | "
            f"{r.get('p99_8', float('nan')):.1f} | {r.get('p99_32', float('nan')):.1f} | "
            f"{r.get('errors', 0)} |\n"
        )
    text = (
        "# Serving latency and throughput\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
        f"scikit-learn {sklearn.__version__}; `benchmarks/serving_latency.py --requests {count}` "
        "(`make bench-serving`).\n\n"
        "Single-row requests over loopback HTTP with keep-alive from one asyncio (aiohttp) client process, "
        f"{count} requests per concurrency level after 50 warm-up requests; the client shares the cores with "
        "the server. **The machine's 2 cores were shared with other engineers' jobs while measuring: "
        "absolute numbers are noisy, read the rows of one run as ratios.** In-process rows time "
        "`KfkitModel.predict` (request-row conversion + `predict_proba`), no HTTP. OMP_NUM_THREADS=1 for "
        "every server.\n\n" + header + body + "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
