"""Reading the YAML files users write (run configs, schedules), with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kfkit.errors import KfkitError


def load_yaml(path: str, what: str) -> Any:
    """The document in ``path``; a missing file or bad YAML is one line naming the file."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise KfkitError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise KfkitError(f"{path}: {what} is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise KfkitError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise KfkitError(f"{path}: not valid YAML: {where}{problem}") from None
