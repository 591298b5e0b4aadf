"""Where kfkit keeps local state, and settings read from the environment.

Precedence for every setting: command-line flag > environment variable > default.
"""

from __future__ import annotations

import os
from pathlib import Path

from kfkit.errors import KfkitError

STATE_DIR_ENV = "KFKIT_HOME"


def state_dir() -> Path:
    """The local state folder (git-ignored): store data, run records, logs. Default ``./.kfkit``.

    Private to its owner (0700): it holds the local store's credentials and data, the metadata
    database and deployment records, so nothing below it is readable by other users."""
    path = Path(os.environ.get(STATE_DIR_ENV, ".kfkit")).resolve()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def batch_rows(variable: str, default: int) -> int:
    """A batch size in rows from the environment variable ``variable``, else ``default``; a value
    that is no positive whole number is refused in one line naming the variable."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise KfkitError(f"{variable}={text!r}: expected a positive number of rows")
    return int(text)
