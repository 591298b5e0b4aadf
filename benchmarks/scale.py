"""Benchmark (not a test): kfkit's training pipeline on a loans-like table of 1M to 10M rows, beside
the floors measured in the same run.

For each size it

1. generates the table (seeded, cached under ``benchmarks/.data/`` by rows, seed and format;
   written in chunks, so 10M rows never sit in memory at once): 20 columns like Lending Club's,
   12 numeric with 2% missing (four of them written as quoted money strings, "16,800.00"), an
   integer, 5 categoricals, an ISO date (``issue_d``) and a binary label (``loan_status``) that
   depends on several features, so a model beats the majority class;
2. measures the floors, each in a fresh subprocess whose process tree is sampled for memory:
   ``pyarrow.csv.read_csv`` of the file (``pyarrow.parquet.read_table`` for Parquet), and TFDV's
   statistics of the same data on Arrow record batches (TFDV's own partial-statistics and merge
   functions, as ``generate_statistics_from_dataframe`` uses them; dates read as text, since TFDV
   refuses Arrow dates);
3. runs ``kfkit run-local`` on the file (label ``loan_status``, its own model name per run; extra
   parameters with ``--param name=value``, passed through as they are), sampling the resident
   memory of the command and all its descendants from /proc every 50 ms;
4. prints and writes ``benchmarks/results/scale.md``: per-task seconds (from the run's lineage),
   the peak memory of the process tree and the task it happened in, the floors, and the ratios
   the scale issue sets as targets (ingest within 3x and validate within 4x of the Arrow parse,
   the whole pipeline within 15 s at 1M rows, peak under 4 GB at 10M rows).

``--tfx`` also runs the TFX anchor (``/work/shared/anchors/tfx``, ``--validate-only``:
CsvExampleGen, StatisticsGen, SchemaGen, ExampleValidator) on the same CSV for comparison.

    .venv/bin/python benchmarks/scale.py [--rows 1000000,10000000] [--format csv|parquet]
        [--seed 7] [--param max_train_rows=500000 ...] [--tfx] [--generate-only]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "benchmarks" / ".data"
RESULTS = REPO / "benchmarks" / "results" / "scale.md"
TFX_ANCHOR = Path("/work/shared/anchors/tfx")
LABEL = "loan_status"
CHUNK_ROWS = 250_000  # rows generated and written at a time: bounds the generator's memory
# In the cached files' names: change it whenever the generator (or CHUNK_ROWS, which decides each
# chunk's random stream) changes what a seed produces, so that no stale file is reused.
GENERATOR_VERSION = 1
PIPELINE_TARGET_S = 15.0  # at 1M rows
INGEST_TARGET_RATIO = 3.0  # ingest / Arrow parse
VALIDATE_TARGET_RATIO = 4.0  # validate / Arrow parse
PEAK_TARGET_BYTES = 4 * 1024**3  # at 10M rows
SAMPLE_EVERY_S = 0.05
# Reading PSS made the kernel walk page tables: 0.12-0.14 s of CPU for 5 GB of processes here.
PSS_EVERY_S = 2.0
ARROW_FLOOR_REPEATS = 3  # a second or two each at 1M rows: cheap enough to take a median
HEARTBEAT_S = 30.0
GB = 1024**3
# Batches for the TFDV floor: about 100k rows of this table. Per-batch overhead made 1 MB batches
# (Arrow's default, ~7k rows) 40% slower here; memory stays bounded by a batch either way.
TFDV_BATCH_BYTES = 16 * 1024**2
TFDV_BATCH_ROWS = 100_000

# -- the table --------------------------------------------------------------------------------

GRADES = ["A", "B", "C", "D", "E", "F", "G"]
GRADE_SHARES = [0.17, 0.29, 0.28, 0.15, 0.07, 0.03, 0.01]
HOME_OWNERSHIP = ["MORTGAGE", "RENT", "OWN", "OTHER"]
HOME_SHARES = [0.49, 0.40, 0.10, 0.01]
PURPOSES = [
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "other",
    "major_purchase",
    "small_business",
    "car",
    "medical",
    "moving",
    "vacation",
    "house",
    "wedding",
    "renewable_energy",
    "educational",
]
PURPOSE_SHARES = np.array([58, 22, 6, 5, 2.2, 1.2, 1.1, 1.1, 0.7, 0.6, 0.5, 0.3, 0.1, 0.1])
STATES = (
    "AK AL AR AZ CA CO CT DC DE FL GA HI IA ID IL IN KS KY LA MA MD ME MI MN MO MS MT NC ND NE NH NJ NM "
    "NV NY OH OK OR PA RI SC SD TN TX UT VA VT WA WI WV WY"
).split()
VERIFICATION = ["Not Verified", "Source Verified", "Verified"]
LABEL_VALUES = ["Fully Paid", "Charged Off"]
FIRST_ISSUE_DAY = np.datetime64("2012-01-01", "D")
ISSUE_DAYS = int((np.datetime64("2019-01-01", "D") - FIRST_ISSUE_DAY).astype(np.int64))
MISSING_SHARE = 0.02
# Money columns are written as text with thousands separators, as exported by spreadsheets:
# column -> (step in dollars, largest value). Each is drawn as a multiple of its step, so the
# texts are formatted once per distinct value and gathered by index (no per-row Python).
MONEY = {
    "loan_amnt": (25, 40_000),
    "funded_amnt": (25, 40_000),
    "annual_inc": (100, 1_000_000),
    "revol_bal": (1, 500_000),
}
NUMERIC = [
    "loan_amnt",
    "funded_amnt",
    "int_rate",
    "installment",
    "annual_inc",
    "dti",
    "revol_bal",
    "revol_util",
    "total_acc",
    "mort_acc",
    "pub_rec_bankruptcies",
    "fico_range_low",
]
CATEGORICAL = ["grade", "home_ownership", "purpose", "addr_state", "verification_status"]
COLUMNS = [*NUMERIC[:6], "grade", "home_ownership", *NUMERIC[6:], "open_acc", "purpose", "addr_state"]
COLUMNS += ["verification_status", "issue_d", LABEL]


@functools.cache
def _money_dictionary(step: int, largest: int) -> pa.Array:
    """Texts "0.00", "25.00", ..., "40,000.00" for every multiple of ``step`` up to ``largest``."""
    return pa.array([f"{dollars:,}.00" for dollars in range(0, largest + 1, step)], pa.string())


def _gather(values: list[str] | pa.Array, index: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    dictionary = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    return dictionary.take(pa.array(index, mask=missing))


def loans_chunk(seed: int, chunk: int, rows: int) -> pa.Table:
    """Rows ``chunk * CHUNK_ROWS ...`` of the table: the same seed and chunk give the same rows."""
    rng = np.random.default_rng([seed, chunk])
    grade = rng.choice(len(GRADES), rows, p=GRADE_SHARES)
    home = rng.choice(len(HOME_OWNERSHIP), rows, p=HOME_SHARES)
    purpose = rng.choice(len(PURPOSES), rows, p=PURPOSE_SHARES / PURPOSE_SHARES.sum())
    state = rng.integers(0, len(STATES), rows)
    verification = rng.integers(0, len(VERIFICATION), rows)
    issue_day = FIRST_ISSUE_DAY + rng.integers(0, ISSUE_DAYS, rows).astype("timedelta64[D]")

    loan_steps = np.clip(np.rint(np.exp(rng.normal(9.4, 0.6, rows)) / 25), 40, 1600).astype(np.int64)
    funded_steps = np.where(rng.random(rows) < 0.95, loan_steps, loan_steps - rng.integers(0, 40, rows))
    income_steps = np.clip(np.rint(np.exp(rng.normal(11.0, 0.5, rows)) / 100), 40, 10_000).astype(np.int64)
    revol_bal = np.clip(np.rint(np.exp(rng.normal(9.3, 1.0, rows))), 0, 500_000).astype(np.int64)
    int_rate = np.clip(6.5 + 3.8 * grade + rng.normal(0, 1.2, rows), 5.3, 31.0).round(2)
    monthly = int_rate / 1200
    installment = (loan_steps * 25 * monthly / (1 - (1 + monthly) ** -36)).round(2)
    dti = np.clip(rng.normal(17 + 0.8 * grade, 8, rows), 0, 45).round(2)
    revol_util = (rng.beta(2, 2, rows) * 100).round(1)
    open_acc = rng.poisson(11, rows) + 1
    total_acc = open_acc + rng.poisson(12, rows)
    mort_acc = rng.poisson(np.where(home == 0, 2.5, 0.5))
    bankruptcies = rng.binomial(2, 0.06, rows)
    fico = np.clip(np.rint((750 - 14 * grade + rng.normal(0, 20, rows)) / 5) * 5, 610, 845)

    # Charged off more often with a worse grade, a higher debt-to-income, a lower income and FICO,
    # renting and small businesses: about 18% of rows are charged off, and the best possible
    # model (these very probabilities) is right on about 91%, so a linear model clearly beats
    # "always Fully Paid" (82%) while none is perfect.
    logit = 1.5 * (
        -3.5
        + 0.75 * grade
        + 0.09 * (dti - 18)
        - 1.2 * np.log(income_steps * 100 / 65_000)
        - 0.03 * (fico - 700)
        + 0.5 * (home == 1)
        + 0.8 * (purpose == 5)
        + 0.3 * (loan_steps * 25 / 10_000)
    )
    charged_off = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    def missing() -> np.ndarray:
        return rng.random(rows) < MISSING_SHARE

    columns: dict[str, pa.Array] = {
        "loan_amnt": _gather(_money_dictionary(*MONEY["loan_amnt"]), loan_steps, missing()),
        "funded_amnt": _gather(_money_dictionary(*MONEY["funded_amnt"]), funded_steps, missing()),
        "int_rate": pa.array(int_rate, mask=missing()),
        "installment": pa.array(installment, mask=missing()),
        "annual_inc": _gather(_money_dictionary(*MONEY["annual_inc"]), income_steps, missing()),
        "dti": pa.array(dti, mask=missing()),
        "grade": _gather(GRADES, grade),
        "home_ownership": _gather(HOME_OWNERSHIP, home),
        "revol_bal": _gather(_money_dictionary(*MONEY["revol_bal"]), revol_bal, missing()),
        "revol_util": pa.array(revol_util, mask=missing()),
        "total_acc": pa.array(total_acc.astype(np.float64), mask=missing()),
        "mort_acc": pa.array(mort_acc.astype(np.float64), mask=missing()),
        "pub_rec_bankruptcies": pa.array(bankruptcies.astype(np.float64), mask=missing()),
        "fico_range_low": pa.array(fico, mask=missing()),
        "open_acc": pa.array(open_acc.astype(np.int64)),
        "purpose": _gather(PURPOSES, purpose),
        "addr_state": _gather(STATES, state),
        "verification_status": _gather(VERIFICATION, verification),
        "issue_d": pa.array(issue_day),
        LABEL: _gather(LABEL_VALUES, charged_off),
    }
    return pa.table({name: columns[name] for name in COLUMNS})


def data_file(rows: int, seed: int, fmt: str, folder: Path = DATA_DIR) -> Path:
    suffix = "csv" if fmt == "csv" else "parquet"
    return folder / f"loans-v{GENERATOR_VERSION}-{rows}-seed{seed}.{suffix}"


def generate(
    rows: int,
    seed: int,
    fmt: str = "csv",
    folder: Path = DATA_DIR,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """The table's file, generated unless already cached (written under a temporary name and
    renamed when complete, so an interrupted run leaves no half file to be reused)."""
    path = data_file(rows, seed, fmt, folder)
    if path.exists():
        return path
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    writer = None
    try:
        for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
            table = loans_chunk(seed, chunk, min(CHUNK_ROWS, rows - start))
            if writer is None:
                writer = (
                    pa_csv.CSVWriter(str(partial), table.schema)
                    if fmt == "csv"
                    else pq.ParquetWriter(str(partial), table.schema)
                )
            writer.write_table(table)
            if progress:
                progress(min(start + CHUNK_ROWS, rows), rows)
    finally:
        if writer is not None:
            writer.close()
    partial.rename(path)
    return path


# -- memory of a process tree -----------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:  # ended while being read
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and its descendants: each process's RSS, summed."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                total += int(statm.read().split()[1]) * _PAGE
        except OSError:
            continue
    return total


def tree_pss(root: int) -> int:
    """Proportional set size of ``root`` and its descendants: a page shared by n processes counts
    1/n in each, so the sum is what the tree holds (slower to read than RSS)."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
                for line in rollup:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


@dataclass
class TreeMemory:
    """Samples a process tree's memory in a thread: the sum of RSS every SAMPLE_EVERY_S seconds,
    and the sum of PSS every PSS_EVERY_S (the kernel walks each process's page tables for it, too
    costly for every sample). The RSS sum counts pages shared between processes (a task forked
    from its warm server shares that server's imported libraries) once per process: an upper
    bound. The PSS sum counts them once, but can miss a peak shorter than its interval."""

    pid: int
    # Called every HEARTBEAT_S with (seconds so far, bytes now): a sign of life in long runs.
    heartbeat: Callable[[float, int], None] | None = None
    samples: list[tuple[float, int]] = field(default_factory=list)  # (epoch seconds, RSS sum)
    pss_samples: list[tuple[float, int]] = field(default_factory=list)  # (epoch seconds, PSS sum)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        started = last_beat = last_pss = time.time()
        while not self._stop.is_set():
            now = time.time()
            self.samples.append((now, tree_rss(self.pid)))
            if now - last_pss >= PSS_EVERY_S or len(self.samples) == 1:
                self.pss_samples.append((now, tree_pss(self.pid)))
                last_pss = now
            if self.heartbeat and now - last_beat >= HEARTBEAT_S:
                self.heartbeat(now - started, self.samples[-1][1])
                last_beat = now
            self._stop.wait(SAMPLE_EVERY_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float = 0.0, end: float = float("inf"), pss: bool = False) -> tuple[float, int]:
        """(when, bytes) of the largest sample between ``start`` and ``end``."""
        inside = [s for s in (self.pss_samples if pss else self.samples) if start <= s[0] <= end]
        return max(inside, key=lambda s: s[1]) if inside else (0.0, 0)


def run_measured(
    args: list[str], env: dict[str, str], echo: Callable[[str], None] | None, may_fail: bool = False
) -> tuple[str, TreeMemory, float]:
    """Run a command, sampling its tree's memory; stderr lines go to ``echo`` as they come.
    Returns (stdout, the samples, wall seconds). A failure raises unless ``may_fail``."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=out, stderr=subprocess.PIPE, text=True)
        heartbeat = (lambda s, now: echo(f"... {s:.0f} s, process tree {_gb(now)} GB now")) if echo else None
        memory = TreeMemory(proc.pid, heartbeat)
        tail: list[str] = []
        assert proc.stderr is not None
        for line in proc.stderr:
            tail = [*tail[-40:], line.rstrip()]
            if echo:
                echo(line.rstrip())
        proc.wait()
        memory.stop()
        wall = time.perf_counter() - started
        out.seek(0)
        stdout = out.read().decode()
    if proc.returncode != 0 and not may_fail:
        raise SystemExit(f"{' '.join(args[:4])} ... failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return stdout, memory, wall


# -- floors (each in a fresh interpreter: python benchmarks/scale.py --floor KIND FILE) --------


def _arrow_parse(path: Path) -> pa.Table:
    if path.suffix == ".csv":
        import pyarrow.csv as pa_csv

        return pa_csv.read_csv(path)
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _text_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The file's record batches with dates as ISO text (TFDV 1.16 refuses Arrow date types)."""
    if path.suffix == ".csv":
        import pyarrow.csv as pa_csv

        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=TFDV_BATCH_BYTES),
            convert_options=pa_csv.ConvertOptions(column_types={"issue_d": pa.string()}),
        )
        yield from reader
        return
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=TFDV_BATCH_ROWS):
        columns = [
            c.cast(pa.string()) if name == "issue_d" else c
            for name, c in zip(batch.schema.names, batch.columns, strict=True)
        ]
        yield pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def floor_main(kind: str, path: Path) -> None:
    """Prints one JSON line: the seconds of each step (imports excluded from the floor itself)."""
    started = time.perf_counter()
    if kind == "arrow":
        table = _arrow_parse(path)
        print(json.dumps({"seconds": time.perf_counter() - started, "rows": table.num_rows}))
        return
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics import stats_impl
    from tfx_bsl.arrow import table_util

    imported = time.perf_counter()
    options = tfdv.StatsOptions()
    generators = stats_impl.get_generators(options, in_memory=True)
    merged, rows = None, 0
    # Partial statistics per batch, merged as they come: what generate_statistics_from_dataframe
    # does per process, with memory bounded by a batch instead of the table.
    for batch in _text_batches(path):
        rows += batch.num_rows
        partial = stats_impl.generate_partial_statistics_in_memory(
            table_util.CanonicalizeRecordBatch(batch), options, generators
        )
        merged = (
            partial
            if merged is None
            else [
                gen.merge_accumulators([a, b]) for gen, a, b in zip(generators, merged, partial, strict=True)
            ]
        )
    statistics = stats_impl.extract_statistics_output(merged, generators)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "seconds": done - imported,
                "import_seconds": imported - started,
                "rows": rows,
                "examples": statistics.datasets[0].num_examples,
            }
        )
    )


@dataclass
class Floor:
    seconds: float  # the work itself, imports excluded
    wall: float  # the whole subprocess: interpreter start and imports too
    peak_bytes: int
    extra: dict[str, Any]


def measure_floor(kind: str, path: Path, repeats: int = 1) -> Floor:
    """The floor's median seconds over ``repeats`` fresh subprocesses (the machine is shared: one
    busy moment should not set the yardstick), and the largest peak among them."""
    floors = []
    for _ in range(repeats):
        stdout, memory, wall = run_measured(
            [sys.executable, __file__, "--floor", kind, str(path)], dict(os.environ), None
        )
        result = json.loads(stdout.strip().splitlines()[-1])
        result["every_run_seconds"] = []
        floors.append(Floor(result.pop("seconds"), wall, memory.peak()[1], result))
    floors.sort(key=lambda floor: floor.seconds)
    median = floors[len(floors) // 2]
    median.extra["every_run_seconds"] = [round(floor.seconds, 2) for floor in floors]
    median.peak_bytes = max(floor.peak_bytes for floor in floors)
    return median


# -- the pipeline -----------------------------------------------------------------------------


@dataclass
class Peak:
    bytes: int
    during: str  # the task running at the time, or "start-up" / "between tasks"
    per_task: dict[str, int]  # task -> the largest sample while it ran


@dataclass
class PipelineRun:
    summary: dict[str, Any]
    wall: float
    rss: Peak  # the sum of RSS: an upper bound
    pss: Peak  # the sum of PSS: shared pages once
    task_seconds: dict[str, float]


def _peak(memory: TreeMemory, spans: dict[str, tuple[float, float]], pss: bool) -> Peak:
    when, peak = memory.peak(pss=pss)
    during = [name for name, (start, end) in spans.items() if start <= when <= end]
    if during:
        where = during[-1]
    elif not spans:
        where = "no task ran"
    elif when < min(start for start, _ in spans.values()):
        where = "start-up"
    else:
        where = "between tasks"
    per_task = {name: memory.peak(start, end, pss=pss)[1] for name, (start, end) in spans.items()}
    return Peak(peak, where, per_task)


def run_pipeline(path: Path, parameters: dict[str, str], echo: Callable[[str], None]) -> PipelineRun:
    """``kfkit run-local --json`` on the file, in a subprocess whose tree is sampled; per-task
    seconds and time spans from the run's lineage records."""
    from kfkit.metadata import open_store
    from kfkit.metadata.store import CONTAINER_EXECUTION

    args = [sys.executable, "-m", "kfkit.cli", "run-local", "--json"]
    for name, value in parameters.items():
        args += ["--param", f"{name}={value}"]
    last_lines: list[str] = []

    def echo_and_keep(line: str) -> None:
        last_lines[:] = [*last_lines[-1:], line]
        echo("    " + line)

    # A failed run is a result too (at 10M rows, how far it got and how much memory it took).
    stdout, memory, wall = run_measured(args, dict(os.environ), echo_and_keep, may_fail=True)
    try:
        summary = json.loads(stdout)
    except json.JSONDecodeError:  # the command itself died (killed, out of memory) before its summary
        why = last_lines[-1] if last_lines else "no output"
        summary = {"status": "FAILED", "error": why, "outcome": "failed", "tasks": {}, "seconds": wall}
    records = []
    if summary.get("run_id"):
        store = open_store()
        try:
            records = [t for t in store.run_tasks(summary["run_id"]) if t.type == CONTAINER_EXECUTION]
        finally:
            store.close()
    spans = {t.task_name: (t.created, t.updated) for t in records}
    seconds = summary.get("task_seconds", {})
    # In pipeline order (the JSON document's keys are sorted).
    ordered = {task: seconds[task] for task in summary["tasks"] if task in seconds}
    return PipelineRun(summary, wall, _peak(memory, spans, False), _peak(memory, spans, True), ordered)


# -- the TFX anchor ---------------------------------------------------------------------------


def run_tfx_anchor(path: Path, echo: Callable[[str], None]) -> dict[str, str]:
    """The anchor's ``--validate-only`` run on the same CSV: its own wall time and peak lines."""
    script = TFX_ANCHOR / "run.sh"
    proc = subprocess.run(
        [str(script), str(path), LABEL, "--validate-only"], capture_output=True, text=True, check=False
    )
    for line in proc.stdout.splitlines():
        echo("    tfx: " + line)
    if proc.returncode != 0:
        echo("    tfx anchor failed: " + (proc.stderr.strip().splitlines() or ["(no output)"])[-1])
        return {}
    found: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        for word in line.replace("(", " ").split():
            key, sep, value = word.partition("=")
            if sep and key in ("wall_s", "peak_rss_mb", "tree_peak_rss_mb", "mode"):
                found[key] = value
    return found


# -- the report -------------------------------------------------------------------------------


@dataclass
class SizeResult:
    rows: int
    path: Path
    generate_seconds: float | None  # None: the file came from the cache
    arrow: Floor
    tfdv: Floor
    run: PipelineRun
    tfx: dict[str, str] = field(default_factory=dict)


def _gb(value: int) -> str:
    return f"{value / GB:.2f}"


def _seconds_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"  # "-": the task did not run


def _ratio_cell(value: float | None, floor: float) -> str:
    return "-" if value is None else f"{value / floor:.1f}"


def _pss_cell(value: int) -> str:
    return _gb(value) if value else "-"  # no PSS sample fell within a task shorter than PSS_EVERY_S


def _against(value: float, limit: float, unit: str) -> str:
    """ "23.8x (misses <= 3x)": a measured value beside its target."""
    return f"{value:.1f}{unit} ({'meets' if value <= limit else 'misses'} <= {limit:g}{unit})"


def report(results: list[SizeResult], parameters: dict[str, str], fmt: str, seed: int, machine: str) -> str:
    tasks = list(max((r.run.summary["tasks"] for r in results), key=len))
    head = "| | " + " | ".join(f"{r.rows:,} rows" for r in results) + " |"
    rule = "|---|" + "---:|" * len(results)

    def row(label: str, cells: list[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        + ", ".join(f"{r.rows:,}" for r in results)
        + f" rows, {fmt.upper()}, commit {_commit()}",
        "",
        f"Machine: {machine}.",
        "",
        f"Data: `benchmarks/scale.py` generator, seed {seed}, 20 columns (12 numeric with 2% missing, four "
        'of them quoted money strings such as "16,800.00"; an integer; 5 categoricals; an ISO date; the '
        f'label `{LABEL}`, about 18% "Charged Off").',
        "",
        "Parameters of `kfkit run-local`: "
        + ", ".join(f"`{k}={v}`" for k, v in parameters.items() if k not in ("data_uri", "model_name"))
        + " (each run its own `model_name`; `data_uri` the generated file).",
        "",
        head,
        rule,
        row("file size MB", [f"{r.path.stat().st_size / 1e6:.0f}" for r in results]),
    ]
    for task in tasks:
        lines.append(row(f"{task} s", [_seconds_cell(r.run.task_seconds.get(task)) for r in results]))
    lines += [
        row(
            "**pipeline s** (the run: from starting the task servers to the last task's end)",
            [f"**{r.run.summary['seconds']:.1f}**" for r in results],
        ),
        row(
            "... outside the tasks' records s (servers' imports, process starts, cache stores)",
            [f"{r.run.summary['seconds'] - sum(r.run.task_seconds.values()):.1f}" for r in results],
        ),
        row("`kfkit run-local` command s (CLI start to exit)", [f"{r.run.wall:.1f}" for r in results]),
        row("outcome", [r.run.summary["outcome"] for r in results]),
        row("**peak memory GB, process tree, sum of RSS**", [f"**{_gb(r.run.rss.bytes)}**" for r in results]),
        row("... during", [r.run.rss.during for r in results]),
        row("**peak memory GB, process tree, sum of PSS**", [f"**{_gb(r.run.pss.bytes)}**" for r in results]),
        row("... during", [r.run.pss.during for r in results]),
    ]
    for task in tasks:
        lines.append(
            row(
                f"peak GB during {task}, RSS / PSS",
                [
                    f"{_gb(r.run.rss.per_task.get(task, 0))} / {_pss_cell(r.run.pss.per_task.get(task, 0))}"
                    for r in results
                ],
            )
        )
    lines += [
        row(
            f"floor: Arrow {'parse' if fmt == 'csv' else 'read'} s, median of {ARROW_FLOOR_REPEATS}"
            f" (`{'pyarrow.csv.read_csv' if fmt == 'csv' else 'pyarrow.parquet.read_table'}`)",
            [f"{r.arrow.seconds:.2f}" for r in results],
        ),
        row(
            "... every run s",
            [" / ".join(f"{s:.2f}" for s in r.arrow.extra["every_run_seconds"]) for r in results],
        ),
        row("... its process peak GB", [_gb(r.arrow.peak_bytes) for r in results]),
        row("floor: TFDV statistics on Arrow batches s", [f"{r.tfdv.seconds:.2f}" for r in results]),
        row("... plus TFDV import s", [f"{r.tfdv.extra.get('import_seconds', 0):.1f}" for r in results]),
        row("... its process peak GB", [_gb(r.tfdv.peak_bytes) for r in results]),
        row(
            f"ingest / Arrow parse (target <= {INGEST_TARGET_RATIO:.0f})",
            [_ratio_cell(r.run.task_seconds.get("ingest"), r.arrow.seconds) for r in results],
        ),
        row(
            f"validate / Arrow parse (target <= {VALIDATE_TARGET_RATIO:.0f})",
            [_ratio_cell(r.run.task_seconds.get("validate"), r.arrow.seconds) for r in results],
        ),
        row(
            "validate / TFDV statistics floor",
            [_ratio_cell(r.run.task_seconds.get("validate"), r.tfdv.seconds) for r in results],
        ),
        row(
            f"pipeline / {PIPELINE_TARGET_S:.0f} s target (at 1M rows)",
            [f"{r.run.summary['seconds'] / PIPELINE_TARGET_S:.2f}" for r in results],
        ),
        row(
            f"peak (RSS sum) / {PEAK_TARGET_BYTES // GB} GB target (at 10M rows)",
            [f"{r.run.rss.bytes / PEAK_TARGET_BYTES:.2f}" for r in results],
        ),
        row(
            "generation s (blank: cached file)",
            [f"{r.generate_seconds:.1f}" if r.generate_seconds else "" for r in results],
        ),
    ]
    if any(r.tfx for r in results):
        lines += [
            row("TFX anchor `--validate-only` wall s", [r.tfx.get("wall_s", "") for r in results]),
            row("TFX anchor tree peak MB", [r.tfx.get("tree_peak_rss_mb", "") for r in results]),
        ]
    lines += ["", "Against the scale issue's targets:", ""]
    for r in results:
        parts = []
        if "ingest" in r.run.task_seconds:
            ingest = r.run.task_seconds["ingest"] / r.arrow.seconds
            parts.append(f"ingest {_against(ingest, INGEST_TARGET_RATIO, 'x')} the Arrow parse")
        if "validate" in r.run.task_seconds:
            validate = r.run.task_seconds["validate"] / r.arrow.seconds
            parts.append(f"validate {_against(validate, VALIDATE_TARGET_RATIO, 'x')}")
        if r.rows == 1_000_000:
            parts.append(f"pipeline {_against(r.run.summary['seconds'], PIPELINE_TARGET_S, ' s')}")
        if r.rows >= 10_000_000:
            parts.append(f"peak {_against(r.run.rss.bytes / GB, PEAK_TARGET_BYTES / GB, ' GB')} (sum of RSS)")
            parts.append(f"{_gb(r.run.pss.bytes)} GB as the sum of PSS")
        if r.run.summary["status"] != "SUCCEEDED":
            parts.insert(0, f"**the run failed**: {str(r.run.summary.get('error')).rstrip('.')}")
        lines.append(f"- {r.rows:,} rows: " + "; ".join(parts) + ".")
    lines += [
        "",
        "How it is measured: task seconds are each task's execution record in the run's lineage "
        "(created to last update); pipeline seconds are `kfkit run-local`'s own measure of the run, "
        "from before its warm task servers start (and its cache plan, with the local cache on) to "
        "the last task's end, so they include the wait for the first task's imports. "
        "Memory is summed over the `kfkit run-local` process and all its "
        f"descendants, read from /proc: RSS every {SAMPLE_EVERY_S * 1000:.0f} ms, where pages shared "
        "between processes (a task forked from its warm server shares the libraries that server "
        "imported) count once per process, so it is an upper bound; and PSS (shared pages split "
        f"between their processes, so counted once) every {PSS_EVERY_S:.0f} s, which can miss a "
        "shorter peak. The local object store was started before the run and is not counted. "
        "Each floor runs in a fresh interpreter, its memory sampled the same way; the TFDV "
        "floor reads the file as Arrow record batches (dates as text, money columns as text, as Arrow "
        "parses them) and computes TFDV's statistics batch by batch with TFDV's own partial-statistics "
        "and merge functions.",
    ]
    return "\n".join(lines) + "\n"


RESULTS_HEADER = """# kfkit at scale: the training pipeline on a synthetic loans table

Written by `benchmarks/scale.py` (`make bench-scale`): one section per run, newest first, so that
a change is measured against the runs before it. Compare ratios rather than seconds across
sections: the machine is shared, and its load at the start is given with each run.
"""


def add_to_results(section: str, results: Path = RESULTS, header: str = RESULTS_HEADER) -> None:
    """Put a run's section first under the results file's header, above the earlier runs."""
    earlier = results.read_text() if results.exists() else ""
    if earlier.startswith(header):
        earlier = earlier[len(header) :]
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(header + "\n" + section + earlier)


def _commit() -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    changed = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    # The results file itself does not change what is measured (the run before wrote into it).
    dirty = [line for line in changed if not line[3:].startswith("benchmarks/results/")]
    return proc.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def _machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores ({model}), {total_kb / 1024**2:.0f} GiB, "
        f"Python {platform.python_version()}, pyarrow {pa.__version__}; "
        f"load average {load:.1f} at the start (shared with other work)"
    )


def progress_bar(what: str, say: Callable[[str], None]) -> Callable[[int, int], None]:
    """A progress line at every tenth of the work: "what [#####.....] 50% (5,000 of 10,000)"."""
    shown = [-1]

    def update(done: int, total: int) -> None:
        tenth = done * 10 // total
        if tenth > shown[0]:
            shown[0] = tenth
            say(f"{what} [{'#' * tenth}{'.' * (10 - tenth)}] {tenth * 10}% ({done:,} of {total:,} rows)")

    return update


def parse_rows(text: str) -> list[int]:
    try:
        rows = [int(float(part)) for part in text.replace("_", "").split(",") if part.strip()]
    except ValueError:
        raise SystemExit(
            f"--rows {text!r}: expected comma-separated row counts, e.g. 1000000,10000000"
        ) from None
    if not rows or any(n < 1 for n in rows):
        raise SystemExit(f"--rows {text!r}: expected positive row counts")
    return rows


def pipeline_parameters(path: Path, rows: int, extra: list[str]) -> dict[str, str]:
    """What a user of such a table runs with; ``--param name=value`` adds or overrides any."""
    parameters = {
        "data_uri": str(path),
        "label_column": LABEL,
        "model_name": f"loans-scale-{rows}-{time.strftime('%H%M%S')}",
        "problem_type": "classification",
        # About 82% of the rows are "Fully Paid", so the floor sits above that; evaluate also
        # requires a margin over the majority-class model.
        "thresholds": json.dumps({"accuracy": 0.85}),
    }
    for pair in extra:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--param {pair!r}: expected name=value")
        parameters[name] = value
    return parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000", help="comma-separated row counts (default 1000000)")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv", dest="fmt")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline parameter"
    )
    parser.add_argument(
        "--tfx", action="store_true", help="also run the TFX anchor (--validate-only) on the CSV"
    )
    parser.add_argument("--generate-only", action="store_true", help="write the data files and stop")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help=f"results file (default {RESULTS.relative_to(REPO)})"
    )
    parser.add_argument("--floor", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        floor_main(args.floor[0], Path(args.floor[1]))
        return
    if args.tfx and args.fmt != "csv":
        raise SystemExit("--tfx needs --format csv (the anchor reads CSV)")

    def say(line: str) -> None:
        print(f"[scale] {line}", file=sys.stderr, flush=True)

    machine = _machine()
    say(machine)
    plans = [
        (rows, pipeline_parameters(data_file(rows, args.seed, args.fmt), rows, args.param))
        for rows in parse_rows(args.rows)
    ]
    if args.generate_only:
        for rows, _ in plans:
            path = data_file(rows, args.seed, args.fmt)
            generate(rows, args.seed, args.fmt, progress=progress_bar(f"generating {path.name}", say))
            say(f"{path.name}: {path.stat().st_size / 1e6:.0f} MB")
        return
    home = tempfile.mkdtemp(prefix="kfkit-scale-")
    os.environ["KFKIT_HOME"] = home  # the runs' store, lineage and artifacts, removed at the end
    for key in ("KFKIT_S3_ENDPOINT", "KFKIT_METADATA_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.pop(key, None)
    from kfkit.local_run import object_store_env

    results: list[SizeResult] = []
    try:
        with object_store_env():
            for rows, parameters in plans:
                path = data_file(rows, args.seed, args.fmt)
                started = time.perf_counter()
                cached = path.exists()
                generate(rows, args.seed, args.fmt, progress=progress_bar(f"generating {path.name}", say))
                generated = None if cached else time.perf_counter() - started
                say(
                    f"{path.name}: {path.stat().st_size / 1e6:.0f} MB"
                    + (" (cached)" if cached else f", generated in {generated:.1f} s")
                )
                say(f"{rows:,} rows: floor 1/2, Arrow {'parse' if args.fmt == 'csv' else 'read'} ...")
                arrow = measure_floor("arrow", path, ARROW_FLOOR_REPEATS)
                every = ", ".join(f"{s:.2f}" for s in arrow.extra["every_run_seconds"])
                say(f"    median {arrow.seconds:.2f} s ({every}), process peak {_gb(arrow.peak_bytes)} GB")
                say(f"{rows:,} rows: floor 2/2, TFDV statistics on Arrow batches ...")
                tfdv = measure_floor("tfdv", path)
                imported = tfdv.extra["import_seconds"]
                say(f"    {tfdv.seconds:.2f} s (+{imported:.1f} s import), peak {_gb(tfdv.peak_bytes)} GB")
                say(f"{rows:,} rows: kfkit run-local ...")
                run = run_pipeline(path, parameters, say)
                if run.summary["status"] != "SUCCEEDED":
                    say(f"    the run FAILED: {run.summary.get('error')}")
                say(
                    f"    pipeline {run.summary['seconds']:.1f} s ("
                    + ", ".join(f"{t} {s:.1f}" for t, s in run.task_seconds.items())
                    + f"); peak {_gb(run.rss.bytes)} GB RSS during {run.rss.during}"
                    + f", {_gb(run.pss.bytes)} GB PSS during {run.pss.during}"
                    + f"; outcome {run.summary['outcome']}"
                )
                tfx = {}
                if args.tfx:
                    say(f"{rows:,} rows: TFX anchor --validate-only ...")
                    tfx = run_tfx_anchor(path, say)
                results.append(SizeResult(rows, path, generated, arrow, tfdv, run, tfx))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if not results:
        return
    text = report(results, plans[0][1], args.fmt, args.seed, machine)
    print(text)
    add_to_results(text, args.results)
    say(f"added to {args.results} (newest first)")
    failed = [f"{r.rows:,} rows" for r in results if r.run.summary["status"] != "SUCCEEDED"]
    if failed:
        raise SystemExit(f"the pipeline failed at {', '.join(failed)} (recorded in the results)")


if __name__ == "__main__":
    main()
