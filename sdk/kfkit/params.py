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


def check_thresholds(
    component: str, parameter: str, value: dict | None, known: list[str]
) -> dict[str, float | None]:
    """A feature -> threshold map: every key a known feature, every value a float > 0 or
    None (None, or 1 and above, turns the check off for that feature)."""
    value = dict(value or {})
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise KfkitError(
            f"The '{parameter}' parameter of {component} must map features of the schema "
            f"({', '.join(known)}) to thresholds. Got unknown feature(s) {unknown} instead."
        )
    bad = {
        k: v
        for k, v in value.items()
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0)
    }
    if bad:
        raise KfkitError(
            f"The '{parameter}' parameter of {component} must map each feature to a float > 0 "
            f"(1 or more, or null, turns it off). Got {bad!r} instead."
        )
    return {k: (None if v is None else float(v)) for k, v in value.items()}
