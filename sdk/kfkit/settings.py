"""Where kfkit keeps local state.

Precedence for every setting: command-line flag > environment variable > default.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "KFKIT_HOME"


def state_dir() -> Path:
    """The local state folder (git-ignored): store data, run records, logs. Default ``./.kfkit``."""
    path = Path(os.environ.get(STATE_DIR_ENV, ".kfkit")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
