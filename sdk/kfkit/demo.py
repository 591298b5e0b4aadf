"""kfkit's main job on the embedded default (``make run``): the penguins pipeline end to end,
ending with live predictions from the served model. Everything it starts, it stops."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from kfkit.errors import KfkitError

SAMPLE_URI = "s3://raw/penguins/penguins.csv"


def sample_data_path() -> Path:
    return Path(str(resources.files("kfkit") / "data" / "penguins.csv"))


def run_demo(
    config_path: str,
    rows: int,
    progress: Callable[[str], None],
    out: Callable[[str], None],
) -> None:
    import pandas as pd

    from kfkit import model_registry
    from kfkit.local_run import format_summary, load_config, object_store_env, run_local
    from kfkit.serving.server import start_server
    from kfkit.settings import state_dir
    from kfkit.storage import ObjectStore

    pipeline, parameters = load_config(config_path)
    started = time.perf_counter()
    with object_store_env():
        objects = ObjectStore.from_env()
        info = objects.put_bytes(SAMPLE_URI, sample_data_path().read_bytes(), "text/csv")
        progress(f"uploaded the penguins sample to {info.uri}")
        summary = run_local(parameters, pipeline=pipeline, progress=progress)
        out(format_summary(summary))
        if summary.status != "SUCCEEDED":
            raise KfkitError(summary.error or "pipeline failed")
        version = summary.version_that_serves()
        if version is None:
            refused = summary.refused or {}
            raise KfkitError(f"nothing to serve: {refused.get('task')} refused: {refused.get('reason')}")
        model_name = parameters.get("model_name", "penguins")
        folder = model_registry.download(
            objects, model_name, version, state_dir() / "models" / model_name / version
        )

    eval_split = next(uri for key, uri in summary.artifact_uris.items() if key.endswith(".eval_split"))
    frame = pd.read_parquet(eval_split)
    # Rows spread over the split, so every class shows up (the file is ordered by species).
    frame = frame.iloc[:: max(1, len(frame) // max(rows, 1))].head(rows).reset_index(drop=True)
    label = parameters.get("label_column", "species")
    progress(f"serving {model_name} version {version} with kfkit's model server (Seldon Core)")
    with start_server(folder) as server:
        features = [c for c in frame.columns if c != label]
        records = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in frame[features].to_dict(orient="records")
        ]
        response = server.predict(records)
        classes = response["data"]["names"]
        probabilities = response["data"]["ndarray"]

    out("")
    out(f"Predictions from {server.url}/api/v1.0/predictions (eval rows):")
    header = f"{'#':>2}  {'true ' + label:<16} {'predicted':<12} {'probability':>11}"
    out(header)
    out("-" * len(header))
    correct = 0
    for index, (truth, probs) in enumerate(zip(frame[label], probabilities, strict=True)):
        best = max(range(len(classes)), key=lambda i: probs[i])
        correct += classes[best] == truth
        out(f"{index:>2}  {truth:<16} {classes[best]:<12} {probs[best]:>11.3f}")
    out(f"{correct}/{len(frame)} correct; whole demo {time.perf_counter() - started:.1f}s")
    out(f"what produced it: .venv/bin/kfkit lineage model {model_name}:{version}")
