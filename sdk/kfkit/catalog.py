"""kfkit's components and pipelines, found by name, and compiling them.

Components are the packages ``kfkit.components.<name>`` (folders ``components/<name>/``);
pipelines are the modules ``kfkit.pipelines.<name>`` (``pipelines/<name>.py``) with their
compiled YAML in ``pipelines/compiled/``. Both ship in the wheel. A pipeline of the user's own
is a Python file or a compiled YAML anywhere (:func:`pipeline_spec_file`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from kfkit.errors import KfkitError, first_line

PIPELINES = ("training", "scoring")
REPO_ENV = "KFKIT_REPO"


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


def compiled_pipeline_path(name: str, root: Path | None = None) -> Path:
    """``pipelines/compiled/<name>.yaml`` of this install, or of the checkout ``root`` (else
    ``KFKIT_REPO``) when given: another checkout's compiled pipelines, e.g. a changed one."""
    root = root or (Path(os.environ[REPO_ENV]) if os.environ.get(REPO_ENV) else None)
    if root is not None:
        return root / "pipelines" / "compiled" / f"{name}.yaml"
    for folder in _package_folders("kfkit.pipelines"):
        if (folder / "compiled").is_dir():
            return folder / "compiled" / f"{name}.yaml"
    raise KfkitError("kfkit.pipelines has no compiled/ folder (a broken install?)")


def _import_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"kfkit_user_pipeline_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise KfkitError(f"{path}: cannot import this file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's file: say where, in one line
        line = getattr(exc, "lineno", None) or _traceback_line(exc, path)
        raise KfkitError(
            f"{path}{f':{line}' if line else ''}: cannot import: {type(exc).__name__}: {first_line(exc)}"
        ) from None
    return module


def _traceback_line(exc: BaseException, path: Path) -> int | None:
    """The line of ``path`` where ``exc`` was raised (the innermost frame in that file)."""
    import traceback

    here = path.resolve()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == here]
    return frames[-1].lineno if frames else None


def pipeline_spec_file(pipeline: str) -> Path:
    """The compiled YAML to run for ``pipeline``: one of kfkit's pipelines by name, a compiled
    YAML file, or a Python file defining exactly one ``@dsl.pipeline`` (compiled here)."""
    path = Path(pipeline)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise KfkitError(f"{pipeline}: no such file")
        return path.resolve()
    if path.suffix == ".py":
        # Only here: kfp's compiler is a second's import, and a cached rerun needs none of it.
        from kfp import compiler
        from kfp.dsl.graph_component import GraphComponent

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
        try:
            compiler.Compiler().compile(found[0], str(target))
        except Exception as exc:  # noqa: BLE001 - kfp's compile errors name the task and input
            raise KfkitError(f"{pipeline}: the pipeline does not compile: {first_line(exc)}") from None
        return target
    if pipeline not in PIPELINES:
        raise KfkitError(
            f"unknown pipeline {pipeline!r}: one of {', '.join(PIPELINES)}, a .py file or a compiled .yaml"
        )
    spec_path = compiled_pipeline_path(pipeline)
    if not spec_path.is_file():
        raise KfkitError(f"{spec_path}: compiled pipeline not found; run `kfkit compile`")
    return spec_path


README_BEGIN = "<!-- begin: generated by `kfkit compile` from component.py; edit the docstring, not this -->"
README_END = "<!-- end: generated -->"


def _docstring_section(docstring: str | None, title: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style docstring section (continuations joined)."""
    entries: dict[str, str] = {}
    lines = inspect.cleandoc(docstring or "").splitlines()
    inside, current = False, None
    for line in lines:
        if line.strip() == f"{title}:":
            inside = True
            continue
        if inside and line and not line.startswith(" "):
            break  # the next section
        if inside and line.startswith("    ") and not line.startswith("        ") and ":" in line:
            current, text = (part.strip() for part in line.split(":", 1))
            entries[current] = text
        elif inside and current and line.strip():
            entries[current] += " " + line.strip()
    return entries


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def readme_tables(component: Any) -> str:
    """Parameters, Inputs and Outputs tables of a component, from its kfp spec (types,
    defaults) and its docstring (descriptions): the README section ``kfkit compile`` writes."""
    import json

    spec = component.component_spec
    outputs_doc = _docstring_section(component.python_func.__doc__, "Outputs")
    parameters, inputs, outputs = [], [], []
    for name, item in (spec.inputs or {}).items():
        description = _cell(item.description or "")
        if "@" in item.type:  # an artifact: system.Dataset@0.0.1
            optional = " (optional)" if item.optional else ""
            inputs.append(f"| `{name}` | {item.type.split('@')[0]}{optional} | {description} |")
        else:
            default = "required" if not item.optional else f"`{json.dumps(item.default)}`"
            parameters.append(f"| `{name}` | {item.type} | {_cell(default)} | {description} |")
    for name, item in (spec.outputs or {}).items():
        outputs.append(f"| `{name}` | {item.type.split('@')[0]} | {_cell(outputs_doc.get(name, ''))} |")
    sections = [
        ("Parameters", "| name | type | default | description |\n|---|---|---|---|", parameters),
        ("Inputs", "| name | artifact type | description |\n|---|---|---|", inputs),
        ("Outputs", "| name | artifact type | description |\n|---|---|---|", outputs),
    ]
    text = [README_BEGIN]
    for title, header, rows in sections:
        text += ["", f"## {title}", ""] + ([header, *rows] if rows else ["None."])
    return "\n".join([*text, "", README_END])


def readme_with_tables(readme: str, component: Any, where: str) -> str:
    """``readme`` with its generated section replaced by the component's current tables."""
    if README_BEGIN not in readme or README_END not in readme:
        raise KfkitError(f"{where}: no generated section (the two marker lines `kfkit compile` fills)")
    before, rest = readme.split(README_BEGIN, 1)
    after = rest.split(README_END, 1)[1]
    return before + readme_tables(component) + after


def load_compiled(spec_path: Path) -> Any:
    """A compiled pipeline (or component) YAML as a kfp component; one line if it is not one."""
    from kfp import components

    try:
        return components.load_component_from_file(str(spec_path))
    except Exception as exc:  # noqa: BLE001 - a user's file: say which and why, in one line
        raise KfkitError(f"{spec_path}: not a compiled kfp pipeline: {first_line(exc)}") from None


def compile_all(out_root: Path | None = None, settings: Any = None) -> list[Path]:
    """Compile every component to ``components/<name>/component.yaml`` (and refresh its
    README's generated tables) and every pipeline to ``pipelines/compiled/<name>.yaml``;
    under ``out_root`` instead if given (comparisons). ``settings``: the pipelines' images and
    task settings (a :class:`kfkit.task_settings.CompileSettings`; default: the defaults)."""
    from kfp import compiler

    from kfkit.task_settings import compile_pipeline

    written = []
    for name in component_names():
        folder = out_root / "components" / name if out_root else component_folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        component = load_component(name)
        compiler.Compiler().compile(component, str(folder / "component.yaml"))
        readme = (component_folder(name) / "README.md").read_text()
        (folder / "README.md").write_text(
            readme_with_tables(readme, component, f"components/{name}/README.md")
        )
        written += [folder / "component.yaml", folder / "README.md"]
    for name in PIPELINES:
        target = (
            out_root / "pipelines" / "compiled" / f"{name}.yaml" if out_root else compiled_pipeline_path(name)
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        compile_pipeline(load_pipeline(name), target, settings)
        written.append(target)
    return written
