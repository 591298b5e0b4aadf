"""Build a kustomize target with ``kubectl kustomize`` and refuse it while a credential is unset.

kustomize itself cannot refuse a value: an overlay's ``.env`` file copied from its
``.env.example`` and never edited builds Secrets holding ``replace-me`` without a word, and the
templates in ``manifests/`` build Secrets with empty credentials. ``build`` runs the same
``kubectl kustomize``, then reads every object it produced: a Secret value (decoded) or any
other string that still holds the placeholder, or a credential key left empty, stops it with
one line naming the ``.env`` file and line to edit (or the object and key when no ``.env``
file holds it).
"""

from __future__ import annotations

import base64
import binascii
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from kfkit.errors import KfkitError

PLACEHOLDER = "replace-me"
# Secret keys that must carry a value before anything is applied: credentials and endpoints.
REQUIRED_KEY_WORDS = ("ACCESS_KEY", "SECRET", "ENDPOINT", "TOKEN", "PASSWORD")


def kustomize(path: Path) -> str:
    """The YAML ``kubectl kustomize path`` prints; its last error line as a KfkitError."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise KfkitError("kubectl not found on PATH: kfkit builds manifests with `kubectl kustomize`")
    proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else "no message"
        # kubectl logs through klog: keep only the message in `err="..."`.
        message = last.split(' err="', 1)[1].rstrip('"') if ' err="' in last else last
        raise KfkitError(f"{path}: kubectl kustomize failed: {message}")
    return proc.stdout


def _strings(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """(dotted path, value) of every string in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{where}[{index}]")
    elif isinstance(node, str):
        yield where, node


def _secret_values(secret: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, decoded value) of a Secret's ``data`` and ``stringData``."""
    for key, encoded in (secret.get("data") or {}).items():
        try:
            yield key, base64.b64decode(encoded or "", validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            yield key, str(encoded)
    for key, value in (secret.get("stringData") or {}).items():
        yield key, str(value)


def unset_values(objects: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(object, key or field, problem) for every placeholder or empty credential in ``objects``."""
    found = []
    for obj in objects:
        metadata = obj.get("metadata") or {}
        name = f"{obj.get('kind')} {metadata.get('name')}"
        if metadata.get("namespace"):
            name += f" in namespace {metadata['namespace']}"
        if obj.get("kind") == "Secret":
            for key, value in _secret_values(obj):
                if PLACEHOLDER in value:
                    found.append((name, key, f"is still the placeholder '{PLACEHOLDER}'"))
                elif not value.strip() and any(word in key.upper() for word in REQUIRED_KEY_WORDS):
                    found.append((name, key, "is empty"))
            rest = {k: v for k, v in obj.items() if k not in ("data", "stringData")}
        else:
            rest = obj
        for field, value in _strings(rest, ""):
            if PLACEHOLDER in value:
                found.append((name, field, f"is still the placeholder '{PLACEHOLDER}'"))
    return found


def _env_file_line(root: Path, key: str) -> str | None:
    """``<file> line <n>`` of the first ``.env`` file under ``root`` setting ``key`` to the placeholder."""
    for env_file in sorted(root.rglob("*.env")):
        for number, line in enumerate(env_file.read_text().splitlines(), start=1):
            name, sep, value = line.partition("=")
            if sep and name.strip() == key and PLACEHOLDER in value:
                return f"{env_file} line {number}"
    return None


def build(path: Path) -> str:
    """``kubectl kustomize path``, or a KfkitError naming the first value still unset."""
    text = kustomize(path)
    objects = [obj for obj in yaml.safe_load_all(text) if isinstance(obj, dict)]
    problems = unset_values(objects)
    if not problems:
        return text
    name, key, problem = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    where = _env_file_line(path, key)
    if where:
        raise KfkitError(f"{where}: {key} {problem}; set the real value there ({name}){more}")
    raise KfkitError(
        f"{path}: {name}: {key} {problem}; set it through the overlay's .env file "
        f"(see kustomize/README.md){more}"
    )
