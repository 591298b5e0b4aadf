"""Warm start (kfkit.warm_start): tasks forked from pre-imported servers behave like tasks in
a fresh interpreter, fall back to one when no server can serve, and leave nothing behind.

The fast tests drive the real launcher and a real server the way kfp.local does (a
``-m kfp.dsl.executor_main`` command) with a probe component; the slow ones run the
penguins pipeline warm and cold through the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import KFKIT, PENGUINS, REPO, error_line, run_pipeline

from kfkit import warm_start
from kfkit.warm_start import WarmStart, warm_interpreters

PROBE = """
import json, os, sys, time


def probe(out_dir: str, mode: str):
    info = {
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "probe_var": os.environ.get("PROBE_VAR"),
        "argv0": sys.argv[0],
        "path0": sys.path[0],
        "tensorflow": sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"),
        "sklearn_preloaded": "sklearn.ensemble" in sys.modules,
        "stdin": sys.stdin.read() if mode == "stdin" else None,
    }
    # Written whole, then renamed: a test polling for the file never reads it half-written.
    with open(os.path.join(out_dir, "probe.json.tmp"), "w") as handle:
        json.dump(info, handle)
    os.replace(os.path.join(out_dir, "probe.json.tmp"), os.path.join(out_dir, "probe.json"))
    print("probe says hello on stdout", flush=True)
    print("probe says hello on stderr", file=sys.stderr, flush=True)
    if mode == "sleep":
        time.sleep(60)
    if mode == "exit3":
        raise SystemExit(3)
    if mode == "kfkit_error":
        from kfkit.errors import KfkitError
        from kfkit.runtime import execute

        def fail(task):
            raise KfkitError("probe: something clear went wrong")

        execute(probe, {"out_dir": out_dir, "mode": mode}, fail)
"""


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def _task_command(python: str, tmp_path: Path, mode: str) -> list[str]:
    """What kfp.local runs for a lightweight component, with `python3` replaced."""
    module = tmp_path / "ephemeral_component.py"
    module.write_text(PROBE)
    executor_input = {
        "inputs": {"parameterValues": {"out_dir": str(tmp_path), "mode": mode}},
        "outputs": {"outputFile": str(tmp_path / "executor_output.json")},
    }
    return [
        python,
        "-m",
        "kfp.dsl.executor_main",
        "--component_module_path",
        str(module),
        "--executor_input",
        json.dumps(executor_input),
        "--function_to_execute",
        "probe",
    ]


def _run(command: list[str], cwd: Path, input: str | None = None, **env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PROBE_VAR="from-the-task", _KFP_RUNTIME="true", **env)
    return subprocess.run(command, cwd=cwd, env=env, input=input, capture_output=True, text=True, timeout=120)


@pytest.fixture
def bare_warm(tmp_path):
    """A warm start with one light server (kfp's executor only) for every function."""
    with warm_interpreters(tmp_path / "state", profiles={"bare": ("",)}) as warm:
        assert warm.python is not None
        yield warm


def test_task_runs_forked_with_its_own_cwd_env_argv_and_fds(bare_warm, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    seen = {}
    for python in (sys.executable, bare_warm.python):  # cold, then warm: the task sees the same
        proc = _run(_task_command(python, tmp_path, "stdin"), work, input="fed on stdin")
        assert proc.returncode == 0, proc.stderr
        assert "probe says hello on stdout" in proc.stdout
        assert "probe says hello on stderr" in proc.stderr
        assert "cold interpreter" not in proc.stderr
        seen[python] = json.loads((tmp_path / "probe.json").read_text())
        assert (tmp_path / "executor_output.json").exists()
    cold, warm = seen[sys.executable], seen[bare_warm.python]
    assert warm["cwd"] == str(work)
    assert warm["probe_var"] == "from-the-task"
    assert warm["stdin"] == "fed on stdin"
    assert {k: v for k, v in warm.items() if k != "pid"} == {k: v for k, v in cold.items() if k != "pid"}
    server = bare_warm.servers["bare"].pid
    assert _parent_of(warm["pid"]) in (server, None)  # forked by the server (or already reaped)


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_exit_status_and_one_line_errors_come_back(bare_warm, tmp_path):
    proc = _run(_task_command(bare_warm.python, tmp_path, "exit3"), tmp_path)
    assert proc.returncode == 3
    proc = _run(_task_command(bare_warm.python, tmp_path, "kfkit_error"), tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "kfkit probe: error: probe: something clear went wrong"


def test_signal_to_the_launcher_reaches_the_task(bare_warm, tmp_path):
    launcher = subprocess.Popen(
        _task_command(bare_warm.python, tmp_path, "sleep"),
        cwd=tmp_path,
        env=dict(os.environ, _KFP_RUNTIME="true"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    probe = tmp_path / "probe.json"
    _wait_for(probe.exists)
    task = json.loads(probe.read_text())["pid"]
    launcher.send_signal(signal.SIGTERM)
    # The task dies of the same signal, and the launcher reports it the same way.
    assert launcher.wait(timeout=10) == -signal.SIGTERM
    _wait_for(lambda: not _alive(task))


def test_killed_launcher_takes_its_task_with_it(bare_warm, tmp_path):
    launcher = subprocess.Popen(
        _task_command(bare_warm.python, tmp_path, "sleep"),
        cwd=tmp_path,
        env=dict(os.environ, _KFP_RUNTIME="true"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    probe = tmp_path / "probe.json"
    _wait_for(probe.exists)
    task = json.loads(probe.read_text())["pid"]
    launcher.kill()
    launcher.wait(timeout=10)
    _wait_for(lambda: not _alive(task))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_stopping_leaves_no_process_socket_or_folder(tmp_path):
    state = tmp_path / "state"
    with warm_interpreters(state, profiles={"bare": ("",)}) as warm:
        folder = warm.folder
        assert folder is not None
        launcher = subprocess.Popen(
            _task_command(warm.python, tmp_path, "sleep"),
            cwd=tmp_path,
            env=dict(os.environ, _KFP_RUNTIME="true"),
        )
        _wait_for((tmp_path / "probe.json").exists)
        task = json.loads((tmp_path / "probe.json").read_text())["pid"]
    # Stopping mid-task (as on Ctrl-C or a failed run) kills the server and its task. SIGKILL is
    # delivered asynchronously and the task is not our child (no waitpid): under load it can take a
    # moment to die, so the test waits for it (a task that survives fails after 10 s).
    assert launcher.wait(timeout=10) != 0
    _wait_for(lambda: not _alive(task), timeout=10)
    assert not folder.exists()
    _wait_for(lambda: _processes_mentioning(str(folder)) == [], timeout=10)


def test_a_dropped_server_stops_and_its_functions_go_warm_to_the_default_server(tmp_path):
    """What run-local does when its cache answers validate: the validate server, started before
    the cache was asked, stops, and validate's task is forked from the tasks server instead."""
    with warm_interpreters(tmp_path / "state", profiles={"validate": ("probe",), "bare": ("",)}) as warm:
        dropped = warm.servers["validate"]
        warm.drop("validate")
        assert dropped.poll() is not None and "validate" not in warm.servers
        proc = _run(_task_command(warm.python, tmp_path, "plain"), tmp_path)
        assert proc.returncode == 0 and "cold interpreter" not in proc.stderr, proc.stderr
        task = json.loads((tmp_path / "probe.json").read_text())
        assert task["tensorflow"] == []
        assert f"forked {task['pid']} for probe" in (warm.folder / "bare.log").read_text()


def test_long_or_unsafe_state_path_puts_sockets_under_tmp(tmp_path):
    # AF_UNIX paths stop at 108 bytes, and the launcher's path is pasted into a `sh -c` script.
    state = tmp_path / ("a space and a long name " * 4)
    with warm_interpreters(state, profiles={"bare": ("",)}) as warm:
        assert warm.folder is not None and not str(warm.folder).startswith(str(state))
        proc = _run(_task_command(warm.python, tmp_path, "plain"), tmp_path)
        assert proc.returncode == 0 and "cold interpreter" not in proc.stderr, proc.stderr
    assert not warm.folder.exists()


def test_a_failing_start_runs_cold_instead(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(warm_start.TIMEOUT_ENV, "not-a-number")
    with warm_interpreters(tmp_path, profiles={"bare": ("",)}) as warm:
        assert warm.python is None
    assert "kfkit warm start: not used" in capsys.readouterr().err
    assert warm.folder is not None and not warm.folder.exists()
    assert _processes_mentioning(str(warm.folder)) == []


def test_disabled_by_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(warm_start.WARM_START_ENV, "0")
    with warm_interpreters(tmp_path) as warm:
        assert warm.python is None and warm.servers == {}
    real = sys.executable
    with WarmStart().as_sys_executable():
        assert sys.executable == real


def test_sys_executable_points_at_the_launcher_only_inside(bare_warm):
    real = sys.executable
    with bare_warm.as_sys_executable():
        assert sys.executable == bare_warm.python
    assert sys.executable == real


def _launcher_for(tmp_path: Path, socket_path: Path, timeout: float = 30.0) -> str:
    return str(warm_start.write_launcher(tmp_path, socket_path, ready_timeout_s=timeout))


def test_no_server_falls_back_to_a_cold_interpreter(tmp_path):
    launcher = _launcher_for(tmp_path, tmp_path / "nobody-listens.sock")
    proc = _run(_task_command(launcher, tmp_path, "plain"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "running this task in a cold interpreter" in proc.stderr
    info = json.loads((tmp_path / "probe.json").read_text())
    assert info["probe_var"] == "from-the-task" and info["cwd"] == str(tmp_path)


def _fake_server(path: Path, behaviour: str, seen: list[bytes]) -> threading.Thread:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        if behaviour == "silent":
            # Never says ready; records whatever the launcher sends after giving up.
            conn.settimeout(10)
            try:
                while chunk := conn.recv(65536):
                    seen.append(chunk)
            except OSError:
                pass
        conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_server_that_dies_before_ready_falls_back(tmp_path):
    path = tmp_path / "dies.sock"
    _fake_server(path, "close", [])
    proc = _run(_task_command(_launcher_for(tmp_path, path), tmp_path, "plain"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "cold interpreter" in proc.stderr
    assert (tmp_path / "probe.json").exists()


def test_slow_server_times_out_to_cold_and_never_gets_go(tmp_path):
    path = tmp_path / "slow.sock"
    seen: list[bytes] = []
    thread = _fake_server(path, "silent", seen)
    proc = _run(_task_command(_launcher_for(tmp_path, path, timeout=0.5), tmp_path, "plain"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "not ready within 0.5s" in proc.stderr
    thread.join(15)
    # The request arrived, but no "go": the task ran exactly once, cold.
    assert seen and b"go\n" not in b"".join(seen)


def test_non_task_commands_go_straight_to_the_real_interpreter(bare_warm):
    proc = subprocess.run(
        [bare_warm.python, "-c", "import sys; print(sys.executable)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == sys.executable
    assert "cold" not in proc.stderr


def test_tasks_server_children_never_have_tensorflow(tmp_path):
    """The server for ingest/train/evaluate/push pre-imports scikit-learn, never TensorFlow."""
    with warm_interpreters(tmp_path / "state", profiles={"tasks": ("",)}) as warm:
        proc = _run(_task_command(warm.python, tmp_path, "plain"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "cold interpreter" not in proc.stderr
    info = json.loads((tmp_path / "probe.json").read_text())
    assert info["sklearn_preloaded"] is True  # it did come from the warm server
    assert info["tensorflow"] == []


# --- the whole pipeline, warm and cold ------------------------------------------------------


def _files(run_root: str, model_name: str) -> dict[str, bytes]:
    """Every artifact file of a run; the model name (which differs on purpose) made neutral.
    Paths from the task folder on (kfp.local names its run folder by the clock)."""
    root = Path(run_root)
    return {
        str(Path(*p.relative_to(root).parts[1:])): p.read_bytes().replace(model_name.encode(), b"MODEL")
        for p in sorted(root.rglob("*"))
        # The manifest names the run; its signature is over those bytes, so it differs with it.
        if p.is_file() and p.name not in ("executor_output.json", "kfkit-model.json", "kfkit-model.sig")
    }


@pytest.fixture(scope="module")
def warm_and_cold(store_env):
    documents = {}
    for mode in ("0", "1"):
        env = dict(store_env, KFKIT_WARM_START=mode)
        proc, document = run_pipeline(env, f"data_uri={PENGUINS}", f"model_name=penguins-warm-{mode}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        documents[mode] = document
    return documents


@pytest.mark.slow
def test_warm_and_cold_runs_give_identical_outputs(warm_and_cold, kfkit_home):
    """Fork safety after TensorFlow's import: every artifact of a warm run (statistics,
    schema, anomalies, report, model, blessing) equals the cold run's bytes."""
    cold, warm = warm_and_cold["0"], warm_and_cold["1"]
    assert "cold interpreter" not in Path(warm["log"]).read_text()
    assert "warm_launcher" not in Path(cold["log"]).read_text()
    assert warm["status"] == cold["status"] == "SUCCEEDED"
    assert warm["dataset_fingerprint"] == cold["dataset_fingerprint"]
    assert warm["validation"] == cold["validation"]
    assert warm["metrics"] == cold["metrics"]
    assert warm["blessed"] == cold["blessed"] == {"evaluate": True}
    assert warm["pushed"]["push"]["sha256"] == cold["pushed"]["push"]["sha256"]
    cold_files = _files(cold["run_root"], "penguins-warm-0")
    warm_files = _files(warm["run_root"], "penguins-warm-1")
    assert "validate/statistics/train.pb" in warm_files and "train/model/model.joblib" in warm_files
    assert set(warm_files) == set(cold_files)
    for name in cold_files:
        assert warm_files[name] == cold_files[name], name
    # Nothing left running, no socket folder left behind.
    assert _processes_mentioning(str(kfkit_home / "warm")) == []
    assert not any((kfkit_home / "warm").iterdir())


@pytest.mark.slow
def test_warm_validation_failure_ends_with_one_line(warm_and_cold, store_env, tmp_path):
    """Bad data against the schema the warm run learned: validate (forked after TensorFlow's
    import) fails with the one clear line, recorded through KFKIT_ERROR_FILE."""
    import pandas as pd

    frame = pd.read_csv(PENGUINS, na_values=["NA"])
    frame["bill_length_mm"] = frame["bill_length_mm"].astype(object)
    frame.loc[frame.index % 2 == 0, "bill_length_mm"] = "not measured"
    bad = tmp_path / "flooded.csv"
    frame.to_csv(bad, index=False)
    env = dict(store_env, KFKIT_WARM_START="1")
    proc, document = run_pipeline(env, f"data_uri={bad}", "model_name=penguins-warm-1")
    line = error_line(proc)
    assert line.startswith("kfkit: error: validate: data validation failed") and "bill_length_mm" in line
    assert document["tasks"]["validate"] == "FAILED" and document["pushed"] == {}
    assert "cold interpreter" not in Path(document["log"]).read_text()
    assert _processes_mentioning(str(Path(store_env["KFKIT_HOME"]) / "warm")) == []


def test_repo_is_importable_from_launcher_python():
    # The launcher runs with -I -S (stdlib only): it must not import kfkit or anything else.
    source = (REPO / "sdk" / "kfkit" / "warm_launcher.py").read_text()
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "json", "os", "signal", "socket", "struct", "sys"}


def test_a_refused_parameter_stops_the_servers_started_before_the_check(tmp_path):
    """run-local starts the warm servers before the components' parameter checks (their imports
    overlap); a check that refuses still ends with one line, exit 1, and no server left."""
    home = tmp_path / "home"
    env = dict(os.environ, KFKIT_HOME=str(home), KFKIT_WARM_START="1")
    args = ["run-local", "--config", "configs/penguins.yaml", "--param", "estimator=svm"]
    proc = subprocess.run(
        [KFKIT, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert error_line(proc).startswith("kfkit: error: train: The 'estimator' parameter of train")
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [error_line(proc)]
    # The servers did start (their folder is made only then) and are gone with their run folder.
    assert (home / "warm").is_dir()
    assert list((home / "warm").iterdir()) == []
    assert _processes_mentioning(str(home / "warm")) == []
    assert not (home / "pipeline_root").exists()
