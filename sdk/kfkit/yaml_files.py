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
    except yaml.YAMLError as exc:
        raise KfkitError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
