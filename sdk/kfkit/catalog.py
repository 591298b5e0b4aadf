"""The repository's components and pipelines, found by name, and compiling them.

``components/<name>/component.py`` and ``pipelines/<name>.py`` are plain files, not an
installed package; they are imported by path so that the folder stays the unit of ownership.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from kfkit.errors import KfkitError
from kfkit.settings import repo_root

PIPELINES = ("training",)


def _import_file(path: Path, module_name: str) -> ModuleType:
    if not path.is_file():
        raise KfkitError(f"{path}: not found (is KFKIT_REPO set to a kfkit checkout?)")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def component_names(root: Path | None = None) -> list[str]:
    root = root or repo_root()
    return sorted(p.parent.name for p in (root / "components").glob("*/component.py"))


def load_component(name: str, root: Path | None = None) -> Any:
    """The kfp component object declared in ``components/<name>/component.py``."""
    module = _import_file(
        (root or repo_root()) / "components" / name / "component.py", f"kfkit_component_{name}"
    )
    return getattr(module, name)


def load_pipeline(name: str, root: Path | None = None) -> Any:
    module = _import_file((root or repo_root()) / "pipelines" / f"{name}.py", f"kfkit_pipeline_{name}")
    return getattr(module, name)


def compiled_pipeline_path(name: str, root: Path | None = None) -> Path:
    return (root or repo_root()) / "pipelines" / "compiled" / f"{name}.yaml"


def compile_all(root: Path | None = None, out_root: Path | None = None) -> list[Path]:
    """Compile every component to ``component.yaml`` and every pipeline to
    ``pipelines/compiled/<name>.yaml`` (under ``out_root`` if given, for comparisons)."""
    from kfp import compiler

    root = root or repo_root()
    out_root = out_root or root
    written = []
    for name in component_names(root):
        target = out_root / "components" / name / "component.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(load_component(name, root), str(target))
        written.append(target)
    for name in PIPELINES:
        target = compiled_pipeline_path(name, out_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(load_pipeline(name, root), str(target))
        written.append(target)
    return written
