"""The local run cache (kfkit.local_cache): `kfkit run-local` reuses a task's outputs when its
component version, parameters and input contents are unchanged, records it CACHED, and reruns
what a change reaches. Real runs of the penguins pipeline against the session's object store,
each sequence in its own state folder (its own cache and lineage)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import PENGUINS, make_artifact, run_kfkit, run_pipeline
from kfp.dsl import Artifact, Dataset, Input, Output

from kfkit.errors import KfkitError
from kfkit.local_cache import ENTRY_FILE, HashMemo, LocalCache, TaskCache, artifact_identity
from kfkit.local_run import RunSummary, format_summary
from kfkit.metadata import open_store
from kfkit.runtime import Task, execute

CACHEABLE = ("ingest", "resolve-baseline", "validate", "train", "evaluate")
NEVER = ("resolve-source", "push")


def _folder_digest(path: Path) -> str:
    if not path.exists():  # an output that is only metadata (classification_metrics)
        return "absent"
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(path) if path.is_dir() else '.'}\n".encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _run(env: dict[str, str], *params: str) -> dict:
    proc, document = run_pipeline(env, *params)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return document


def _shown(env: dict[str, str], run_id: str) -> dict:
    proc = run_kfkit(["runs", "show", run_id, "--json"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def runs(store_env, tmp_path_factory) -> dict:
    """One sequence in a fresh state folder, on a copy of the penguins data:
    fresh, after-push, unchanged, --no-cache, train parameter changed, data changed."""
    home = tmp_path_factory.mktemp("cache-home")
    data = home / "penguins.csv"
    shutil.copyfile(PENGUINS, data)
    env = dict(store_env, KFKIT_HOME=str(home), KFKIT_CACHE="1")
    base = (f"data_uri={data}", "model_name=cache-penguins")
    done = {"env": env, "home": home}
    done["fresh"] = _run(env, *base)
    done["after_push"] = _run(env, *base)  # the registry changed: version 1 is the baseline
    done["unchanged"] = _run(env, *base)
    proc = run_kfkit(["run-local", "--config", "configs/penguins.yaml", "--json", "--no-cache",
                      "--param", base[0], "--param", base[1]], env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    done["no_cache"] = json.loads(proc.stdout)
    done["new_seed"] = _run(env, *base, "random_seed=7")
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-5]))  # same path, new content
    # Five rows fewer may score a little worse than the version just pushed: this sequence is
    # about what reruns, not the gate, so log_loss is not compared (an unquoted YAML `off`).
    done["new_data"] = _run(env, *base, "random_seed=7", "tolerances={log_loss: off}")
    return done


def test_unchanged_rerun_restores_every_cacheable_task_and_records_it_cached(runs):
    unchanged = runs["unchanged"]
    assert unchanged["status"] == "SUCCEEDED"
    assert unchanged["tasks"] == {**dict.fromkeys(CACHEABLE, "CACHED"), **dict.fromkeys(NEVER, "SUCCEEDED")}
    assert unchanged["outcome"] == "unchanged"  # push ran, and found the model it already pushed
    # The same outputs, content and metadata, as the run whose outputs were stored.
    before = runs["after_push"]
    for key, uri in unchanged["artifact_uris"].items():
        if key.split(".")[0] in CACHEABLE:
            assert _folder_digest(Path(uri)) == _folder_digest(Path(before["artifact_uris"][key])), key
            assert unchanged["artifacts"][key] == before["artifacts"][key], key
            # In this run's own folder, at <run root>/<task>/<output>: restored by run-local
            # itself, no kfp.local task started (kfp.local's folders have one level more).
            assert Path(uri).parent.parent == Path(unchanged["run_root"]), uri
    assert unchanged["metrics"] == before["metrics"]
    # Lineage: CACHED executions, each naming the entry and the run it came from, with OUTPUT
    # events to new artifacts (this run's URIs) that carry the original metadata.
    shown = _shown(runs["env"], unchanged["run_id"])
    assert {t["task"]: t["state"] for t in shown["tasks"]} == {
        **dict.fromkeys(CACHEABLE, "CACHED"),
        **dict.fromkeys(NEVER, "COMPLETE"),
    }
    store = open_store(f"sqlite://{runs['home'] / 'metadata' / 'mlmd.sqlite'}")
    try:
        records = {t.task_name: t for t in store.run_tasks(unchanged["run_id"]) if t.task_name}
        for task in CACHEABLE:
            props = records[task].properties
            assert props["cached_from_run"] in (runs["fresh"]["run_id"], runs["after_push"]["run_id"])
            assert len(props["cache_key"]) == 64
            outputs = store.artifacts([i for ids in records[task].output_artifacts.values() for i in ids])
            assert outputs and all(a.uri.startswith(unchanged["run_root"]) for a in outputs)
        # push read the restored model and blessing (INPUT events to this run's artifacts).
        push_inputs = store.artifacts([i for ids in records["push"].input_artifacts.values() for i in ids])
        assert {a.uri for a in push_inputs} == {
            unchanged["artifact_uris"]["train.model"],
            unchanged["artifact_uris"]["evaluate.blessing"],
        }
    finally:
        store.close()
    table = format_summary(RunSummary(**unchanged))
    assert "  train              CACHED" in table


def test_a_push_changes_the_baseline_so_what_reads_it_reruns(runs):
    tasks = runs["after_push"]["tasks"]
    assert tasks["ingest"] == "CACHED"  # the data did not change
    # Version 1 is the baseline now: validate checks drift against it, and its outputs (which
    # say so) are train's inputs.
    assert [tasks[t] for t in ("resolve-baseline", "validate", "train", "evaluate")] == ["SUCCEEDED"] * 4


def test_run_ids_do_not_enter_the_keys(runs):
    """The unchanged run's keys are those the earlier runs stored: nothing per-run in them."""
    cache = LocalCache(runs["home"] / "cache")
    stored = {}
    for entry in cache.entries.iterdir():
        record = json.loads((entry / ENTRY_FILE).read_text())
        stored.setdefault(record["task"], {})[record["key"]] = record["run_id"]
    store = open_store(f"sqlite://{runs['home'] / 'metadata' / 'mlmd.sqlite'}")
    try:
        cached = {t.task_name: t.properties["cache_key"] for t in store.run_tasks(runs["unchanged"]["run_id"])
                  if t.state == "CACHED"}  # fmt: skip
    finally:
        store.close()
    assert set(cached) == set(CACHEABLE)
    for task, key in cached.items():
        assert stored[task][key] != runs["unchanged"]["run_id"]  # stored by another run, same key
    # Ingest was stored by the first run and reused by the next two.
    assert stored["ingest"][cached["ingest"]] == runs["fresh"]["run_id"]
    assert stored["train"][cached["train"]] == runs["after_push"]["run_id"]


def test_no_cache_runs_every_task(runs):
    assert runs["no_cache"]["tasks"] == dict.fromkeys((*NEVER, *CACHEABLE), "SUCCEEDED")
    assert runs["no_cache"]["outcome"] == "unchanged"


def test_a_changed_train_parameter_reruns_train_and_evaluate_only(runs):
    tasks = runs["new_seed"]["tasks"]
    assert tasks["ingest"] == tasks["resolve-baseline"] == tasks["validate"] == "CACHED"
    assert tasks["train"] == tasks["evaluate"] == "SUCCEEDED"


def test_a_changed_data_file_reruns_from_ingest(runs):
    tasks = runs["new_data"]["tasks"]
    assert tasks["ingest"] == tasks["validate"] == tasks["train"] == tasks["evaluate"] == "SUCCEEDED"
    assert runs["new_data"]["dataset_fingerprint"] != runs["new_seed"]["dataset_fingerprint"]


# -- one task, in this process --------------------------------------------------------------


def scale(
    data: Input[Dataset],
    scaled: Output[Artifact],
    factor: int,
    task_name: str = "",
    run_id: str = "",
):
    """A component-shaped function for the runtime (its name is a cacheable component's)."""


CALLS: list[str] = []


def _logic(task: Task) -> None:
    CALLS.append(task.name)
    if task.params["factor"] < 0:
        raise KfkitError("factor must be >= 0")
    folder = Path(task.outputs["scaled"].path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "values.txt").write_text(str(task.params["factor"] * 21))
    task.outputs["scaled"].metadata["factor"] = task.params["factor"]


@pytest.fixture
def one_task(tmp_path, monkeypatch):
    """A recorded local run with the cache on, and a way to run `scale` in it."""
    store = open_store(f"sqlite://{tmp_path / 'mlmd.sqlite'}")
    store.start_run("p", "run-1", {}, str(tmp_path))
    store.start_run("p", "run-2", {}, str(tmp_path))
    store.close()
    monkeypatch.setenv("KFKIT_METADATA_URI", f"sqlite://{tmp_path / 'mlmd.sqlite'}")
    monkeypatch.setenv("KFKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KFKIT_CACHE_VERSIONS", json.dumps({"scale": "v1", "scale-2": "v1"}))
    data = make_artifact(Dataset, tmp_path, "data")
    Path(data.path).write_text("1,2,3\n")
    CALLS.clear()

    def run(factor: int, run_id: str = "run-1", name: str = "scale", folder: str = "out") -> Artifact:
        monkeypatch.setenv("KFKIT_RUN_ID", run_id)
        output = make_artifact(Artifact, tmp_path / run_id / folder, "scaled")
        execute(scale, {"data": data, "scaled": output, "factor": factor, "task_name": name}, _logic)
        return output

    return run, LocalCache(tmp_path / "cache"), tmp_path


def _states(tmp_path: Path, run_id: str) -> list[str]:
    store = open_store(f"sqlite://{tmp_path / 'mlmd.sqlite'}")
    try:
        return [t.state for t in store.run_tasks(run_id) if t.task_name]
    finally:
        store.close()


def test_a_hit_restores_files_and_metadata_without_running_the_logic(one_task):
    run, cache, tmp_path = one_task
    first = run(2)
    second = run(2, run_id="run-2", name="scale-2")  # another run, another task name: same key
    assert CALLS == ["scale"]
    assert (Path(second.path) / "values.txt").read_text() == "42"
    assert second.metadata == {"factor": 2}
    assert artifact_identity(second) == artifact_identity(first)
    assert _states(tmp_path, "run-1") == ["COMPLETE"] and _states(tmp_path, "run-2") == ["CACHED"]
    run(3, run_id="run-2", folder="other")  # a parameter changed: a miss
    assert CALLS == ["scale", "scale"]


def test_a_failed_task_is_not_stored(one_task):
    run, cache, _ = one_task
    with pytest.raises(SystemExit):
        run(-1)
    assert not cache.entries.exists() or not any(cache.entries.iterdir())
    with pytest.raises(SystemExit):
        run(-1, folder="again")
    assert CALLS == ["scale", "scale"]  # nothing to reuse: it ran (and failed) again


@pytest.mark.parametrize("damage", ["changed file", "missing entry.json", "truncated entry.json"])
def test_a_damaged_entry_is_a_miss_with_a_warning_and_is_replaced(one_task, capsys, damage):
    run, cache, _ = one_task
    run(2)
    [entry] = list(cache.entries.iterdir())
    if damage == "changed file":
        (entry / "outputs" / "scaled" / "values.txt").write_text("666")
    elif damage == "missing entry.json":
        (entry / ENTRY_FILE).unlink()
    else:
        (entry / ENTRY_FILE).write_text((entry / ENTRY_FILE).read_text()[:40])
    capsys.readouterr()
    again = run(2, folder="again")
    assert CALLS == ["scale", "scale"]  # the damaged entry was never used
    assert "cache entry" in capsys.readouterr().out and (Path(again.path) / "values.txt").read_text() == "42"
    run(2, folder="third")  # the entry was replaced by a good one
    assert CALLS == ["scale", "scale"]


def test_an_entry_links_the_outputs_instead_of_copying_them(one_task):
    """A 10M-row split is a gigabyte: the entry hard-links the task's output files (the same
    inode, no bytes written), and a restore into a new run is a checked copy of its own."""
    run, cache, _ = one_task
    first = run(2)
    [entry] = list(cache.entries.iterdir())
    stored = entry / "outputs" / "scaled" / "values.txt"
    output = Path(first.path) / "values.txt"
    assert stored.stat().st_ino == output.stat().st_ino and stored.stat().st_nlink == 2
    again = run(2, folder="again")
    restored = Path(again.path) / "values.txt"
    assert restored.read_text() == "42" and restored.stat().st_ino != stored.stat().st_ino


def test_a_half_written_entry_is_never_read(one_task):
    run, cache, _ = one_task
    run(2)
    [entry] = list(cache.entries.iterdir())
    # What a run killed while storing leaves: only under tmp/, never where a lookup looks.
    cache.tmp.mkdir(parents=True, exist_ok=True)
    shutil.copytree(entry, cache.tmp / f"{entry.name}-123-abcd")
    shutil.rmtree(entry)
    run(2, folder="again")
    assert CALLS == ["scale", "scale"]
    assert [path for path, _ in cache.leftovers(grace_seconds=0)] == [cache.tmp / f"{entry.name}-123-abcd"]


def test_run_and_task_names_do_not_enter_a_key(one_task, tmp_path):
    _, _, _ = one_task
    data = make_artifact(Dataset, tmp_path, "data")
    keys = set()
    for name, run_id in (("scale", "run-a"), ("scale-2", "run-b")):
        task = Task(
            component="scale",
            name=name,
            run_id=run_id,
            inputs={"data": data},
            outputs={},
            params={"factor": 2, "run_id": run_id},
        )
        keys.add(TaskCache.for_task(task).key)
    assert len(keys) == 1


def test_store_gc_lists_half_entries_and_with_cache_removes_the_whole_cache(one_task, store_env):
    run, cache, tmp_path = one_task
    run(2)
    half = cache.tmp / "0123-99-deadbeef"
    half.mkdir(parents=True)
    (half / "part").write_text("x")
    os.utime(half, (time.time() - 7200, time.time() - 7200))
    env = dict(store_env, KFKIT_HOME=str(tmp_path))
    listed = json.loads(run_kfkit(["store", "gc", "--json"], env).stdout)["leftovers"]
    assert [(r["kind"], r["where"]) for r in listed if r["kind"].startswith(("cache", "run-cache"))] == [
        ("cache-tmp", str(half))
    ]
    proc = run_kfkit(["store", "gc", "--json", "--cache", "--yes"], env)
    removed = [r for r in json.loads(proc.stdout)["leftovers"] if r["kind"] in ("cache-tmp", "run-cache")]
    assert {r["kind"] for r in removed} == {"cache-tmp", "run-cache"} and all(r["removed"] for r in removed)
    assert not cache.root.exists()


def test_an_output_that_is_only_metadata_is_stored(tmp_path):
    """resolve_baseline finding no pushed version writes no file, only metadata."""
    cache = LocalCache(tmp_path / "cache")
    outputs = {"baseline": ("system.Artifact", tmp_path / "never-written", {"found": False})}
    cache.store("k" * 64, {"component": "resolve_baseline"}, outputs)
    assert cache.lookup("k" * 64, ["baseline"]).outputs["baseline"]["metadata"] == {"found": False}


def _large_file(path: Path, fill: bytes = b"a") -> Path:
    path.write_bytes(fill * (HashMemo.MIN_BYTES + 1))
    time.sleep(HashMemo.SETTLED_S * 2)  # settled: a memo may be recorded
    return path


def _edit_in_place(path: Path) -> None:
    """One byte changed, same size, modification time put back: only the ctime tells."""
    status = path.stat()
    with open(path, "r+b") as handle:
        handle.write(b"b")
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert path.stat().st_size == status.st_size and path.stat().st_mtime_ns == status.st_mtime_ns


def test_a_large_file_is_hashed_once_and_an_edit_in_place_is_read_again(tmp_path):
    memo = HashMemo(tmp_path / "hashes")
    data = _large_file(tmp_path / "split.parquet")
    first = memo.sha256(data)
    assert first == hashlib.sha256(data.read_bytes()).hexdigest()
    [memo_file] = list((tmp_path / "hashes").iterdir())
    # The memo answers while the file is unchanged: a planted value comes back, so the file was not read.
    recorded = json.loads(memo_file.read_text())
    memo_file.write_text(json.dumps({**recorded, "sha256": "planted"}))
    assert memo.sha256(data) == "planted"
    _edit_in_place(data)
    assert memo.sha256(data) == hashlib.sha256(data.read_bytes()).hexdigest() != first


def test_a_file_still_being_written_gets_no_memo(tmp_path):
    memo = HashMemo(tmp_path / "hashes")
    data = tmp_path / "split.parquet"
    data.write_bytes(b"a" * (HashMemo.MIN_BYTES + 1))
    memo.sha256(data)  # changed a moment ago: a change in the same clock tick would go unseen
    assert not (tmp_path / "hashes").exists()


def test_a_stored_output_is_not_read_again_for_its_readers_keys_until_it_is_edited(one_task, tmp_path):
    """The producing task's store hashes its large outputs once; the tasks reading them as input
    take the sha256 from the memo, and an input edited in place changes their key."""
    _, cache, _ = one_task
    folder = tmp_path / "ingest" / "train_split"
    folder.mkdir(parents=True)
    split = folder / "part.parquet"
    split.write_bytes(b"a" * (HashMemo.MIN_BYTES + 1))
    cache.store("s" * 64, {"component": "ingest"}, {"train_split": ("system.Dataset", folder, {"rows": 3})})
    entry = cache.lookup("s" * 64, ["train_split"])
    [memo_file] = list(cache.memo.folder.iterdir())  # recorded by the store (it waited to record it)
    assert (
        json.loads(memo_file.read_text())["sha256"] == entry.outputs["train_split"]["files"]["part.parquet"]
    )
    data = make_artifact(Dataset, tmp_path / "ingest", "train_split", {"rows": 3})  # as the reader gets it
    assert artifact_identity(data, cache.memo) == entry.outputs["train_split"]["identity"]

    def key() -> str:
        task = Task(component="scale", name="scale", run_id="r", inputs={"data": data}, outputs={}, params={})
        return TaskCache.for_task(task).key

    before = key()
    assert key() == before
    _edit_in_place(split)
    assert key() != before
