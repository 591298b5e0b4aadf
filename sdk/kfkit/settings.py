"""Where kfkit keeps local state, and where the repository's pipelines live.

Precedence for every setting: command-line flag > environment variable > default.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "KFKIT_HOME"
REPO_ENV = "KFKIT_REPO"


def state_dir() -> Path:
    """The local state folder (git-ignored): store data, run records, logs. Default ``./.kfkit``."""
    path = Path(os.environ.get(STATE_DIR_ENV, ".kfkit")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path:
    """The kfkit checkout holding ``pipelines/`` and ``components/``.

    ``KFKIT_REPO`` wins; else the current folder or a parent of it; else the checkout this
    package is installed from (uv installs the project editable).
    """
    if os.environ.get(REPO_ENV):
        return Path(os.environ[REPO_ENV]).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pipelines" / "compiled").is_dir() and (candidate / "components").is_dir():
            return candidate
    return Path(__file__).resolve().parents[2]
