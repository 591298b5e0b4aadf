"""The local run cache: ``kfkit run-local`` reuses a task's outputs when nothing it depends on
changed, with the rule a Kubeflow Pipelines cluster follows for kfkit's pipeline.

A task's **key** is sha256 over

- its component and the component's **version**: the compiled executor (image, command and
  arguments, which hold the component's body) and the source of every kfkit module its executor
  imports, directly or through other kfkit modules (read with :mod:`ast`, so a lazy import inside
  a function counts too), and the versions of the libraries that compute results. A code change
  in anything the task runs changes the key; a change elsewhere in kfkit (the CLI, serving) does
  not;
- every parameter value it gets, except the per-run ones (``task_name``, ``run_id``): two runs of
  the same data and parameters have the same keys;
- each input artifact's **content identity**: sha256 over its files (relative path and sha256 of
  each) and its metadata, numbers normalised (1 and 1.0 alike: kfp hands metadata downstream
  through a protobuf Struct). The data reaches the keys through resolve_source's
  ``source_identity``/``baseline_identity`` parameters (resolve_source itself and push are never
  cached: :data:`kfkit.task_settings.NEVER_CACHED`).

A large file's sha256 is computed once: the task that writes an output records it in a **hash
memo** (``<state>/cache/hashes/``) beside the file's inode number, size, modification and change
times, and the tasks that read it as input take it from there while those still match (see
:class:`HashMemo` for why an edit in place still misses). A local source file's is recorded by
its first read in the run (the cache plan's), and resolve_source and ingest take it from there
(:func:`run_hash_memo`).

An **entry** is ``<state>/cache/entries/<key>/`` holding ``entry.json`` (what the task was, which
run produced it, each output's type, metadata, files with their sha256 and identity) and
``outputs/<name>/``: each output's files, hard-linked (copied across file systems). Only a
successful task is stored, written under ``<state>/cache/tmp/`` and renamed into place, so a crash
never leaves a half entry where a lookup looks. A hit restores the files (checking every sha256 on
the way) and metadata into the new run's outputs; an entry that cannot be read or does not match
its record is a miss, with a warning, and is replaced. The whole ``cache`` folder is safe to delete
(``kfkit store gc --cache``): the next run recomputes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import kfkit
from kfkit.task_settings import NEVER_CACHED

# Set by ``kfkit run-local`` for its tasks: the cache folder (unset: no caching) and each task's
# component version (task name -> version), computed once from the compiled pipeline.
CACHE_DIR_ENV = "KFKIT_CACHE_DIR"
# ``KFKIT_CACHE=0`` turns the cache off for every run (as ``kfkit run-local --no-cache`` does).
ENABLED_ENV = "KFKIT_CACHE"
VERSIONS_ENV = "KFKIT_CACHE_VERSIONS"
# Parameters that name the run or the task, never what it computes.
PER_RUN_PARAMETERS = frozenset({"task_name", "run_id"})
# The libraries whose versions can change a task's results.
_LIBRARIES = ("kfp", "numpy", "pandas", "pyarrow", "scikit-learn", "tensorflow-data-validation")
ENTRY_FILE = "entry.json"
HASHES_FOLDER = "hashes"  # the hash memo's folder in the cache
_FORMAT = 1
_CHUNK = 1 << 20


class CacheEntryError(Exception):
    """An entry that cannot be used: unreadable, incomplete or not matching its record."""


def cache_dir(state: Path) -> Path:
    return state / "cache"


def cache_enabled() -> bool:
    return os.environ.get(ENABLED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


# -- keys ---------------------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data that hashes the same on both sides of a kfp hand-over:
    numbers that are whole become ints, tuples lists, mapping keys strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Number):
        number = float(value)  # type: ignore[arg-type]
        if math.isfinite(number) and number.is_integer():
            return int(number)
        return number if math.isfinite(number) else repr(number)
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return str(value)


def _digest(document: Any) -> str:
    text = json.dumps(canonical(document), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def key_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that enter a key: all but the per-run ones."""
    return {k: v for k, v in params.items() if k not in PER_RUN_PARAMETERS}


def task_key(component: str, version: str, params: dict[str, Any], inputs: dict[str, str]) -> str:
    """The cache key of one task: component, version, parameters, input identities."""
    return _digest(
        {
            "format": _FORMAT,
            "component": component,
            "version": version,
            "parameters": key_parameters(params),
            "inputs": inputs,
        }
    )


def _link_or_copy(source: Path, destination: Path) -> bool:
    """Hard-link ``source`` at ``destination`` (no bytes written: a 10M-row split is a gigabyte),
    else copy it; True when copied."""
    try:
        os.link(source, destination)
        return False
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, destination)
        return True


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashMemo:
    """sha256 of large files, remembered by inode (``<cache>/hashes/<device>-<inode>.json``) so
    that the tasks reading a split do not each read its gigabyte again for their cache keys.

    A memo is used only while the file's inode, size, modification time and change time (ctime)
    are still the recorded ones. Any write to the file, a truncate, a chmod or a new hard link
    sets its ctime to the time of that change, and ctime cannot be set back from user space
    (``os.utime`` restores mtime only), so an edit in place, even one of the same size with its
    mtime restored, does not match and the file is read again. One gap is closed by waiting:
    ctime ticks at the kernel's clock tick (a few milliseconds), so a change within the same
    tick as the recorded one would keep it; a memo is therefore recorded only for a file whose
    last change is ``SETTLED_S`` (several ticks) older than the start of its hashing, and only
    if the file's state is the same after hashing as before. Files below ``MIN_BYTES`` are
    hashed every time: cheaper than a memo."""

    MIN_BYTES = 1 << 20
    SETTLED_S = 0.05

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def _state(status: os.stat_result) -> dict[str, int]:
        return {
            "size": status.st_size,
            "mtime_ns": status.st_mtime_ns,
            "ctime_ns": status.st_ctime_ns,
        }

    def _memo_file(self, status: os.stat_result) -> Path:
        return self.folder / f"{status.st_dev}-{status.st_ino}.json"

    def sha256(self, path: Path) -> str:
        """``path``'s sha256: from its memo if the file is unchanged since, else read (and
        remembered when it is large and settled)."""
        before = path.stat()
        if before.st_size < self.MIN_BYTES:
            return file_sha256(path)
        memo_file = self._memo_file(before)
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            memo = json.loads(memo_file.read_text())
            if memo["state"] == self._state(before) and isinstance(memo["sha256"], str):
                return memo["sha256"]
        # A file system that keeps whole seconds (ctime_ns a multiple of 1e9) ticks too coarsely.
        settled = before.st_ctime_ns % 1_000_000_000 != 0 and self._age_ns(before) > self.SETTLED_S * 1e9
        digest = file_sha256(path)
        after = path.stat()  # not compared whole: reading may update the access time
        if settled and (after.st_ino, self._state(after)) == (before.st_ino, self._state(before)):
            self._remember(memo_file, before, digest)
        return digest

    def settle(self, path: Path) -> None:
        """Wait (at most ``SETTLED_S``) until ``path``'s last change is old enough for a memo:
        a task's store comes right after its last write, and the readers save far more."""
        with contextlib.suppress(OSError):
            status = path.stat()
            age = self._age_ns(status)
            if status.st_size >= self.MIN_BYTES and age <= self.SETTLED_S * 1e9:
                time.sleep(self.SETTLED_S - age / 1e9 + 0.001)

    @staticmethod
    def _age_ns(status: os.stat_result) -> int:
        """Time since the file's last change (its ctime comes from the kernel's coarse clock,
        which lags the fine one by up to a tick: the age is never underestimated)."""
        return time.time_ns() - status.st_ctime_ns

    def _remember(self, memo_file: Path, status: os.stat_result, digest: str) -> None:
        # Written aside and renamed: a reader sees a whole memo or none. A failure only costs
        # the next reader a read of the file.
        with contextlib.suppress(OSError):
            self.folder.mkdir(parents=True, exist_ok=True)
            staging = memo_file.with_name(f".{memo_file.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
            staging.write_text(json.dumps({"state": self._state(status), "sha256": digest}))
            os.replace(staging, memo_file)


def run_hash_memo() -> HashMemo | None:
    """The hash memo of the local run this process is a task of (``kfkit run-local`` with the
    cache on sets :data:`CACHE_DIR_ENV`), else None: a task outside such a run hashes each file."""
    folder = os.environ.get(CACHE_DIR_ENV, "")
    return HashMemo(Path(folder) / HASHES_FOLDER) if folder and cache_enabled() else None


def _output_files(path: Path) -> dict[str, Path]:
    """relative path -> file of an artifact (``.`` for a file artifact), sorted."""
    if path.is_file():
        return {".": path}
    if not path.is_dir():
        return {}
    return {str(p.relative_to(path)): p for p in sorted(path.rglob("*")) if p.is_file()}


def artifact_files(path: Path, memo: HashMemo | None = None) -> dict[str, str]:
    """relative path -> sha256 of each file of an artifact (``.`` for a file artifact); large
    files' through ``memo`` when given."""
    sha256 = memo.sha256 if memo is not None else file_sha256
    return {relative: sha256(file) for relative, file in _output_files(path).items()}


def identity(files: dict[str, str], metadata: dict[str, Any]) -> str:
    """An artifact's content identity from its files' sha256 and its metadata."""
    return _digest({"files": files, "metadata": metadata})


def artifact_identity(artifact: Any, memo: HashMemo | None = None) -> str:
    """The content identity of a kfp artifact (its ``.path`` and ``.metadata``)."""
    return identity(artifact_files(Path(artifact.path), memo), dict(artifact.metadata))


# -- component versions ---------------------------------------------------------------------


def component_version(executor: dict[str, Any], function: str) -> str:
    """The version of one compiled task: its executor (image, command, args) and, for a kfkit
    component, the source of every kfkit module it runs (see the module's docstring)."""
    container = executor.get("container", {})
    sources = _module_sources(function) if function in _kfkit_components() else {}
    return _digest(
        {
            "image": container.get("image", ""),
            "command": container.get("command", []),
            "args": container.get("args", []),
            "sources": sources,
            "libraries": _library_versions(),
            "python": sys.version_info[:2],
        }
    )


def pipeline_versions(spec: dict[str, Any]) -> dict[str, str]:
    """task name -> component version, for every task of a compiled pipeline."""
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    versions = {}
    for name, task in spec["root"]["dag"]["tasks"].items():
        component = spec["components"][task["componentRef"]["name"]]
        executor = executors.get(component.get("executorLabel", ""), {})
        versions[name] = component_version(executor, function_of(executor))
    return versions


def function_of(executor: dict[str, Any]) -> str:
    args = list(executor.get("container", {}).get("args", []))
    return args[args.index("--function_to_execute") + 1] if "--function_to_execute" in args else ""


def cacheable(function: str) -> bool:
    """Whether a component may be cached at all (resolve_source and push never are)."""
    return function not in NEVER_CACHED


@cache
def _kfkit_components() -> tuple[str, ...]:
    from kfkit.components import __all__ as names

    return tuple(names)


@cache
def _library_versions() -> dict[str, str]:
    import importlib.metadata  # ~0.1 s: only in the run-local process, never in a task

    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


def _module_file(module: str) -> Path | None:
    """The source file of a kfkit module, found without importing it."""
    parts = module.split(".")
    if parts[0] != "kfkit":
        return None
    roots = [Path(kfkit.__file__).parent]
    if len(parts) > 2 and parts[1] == "components":
        from kfkit import components

        roots, parts = [Path(p) for p in components.__path__], parts[1:]
    for root in roots:
        base = root.joinpath(*parts[1:])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


@cache
def _imported_modules(path: Path, module: str, source: bytes) -> frozenset[str]:
    """kfkit modules ``source`` (of ``path``) imports anywhere (top level or inside functions)."""
    import ast

    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if b"kfkit" not in source:
        return frozenset()
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # a module or a name
    return frozenset(name for name in found if name == "kfkit" or name.startswith("kfkit."))


@cache
def _module_sources(function: str) -> dict[str, str]:
    """module -> sha256 of its source, for the component's own modules and every kfkit module
    they import, transitively."""
    waiting = [f"kfkit.components.{function}.component", f"kfkit.components.{function}.executor"]
    sources: dict[str, str] = {}
    while waiting:
        module = waiting.pop()
        if module in sources:
            continue
        path = _module_file(module)
        if path is None:
            continue  # a name imported from a module, not a module
        source = path.read_bytes()
        sources[module] = hashlib.sha256(source).hexdigest()
        waiting.extend(_imported_modules(path, module, source) - set(sources))
    return dict(sorted(sources.items()))


# -- entries --------------------------------------------------------------------------------


@dataclass
class Entry:
    key: str
    folder: Path
    record: dict[str, Any]

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return self.record["outputs"]

    @property
    def run_id(self) -> str:
        return str(self.record.get("run_id", ""))


class LocalCache:
    """The entries under ``root`` (``<state>/cache``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries = root / "entries"
        self.tmp = root / "tmp"
        self.memo = HashMemo(root / HASHES_FOLDER)

    def lookup(self, key: str, outputs: list[str]) -> Entry:
        """The entry for ``key`` holding ``outputs``; raises KeyError when there is none and
        :class:`CacheEntryError` when there is one that cannot be used."""
        folder = self.entries / key
        record_file = folder / ENTRY_FILE
        if not record_file.is_file():
            if folder.exists():
                raise CacheEntryError("no entry.json")
            raise KeyError(key)
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError) as exc:
            raise CacheEntryError(f"unreadable entry.json: {exc}") from None
        if not isinstance(record, dict) or record.get("key") != key or record.get("format") != _FORMAT:
            raise CacheEntryError("entry.json is not an entry for this key")
        recorded = record.get("outputs")
        if not isinstance(recorded, dict) or sorted(recorded) != sorted(outputs):
            raise CacheEntryError(f"outputs {sorted(recorded or {})} instead of {sorted(outputs)}")
        for name, output in recorded.items():
            files = output.get("files") if isinstance(output, dict) else None
            if not isinstance(files, dict) or not isinstance(output.get("metadata"), dict):
                raise CacheEntryError(f"output {name}: incomplete record")
            for relative in files:
                if not self._stored_file(folder, name, relative).is_file():
                    raise CacheEntryError(f"output {name}: file {relative} is missing")
        return Entry(key, folder, record)

    @staticmethod
    def _stored_file(folder: Path, name: str, relative: str) -> Path:
        base = folder / "outputs" / name
        return base if relative == "." else base / relative

    def restore(self, entry: Entry, name: str, target: Path) -> dict[str, Any]:
        """Copy output ``name`` of ``entry`` to ``target`` (the new run's artifact path),
        checking each file's sha256; returns its metadata. Raises CacheEntryError on a
        mismatch (``target`` is then left empty)."""
        output = entry.outputs[name]
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        try:
            for relative, expected in output["files"].items():
                source = self._stored_file(entry.folder, name, relative)
                destination = target if relative == "." else target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with open(source, "rb") as reader, open(destination, "wb") as writer:
                    while chunk := reader.read(_CHUNK):
                        digest.update(chunk)
                        writer.write(chunk)
                if digest.hexdigest() != expected:
                    raise CacheEntryError(f"output {name}: {relative} does not match its sha256")
        except (OSError, CacheEntryError) as exc:
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink()
            raise exc if isinstance(exc, CacheEntryError) else CacheEntryError(str(exc)) from None
        return dict(output["metadata"])

    def store(
        self, key: str, task: dict[str, Any], outputs: dict[str, tuple[str, Path, dict[str, Any]]]
    ) -> Entry:
        """Store a successful task's outputs (name -> (type, path, metadata)) under ``key``:
        written aside, then renamed into place in one step. An existing entry is kept."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.entries.mkdir(parents=True, exist_ok=True)
        staging = self.tmp / f"{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir(parents=True)  # an entry whose outputs have no files is entry.json alone
            recorded = {}
            for name, (type_name, path, metadata) in outputs.items():
                sources = _output_files(path)
                copied = False
                for relative, source in sources.items():
                    destination = self._stored_file(staging, name, relative)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    copied = _link_or_copy(source, destination) or copied
                # Hashed after linking (a new link changes the file's ctime, which the memo
                # checks) and remembered: the tasks that read these outputs need their sha256.
                for source in sources.values():
                    self.memo.settle(source)
                files = {relative: self.memo.sha256(source) for relative, source in sources.items()}
                # A hard link is the file itself (nothing written later changes a task's outputs;
                # restore checks every sha256 all the same); a copy is checked now.
                stored = artifact_files(staging / "outputs" / name) if copied else files
                if stored != files:  # changed while being copied: not a result to reuse
                    raise CacheEntryError(f"output {name} changed while it was stored")
                plain = canonical(metadata)
                recorded[name] = {
                    "type": type_name,
                    "metadata": plain,
                    "files": files,
                    "identity": identity(files, plain),
                }
            record = {"format": _FORMAT, "key": key, "created": time.time(), **task, "outputs": recorded}
            (staging / ENTRY_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
            target = self.entries / key
            try:
                os.rename(staging, target)
            except OSError:  # another run stored the same key first: keep theirs
                shutil.rmtree(staging, ignore_errors=True)
                return self.lookup(key, list(outputs))
            return Entry(key, target, record)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def discard(self, key: str) -> None:
        """Remove an unusable entry (renamed away first, so no lookup sees it half removed)."""
        folder = self.entries / key
        if not folder.exists():
            return
        self.tmp.mkdir(parents=True, exist_ok=True)
        doomed = self.tmp / f"discarded-{key}-{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(OSError):
            os.rename(folder, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def leftovers(self, grace_seconds: float = 3600.0) -> list[tuple[Path, str]]:
        """Folders under ``tmp/`` older than ``grace_seconds`` (a run died while storing),
        with why: never read by a lookup, safe to remove."""
        found = []
        now = time.time()
        for folder in sorted(self.tmp.iterdir()) if self.tmp.is_dir() else []:
            with contextlib.suppress(OSError):
                if now - folder.stat().st_mtime > grace_seconds:
                    found.append((folder, "a half-written cache entry (its run stopped while storing)"))
        return found

    def size(self) -> tuple[int, int]:
        """(entries, bytes) in the cache."""
        entries = list(self.entries.iterdir()) if self.entries.is_dir() else []
        total = (
            sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()) if self.root.is_dir() else 0
        )
        return len(entries), total


# -- inside a task (kfkit.runtime.execute) ----------------------------------------------------


@dataclass
class TaskCache:
    """One task's cache look-up and store, inside the task's process (``kfkit run-local``'s
    tasks that did not hit before kfp.local started them)."""

    cache: LocalCache
    key: str

    @classmethod
    def for_task(cls, task: Any) -> TaskCache | None:
        """The cache of ``task`` in a local run with caching on; None when it is off, the
        component is never cached or its version is unknown."""
        folder = os.environ.get(CACHE_DIR_ENV, "")
        version = json.loads(os.environ.get(VERSIONS_ENV) or "{}").get(task.name)
        if not folder or not version or not cacheable(task.component):
            return None
        cache = LocalCache(Path(folder))
        inputs = {name: artifact_identity(artifact, cache.memo) for name, artifact in task.inputs.items()}
        return cls(cache, task_key(task.component, version, task.params, inputs))

    def restore(self, task: Any) -> Entry | None:
        """Restore the outputs of an earlier run into ``task``'s outputs; None on a miss
        (an unusable entry is discarded, with a line saying why)."""
        try:
            entry = self.cache.lookup(self.key, list(task.outputs))
            for name, artifact in task.outputs.items():
                metadata = self.cache.restore(entry, name, Path(artifact.path))
                artifact.metadata.clear()
                artifact.metadata.update(metadata)
            return entry
        except KeyError:
            return None
        except CacheEntryError as exc:
            task.say(f"warning: cache entry {self.key[:12]} is unusable ({exc}); running the task")
            self.cache.discard(self.key)
            for artifact in task.outputs.values():
                artifact.metadata.clear()
            return None

    def store(self, task: Any) -> None:
        """Store ``task``'s outputs; a failure to store only costs the next run time."""
        outputs = {
            name: (artifact.schema_title, Path(artifact.path), dict(artifact.metadata))
            for name, artifact in task.outputs.items()
        }
        record = {"component": task.component, "task": task.name, "run_id": task.run_id}
        try:
            self.cache.store(self.key, record, outputs)
        except (OSError, CacheEntryError) as exc:
            task.say(f"warning: outputs not cached ({exc.__class__.__name__}: {exc})")


def cached_properties(entry: Entry) -> dict[str, Any]:
    """What a CACHED execution records about where its outputs come from."""
    return {
        "cache_key": entry.key,
        "cached_from_run": entry.run_id,
        "cached_from_task": entry.record.get("task", ""),
    }
