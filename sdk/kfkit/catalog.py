"""kfkit's components and pipelines, found by name, and compiling them.

Components are the packages ``kfkit.components.<name>`` (folders ``components/<name>/``);
pipelines are the modules ``kfkit.pipelines.<name>`` (``pipelines/<name>.py``) with their
compiled YAML in ``pipelines/compiled/``. Both ship in the wheel. A pipeline of the user's own
is a Python file or a compiled YAML anywhere (:func:`pipeline_spec_file`).
"""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from kfkit.errors import KfkitError

PIPELINES = ("training",)


def _package_folders(package: str) -> list[Path]:
    return [Path(p) for p in importlib.import_module(package).__path__]


def component_names() -> list[str]:
    return sorted(
        p.parent.name
        for folder in _package_folders("kfkit.components")
        for p in folder.glob("*/component.py")
    )


def component_folder(name: str) -> Path:
    return Path(importlib.import_module(f"kfkit.components.{name}.component").__file__).parent


def load_component(name: str) -> Any:
    """The kfp component declared in ``components/<name>/component.py``."""
    return getattr(importlib.import_module(f"kfkit.components.{name}.component"), name)


def load_pipeline(name: str) -> Any:
    return getattr(importlib.import_module(f"kfkit.pipelines.{name}"), name)


def compiled_pipeline_path(name: str) -> Path:
    for folder in _package_folders("kfkit.pipelines"):
        if (folder / "compiled").is_dir():
            return folder / "compiled" / f"{name}.yaml"
    raise KfkitError("kfkit.pipelines has no compiled/ folder (a broken install?)")


def _import_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"kfkit_user_pipeline_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise KfkitError(f"{path}: cannot import this file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pipeline_spec_file(pipeline: str) -> Path:
    """The compiled YAML to run for ``pipeline``: one of kfkit's pipelines by name, a compiled
    YAML file, or a Python file defining exactly one ``@dsl.pipeline`` (compiled here)."""
    from kfp import compiler
    from kfp.dsl.graph_component import GraphComponent

    path = Path(pipeline)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise KfkitError(f"{pipeline}: no such file")
        return path.resolve()
    if path.suffix == ".py":
        if not path.is_file():
            raise KfkitError(f"{pipeline}: no such file")
        module = _import_file(path)
        found = [
            v
            for v in vars(module).values()
            if isinstance(v, GraphComponent) and v.pipeline_func.__module__ == module.__name__
        ]
        if len(found) != 1:
            raise KfkitError(
                f"{pipeline}: expected exactly one @dsl.pipeline in the file, found {len(found)}"
            )
        target = Path(tempfile.mkdtemp(prefix="kfkit-pipeline-")) / f"{path.stem}.yaml"
        compiler.Compiler().compile(found[0], str(target))
        return target
    if pipeline not in PIPELINES:
        raise KfkitError(
            f"unknown pipeline {pipeline!r}: one of {', '.join(PIPELINES)}, a .py file or a compiled .yaml"
        )
    spec_path = compiled_pipeline_path(pipeline)
    if not spec_path.is_file():
        raise KfkitError(f"{spec_path}: compiled pipeline not found; run `kfkit compile`")
    return spec_path


def compile_all(out_root: Path | None = None) -> list[Path]:
    """Compile every component to ``components/<name>/component.yaml`` and every pipeline to
    ``pipelines/compiled/<name>.yaml``; under ``out_root`` instead if given (comparisons)."""
    from kfp import compiler

    written = []
    for name in component_names():
        target = (out_root / "components" / name if out_root else component_folder(name)) / "component.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(load_component(name), str(target))
        written.append(target)
    for name in PIPELINES:
        target = (
            out_root / "pipelines" / "compiled" / f"{name}.yaml" if out_root else compiled_pipeline_path(name)
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(load_pipeline(name), str(target))
        written.append(target)
    return written
