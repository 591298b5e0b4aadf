"""kfkit's library uses kfp's and seldon-core's public seams only: it assigns nothing into
their modules or classes (no monkeypatching), reads nothing out of kfp.local's log text, and
sets or reads none of kfp's private ``_KFP_*`` variables. An upgrade of either then breaks
loudly at an API, not silently in a patched internal. Checked on the source's syntax tree,
with positive controls: the checker must catch the patterns kfkit used to have."""

from __future__ import annotations

import ast
import re

import pytest
from conftest import REPO

FOREIGN = ("kfp", "seldon_core", "gunicorn")
# Lines kfp.local logs about tasks: parsing them ties kfkit to kfp's wording.
KFP_LOG_PHRASES = ("Executing task", "finished with status", "Streamed logs")
# kfp's own private variables (_KFP_RUNTIME, ...); kfkit's KFKIT_KFP_HOST and the like are kfkit's.
PRIVATE_KFP_VARIABLE = re.compile(r"(?<![A-Za-z0-9])_KFP_")


def _foreign_names(tree: ast.AST) -> set[str]:
    """Local names bound to kfp / seldon-core / gunicorn modules or their members."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FOREIGN:
                    names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FOREIGN:
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _root(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def violations(source: str, where: str) -> list[str]:
    tree = ast.parse(source)
    foreign = _foreign_names(tree)
    found = []
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            targets = [node.args[0]] if node.args else []
            if targets and isinstance(targets[0], ast.Name) and targets[0].id in foreign:
                found.append(f"{where}:{node.lineno}: setattr on {targets[0].id}")
            continue
        for target in targets:
            if isinstance(target, ast.Attribute) and _root(target) in foreign:
                found.append(f"{where}:{node.lineno}: assigns into {ast.unparse(target)}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if PRIVATE_KFP_VARIABLE.search(node.value):
                found.append(f"{where}:{node.lineno}: kfp private variable in {node.value!r}")
            if any(phrase in node.value for phrase in KFP_LOG_PHRASES):
                found.append(f"{where}:{node.lineno}: kfp.local log text {node.value!r}")
    return found


def test_the_library_uses_public_seams_only():
    sources = sorted((REPO / "sdk" / "kfkit").rglob("*.py"))
    assert len(sources) > 30
    found = [v for path in sources for v in violations(path.read_text(), str(path.relative_to(REPO)))]
    assert found == []


@pytest.mark.parametrize(
    "planted",
    [
        # What kfkit once did to learn kfp.local's run name, and to speed up Seldon.
        "from kfp.local import executor_input_utils as u\nu.get_local_pipeline_resource_name = f",
        "from seldon_core.metrics import SeldonMetrics\nSeldonMetrics.update = update",
        "import kfp.local\nsetattr(kfp, 'x', 1)",
        "import re\nFINISHED = re.compile(r\"Task '([^']+)' finished with status (\\w+)\")",
        "import os\nos.environ['_KFP_RUNTIME'] = 'true'",
    ],
)
def test_the_checker_catches_what_it_forbids(planted):
    assert violations(planted, "planted.py"), planted


def test_the_checker_leaves_kfkits_own_objects_alone():
    assert (
        violations(
            "from kfp import dsl\nclass T:\n    pass\nt = T()\nt.name = dsl.PIPELINE_TASK_NAME_PLACEHOLDER",
            "ok.py",
        )
        == []
    )


def test_the_library_never_imports_the_cli():
    for path in (REPO / "sdk" / "kfkit").rglob("*.py"):
        if "cli" in path.relative_to(REPO / "sdk" / "kfkit").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kfkit.cli"):
                raise AssertionError(f"{path}: imports {node.module}")
            if isinstance(node, ast.Import) and any(a.name.startswith("kfkit.cli") for a in node.names):
                raise AssertionError(f"{path}: imports kfkit.cli")


def test_no_citation_of_design_notes_outside_the_repository():
    """The team's design notes live beside the checkout, not in it: code and component docs
    state the fact they rely on instead of citing a file a reader of the repository lacks."""
    paths = [*REPO.glob("sdk/**/*.py"), *REPO.glob("components/**/*.py"), *REPO.glob("components/**/*.md")]
    assert len(paths) > 40
    cited = [
        str(p.relative_to(REPO)) for p in paths if "DESIGN.md" in p.read_text() or "(DESIGN:" in p.read_text()
    ]
    assert cited == []
