"""Parameter constraints, checked in one place with one message shape (scikit-learn's:
"The 'x' parameter of Y must be ... Got ... instead.")."""

from __future__ import annotations

from kfkit.errors import KfkitError


def check_choice(component: str, parameter: str, value: str, allowed: tuple[str, ...]) -> None:
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
