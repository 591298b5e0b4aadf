"""What every component does around its logic: report a user error as one line.

A :class:`KfkitError` raised by step logic ends the task with exit code 1 and one line on
stderr (no traceback: the message already says what and where). When ``KFKIT_ERROR_FILE``
is set (the local runner sets it per run), the line is also appended there as JSON so the
CLI can show the cause instead of "task failed".
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from kfkit.errors import KfkitError

ERROR_FILE_ENV = "KFKIT_ERROR_FILE"


@contextmanager
def task_errors(task: str) -> Iterator[None]:
    try:
        yield
    except KfkitError as exc:
        message = str(exc)
        print(f"kfkit {task}: error: {message}", file=sys.stderr, flush=True)
        path = os.environ.get(ERROR_FILE_ENV)
        if path:
            with open(path, "a") as handle:
                handle.write(json.dumps({"task": task, "error": message}) + "\n")
        raise SystemExit(1) from None


def check_choice(component: str, parameter: str, value: str, allowed: tuple[str, ...]) -> None:
    """scikit-learn's constraint message shape, checked in one place."""
    if value not in allowed:
        raise KfkitError(
            f"The '{parameter}' parameter of {component} must be one of "
            f"{', '.join(repr(a) for a in allowed)}. Got {value!r} instead."
        )


def check_range(component: str, parameter: str, value: float, low: float, high: float) -> None:
    if not low < value < high:
        raise KfkitError(
            f"The '{parameter}' parameter of {component} must be a float in the range "
            f"({low}, {high}). Got {value!r} instead."
        )
