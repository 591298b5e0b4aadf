"""Parameter constraints, checked in one place with one message shape (scikit-learn's:
"The 'x' parameter of Y must be ... Got ... instead.")."""

from __future__ import annotations

from typing import Any

from kfkit.errors import KfkitError

# Written instead of null in a threshold or tolerance map to switch one check off: kfp 2.13's
# local runner cannot pass null inside a parameter (kfp.compiler's to_protobuf_value refuses
# None), so "off" is the spelling that works everywhere.
OFF = "off"


def is_off(value: Any) -> bool:
    """A map value that switches its check off: null or "off" (also false: YAML 1.1, which
    `--param` values and config files are read as, reads an unquoted `off` as false)."""
    return value is None or value is False or value == OFF


def check_no_nested_null(parameter: str, value: Any, where: str = "") -> None:
    """kfp's local runner turns a parameter into a protobuf Value and fails with a traceback on a
    null inside a mapping or list; one line naming the place instead."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        path = f"{where}.{key}" if where else str(key)
        if item is None:
            raise KfkitError(
                f"The '{parameter}' parameter of the pipeline has null at '{path}', which kfp's local "
                f'runner cannot pass; write "{OFF}" to switch a threshold or tolerance off'
            )
        check_no_nested_null(parameter, item, path)


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
    """A feature -> threshold map: every key a known feature, every value a float > 0, or
    null / "off" (which, like 1 and above, turn the check off for that feature)."""
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
        if not is_off(v) and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0)
    }
    if bad:
        raise KfkitError(
            f"The '{parameter}' parameter of {component} must map each feature to a float > 0 "
            f'(1 or more, or "off", turns it off). Got {bad!r} instead.'
        )
    return {k: (None if is_off(v) else float(v)) for k, v in value.items()}
