"""What each column of a table is to the model: an identifier or free text (left out unless the
user names it), a date (a number of days), a number or a category.

Validate decides (it has both splits) and writes each decision into the schema it outputs as a
TFDV annotation: the tag ``kfkit:<role>`` and a comment with the evidence ("4000 distinct values
in 4000 rows"). A frozen or curated schema carries them, a reviewer can edit them, and train
reads them from the schema alone. Only tensorflow_metadata's protos are used here, never
TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kfkit.errors import KfkitError
from kfkit.values import date_texts

IDENTIFIER, FREE_TEXT, DATE, NUMERIC, CATEGORICAL = (
    "identifier",
    "free_text",
    "date",
    "numeric",
    "categorical",
)
ROLES = (IDENTIFIER, FREE_TEXT, DATE, NUMERIC, CATEGORICAL)
EXCLUDED_ROLES = (IDENTIFIER, FREE_TEXT)  # not model inputs unless named in keep_features
TAG_PREFIX = "kfkit:"

# Below this many rows, a column of a few categories can be unique per row by chance (5 rows, 5
# islands): uniqueness says "identifier" only from 20 rows on.
MIN_ROWS_FOR_IDENTIFIER = 20
# Free text: many distinct values (at least 20, and at least half the rows), so one-hot columns
# would each be seen once or twice and learn nothing that carries over to new rows; AND values
# that read as prose: a median of 3 words or more, or 30 characters or more. Category values
# (species, "New York", product codes) are one or two short words; titles and descriptions are
# longer. Both conditions, so neither a long-named category nor a short unique code is text.
MIN_DISTINCT_FOR_TEXT = 20
MIN_DISTINCT_SHARE_FOR_TEXT = 0.5
MIN_MEDIAN_WORDS_FOR_TEXT = 3
MIN_MEDIAN_CHARS_FOR_TEXT = 30


@dataclass
class FeatureRole:
    name: str
    role: str  # one of ROLES
    evidence: str  # why, in words a reviewer checks ("4000 distinct values in 4000 rows")

    @property
    def excluded(self) -> bool:
        return self.role in EXCLUDED_ROLES

    def describe(self) -> str:
        return (
            f"{self.role.replace('_', ' ')}: {self.evidence}"
            if self.evidence
            else self.role.replace("_", " ")
        )


def decide_role(name: str, series: pd.Series) -> FeatureRole:
    """One column's role from its values (the whole table: train and eval rows)."""
    rows = len(series)
    present = series[series.notna()]
    distinct = int(present.nunique())
    unique_per_row = rows >= MIN_ROWS_FOR_IDENTIFIER and distinct == rows
    evidence = f"{distinct} distinct values in {rows} rows"
    if pd.api.types.is_numeric_dtype(series):
        # Floats are measurements even when all differ; integers unique per row number the rows.
        if pd.api.types.is_integer_dtype(series) and unique_per_row:
            return FeatureRole(name, IDENTIFIER, evidence)
        return FeatureRole(name, NUMERIC, "")
    distinct_texts = [str(v) for v in pd.unique(present)]
    if distinct_texts and date_texts(distinct_texts) is not None:
        return FeatureRole(name, DATE, f"ISO dates from {min(distinct_texts)} to {max(distinct_texts)}")
    if distinct >= MIN_DISTINCT_FOR_TEXT and distinct >= MIN_DISTINCT_SHARE_FOR_TEXT * len(present):
        texts = present.astype(str)
        words = float(texts.str.split().str.len().median())
        chars = float(texts.str.len().median())
        if words >= MIN_MEDIAN_WORDS_FOR_TEXT or chars >= MIN_MEDIAN_CHARS_FOR_TEXT:
            return FeatureRole(name, FREE_TEXT, f"{evidence}, median {words:g} words, {chars:g} characters")
    if unique_per_row:
        return FeatureRole(name, IDENTIFIER, evidence)
    return FeatureRole(name, CATEGORICAL, "")


def kept_role(role: FeatureRole, series: pd.Series) -> FeatureRole:
    """An excluded feature the user named in keep_features: numeric or categorical by its type."""
    kind = NUMERIC if pd.api.types.is_numeric_dtype(series) else CATEGORICAL
    return FeatureRole(role.name, kind, f"kept by keep_features (would be {role.describe()})")


def check_keep_features(keep_features: Any, columns: Iterable[str] | None = None) -> list[str]:
    """keep_features as a list of names; with ``columns``, every name must be one of them."""
    if keep_features is None:
        return []
    if not isinstance(keep_features, list | tuple) or not all(isinstance(n, str) for n in keep_features):
        raise KfkitError(
            "The 'keep_features' parameter of validate must be a list of feature names. "
            f"Got {keep_features!r} instead."
        )
    if columns is not None:
        known = list(columns)
        unknown = [n for n in keep_features if n not in known]
        if unknown:
            raise KfkitError(
                f"The 'keep_features' parameter of validate names unknown feature(s) {unknown}; "
                f"features: {', '.join(known)}"
            )
    return list(keep_features)


def schema_roles(schema: Any) -> dict[str, FeatureRole]:
    """The roles a schema's annotations record (features without a kfkit tag are left out)."""
    found = {}
    for feature in schema.feature:
        tags = [t[len(TAG_PREFIX) :] for t in feature.annotation.tag if t.startswith(TAG_PREFIX)]
        if tags:
            if tags[0] not in ROLES:
                raise KfkitError(
                    f"schema feature '{feature.name}': unknown role tag '{TAG_PREFIX}{tags[0]}' "
                    f"(roles: {', '.join(ROLES)})"
                )
            comments = [c for c in feature.annotation.comment if c]
            found[feature.name] = FeatureRole(feature.name, tags[0], comments[0] if comments else "")
    return found


def annotate_schema(schema: Any, roles: dict[str, FeatureRole]) -> None:
    """Write each role into its schema feature's annotation, replacing an earlier kfkit tag."""
    for feature in schema.feature:
        role = roles.get(feature.name)
        if role is None:
            continue
        others = [t for t in feature.annotation.tag if not t.startswith(TAG_PREFIX)]
        del feature.annotation.tag[:]
        feature.annotation.tag.extend([f"{TAG_PREFIX}{role.role}", *others])
        del feature.annotation.comment[:]
        if role.evidence:
            feature.annotation.comment.append(role.evidence)


def decide_roles(
    table: pd.DataFrame,
    schema: Any,
    label_column: str,
    keep_features: list[str] | None = None,
) -> dict[str, FeatureRole]:
    """The role of every schema feature but the label: the schema's own annotation where it has
    one (a reviewer's word), else decided from ``table``; then keep_features turns an excluded
    feature back into a numeric or categorical one. Annotates ``schema`` with the result."""
    recorded = schema_roles(schema)
    names = [f.name for f in schema.feature if f.name != label_column]
    keep = check_keep_features(keep_features, names)
    roles: dict[str, FeatureRole] = {}
    for name in names:
        role = recorded.get(name)
        if role is None and name in table.columns:
            role = decide_role(name, table[name])
        if role is None:
            continue
        if role.excluded and name in keep:
            if name not in table.columns:
                raise KfkitError(f"keep_features: feature '{name}' is not in the data")
            role = kept_role(role, table[name])
        roles[name] = role
    annotate_schema(schema, roles)
    return roles
