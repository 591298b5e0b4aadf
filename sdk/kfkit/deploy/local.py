"""The local deployment record: what ``kfkit serve --model NAME`` serves when no cluster runs.

``<state dir>/deployments/<model>.json`` (``kfkit.settings.state_dir()``, ``./.kfkit`` unless
``KFKIT_HOME`` says otherwise)::

    {"model_name": "penguins",
     "serving":   {"version": "2", "uri": "s3://models/penguins/2/", "sha256": "...", "at": "..."},
     "candidate": {"version": "3", ..., "mode": "canary", "traffic": 10} or null,
     "history":   [previous {"serving", "candidate", "change", "at"} states, oldest first]}

Strategies mean the same as on a cluster, but one local server serves only ``serving``:
a canary or shadow is recorded as ``candidate`` until promoted.

Every change is a read-modify-write under an exclusive ``flock`` on ``<model>.json.lock`` beside
the record, so concurrent deploys (several runs pushing at once) each add their history entry and
the last one to take the lock is the one serving; the record is written whole to a temporary file
(0600) and renamed over the old one, so a reader or a killed writer never leaves half a file.

Everything target-neutral (strategies, their checks, the record's name, the history limit)
comes from ``kfkit.deploy.request``: this module does not import any other target, so the
local record keeps working, and keeps its meaning, whatever happens to Seldon's code.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kfkit.deploy.request import (
    CANARY,
    HISTORY_LIMIT,
    REPLACE,
    SHADOW,
    DeploymentRequest,
    check_canary_traffic,
    check_strategy,
    record_name,
)
from kfkit.deploy.target import TargetContext
from kfkit.errors import KfkitError
from kfkit.settings import state_dir


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def record_path(model_name: str, root: Path | None = None) -> Path:
    return (root or state_dir()) / "deployments" / f"{record_name(model_name)}.json"


@contextlib.contextmanager
def record_lock(model_name: str, root: Path | None = None) -> Iterator[None]:
    """Hold the exclusive lock of a model's record (blocking): the lock file is never removed,
    so every writer locks the same inode; the kernel drops the lock when a holder dies."""
    path = record_path(model_name, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def read_record(model_name: str, root: Path | None = None) -> dict[str, Any] | None:
    path = record_path(model_name, root)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise KfkitError(f"{path}: local deployment record is not JSON; delete it to start over") from None


def served_version(model_name: str, root: Path | None = None) -> str | None:
    """The version the local record serves, or None when nothing was deployed locally."""
    record = read_record(model_name, root)
    if record and record.get("serving"):
        return str(record["serving"]["version"])
    return None


class LocalTarget:
    """``DeployTarget`` that keeps a record for ``kfkit serve`` instead of talking to a cluster."""

    def __init__(self, root: Path | None = None, progress: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.progress = progress or (lambda line: None)

    @classmethod
    def from_context(cls, context: TargetContext) -> LocalTarget:
        """The registry's factory: the local record has no namespace and needs no cluster."""
        return cls(progress=context.progress)

    @staticmethod
    def _entry(request: DeploymentRequest) -> dict[str, Any]:
        return {"version": str(request.version), "uri": request.model_uri, "sha256": request.sha256}

    def manifest(self, request: DeploymentRequest) -> dict[str, Any]:
        """The record that serving ``request``'s version alone writes (what ``replace`` makes).

        Without the times ``apply`` adds, so the same request always renders the same JSON;
        a canary or shadow needs the serving state first, which only ``apply`` reads.
        """
        return {"model_name": request.model_name, "serving": self._entry(request), "candidate": None,
                "history": []}  # fmt: skip

    def _write(self, model_name: str, record: dict[str, Any]) -> None:
        path = record_path(model_name, self.root)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(record, out, indent=2, sort_keys=True)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())  # whole on disk before the rename makes it the record
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _require(self, model_name: str) -> dict[str, Any]:
        record = read_record(model_name, self.root)
        if record is None:
            raise KfkitError(
                f"no local deployment of {model_name} ({record_path(model_name, self.root)} does not exist)"
            )
        return record

    def _save(
        self, model_name: str, before: dict[str, Any] | None, after: dict[str, Any], change: str
    ) -> None:
        entries = list((before or {}).get("history", []))
        if before is not None:
            entries.append(
                {"at": _now(), "change": change, "serving": before.get("serving"),
                 "candidate": before.get("candidate")}
            )  # fmt: skip
        after["history"] = entries[-HISTORY_LIMIT:]
        after["last_change"] = {"at": _now(), "change": change}
        self._write(model_name, after)

    def apply(self, rollout: DeploymentRequest, timeout: float = 0.0) -> dict[str, Any]:
        with record_lock(rollout.model_name, self.root):
            self._apply(rollout)
        self.progress(
            f"deploy: recorded local deployment of {rollout.model_name} version {rollout.version} "
            f"({rollout.strategy}) in {record_path(rollout.model_name, self.root)}"
        )
        return self.status(rollout.model_name)

    def _apply(self, rollout: DeploymentRequest) -> None:
        before = read_record(rollout.model_name, self.root)
        entry = {**self._entry(rollout), "at": _now()}
        after = copy.deepcopy(before) if before else {"model_name": rollout.model_name}
        if rollout.strategy == REPLACE:
            after["serving"], after["candidate"] = entry, None
        elif rollout.strategy in (CANARY, SHADOW):
            if not (before and before.get("serving")):
                raise KfkitError(
                    f"{rollout.model_name} has no local deployment yet: deploy it with strategy "
                    f"'replace' before a {rollout.strategy}"
                )
            if before["serving"]["version"] == entry["version"]:
                raise KfkitError(f"{rollout.model_name}: version {entry['version']} is already serving")
            if rollout.strategy == CANARY:
                check_canary_traffic(rollout.traffic)
            entry["mode"] = rollout.strategy
            if rollout.strategy == CANARY:
                entry["traffic"] = rollout.traffic
            after["candidate"] = entry
        else:
            check_strategy(rollout.strategy)  # raises the one-line "unknown strategy" error
            raise KfkitError(f"strategy {rollout.strategy!r} is not a rollout of a new version")
        self._save(rollout.model_name, before, after, f"{rollout.strategy} v{rollout.version}")

    def promote(self, model_name: str, timeout: float = 0.0) -> dict[str, Any]:
        with record_lock(model_name, self.root):
            self._promote(model_name)
        return self.status(model_name)

    def _promote(self, model_name: str) -> None:
        before = self._require(model_name)
        candidate = before.get("candidate")
        if not candidate:
            raise KfkitError(f"local deployment of {model_name} has no canary or shadow to promote")
        after = copy.deepcopy(before)
        serving = {k: v for k, v in candidate.items() if k not in ("mode", "traffic")}
        after["serving"], after["candidate"] = serving, None
        self._save(model_name, before, after, f"promote v{serving['version']}")

    def rollback(self, model_name: str, timeout: float = 0.0) -> dict[str, Any]:
        with record_lock(model_name, self.root):
            self._rollback(model_name)
        return self.status(model_name)

    def _rollback(self, model_name: str) -> None:
        before = self._require(model_name)
        entries = list(before.get("history", []))
        if not entries:
            raise KfkitError(f"local deployment of {model_name} has no previous state to roll back to")
        previous = entries.pop()
        after = copy.deepcopy(before)
        after["serving"], after["candidate"], after["history"] = (
            previous["serving"],
            previous["candidate"],
            entries,
        )
        after["last_change"] = {
            "at": _now(),
            "change": f"rollback to v{(previous['serving'] or {}).get('version')}",
        }
        self._write(model_name, after)

    def served_version(self, model_name: str) -> str | None:
        return served_version(model_name, self.root)

    def status(self, model_name: str) -> dict[str, Any]:
        record = self._require(model_name)
        serving = record.get("serving") or {}
        candidate = record.get("candidate")
        predictors = []
        if serving:
            share = 100 - int(candidate.get("traffic", 0)) if candidate else 100
            predictors.append(
                {"name": f"v{serving['version']}", "version": serving["version"], "traffic": share,
                 "shadow": False, "model_uri": serving["uri"]}
            )  # fmt: skip
        if candidate:
            predictors.append(
                {"name": f"v{candidate['version']}", "version": candidate["version"],
                 "traffic": candidate.get("traffic"), "shadow": candidate["mode"] == SHADOW,
                 "model_uri": candidate["uri"]}
            )  # fmt: skip
        return {
            "target": "local",
            "name": record_name(model_name),
            "record": str(record_path(model_name, self.root)),
            "state": "Recorded",
            "serving_version": serving.get("version"),
            "predictors": predictors,
            "candidate": f"v{candidate['version']}" if candidate else None,
            "history": len(record.get("history", [])),
        }

    def history(self, model_name: str) -> list[dict[str, Any]]:
        record = self._require(model_name)
        out = []
        for entry in record.get("history", []):
            serving = entry.get("serving") or {}
            candidate = entry.get("candidate")
            text = f"v{serving.get('version')} serving"
            if candidate:
                text += f", v{candidate['version']} {candidate['mode']}"
            out.append({"at": entry.get("at"), "change": entry.get("change"), "predictors": text})
        return out
