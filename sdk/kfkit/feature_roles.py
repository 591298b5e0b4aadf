"""What each column of a table is to the model: an identifier or free text (left out unless the
user names it), a date (a number of days), a number or a category.

Validate decides (it has both splits) and writes each decision into the schema it outputs as a
TFDV annotation: the tag ``kfkit:<role>`` and a comment with the evidence ("4000 distinct values
in 4000 rows"). A frozen or curated schema carries them, a reviewer can edit them, and train
reads them from the schema alone. Only tensorflow_metadata's protos are used here, never
TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kfkit.errors import KfkitError
from kfkit.values import date_texts

if TYPE_CHECKING:
    import pyarrow as pa

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


def decide_role(name: str, values: pa.ChunkedArray) -> FeatureRole:
    """One column's role from its values (the whole table: train and eval rows), computed in
    Arrow: a column of ten million values is a few hundred megabytes there, several gigabytes
    as Python objects."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(values)
    present = pc.drop_null(values)
    if _is_number(values.type):
        # Floats are measurements even when all differ; integers unique per row number the rows.
        if pa.types.is_integer(values.type) and rows >= MIN_ROWS_FOR_IDENTIFIER and len(present) == rows:
            distinct = pc.count_distinct(present).as_py()
            if distinct == rows:
                return FeatureRole(name, IDENTIFIER, f"{distinct} distinct values in {rows} rows")
        return FeatureRole(name, NUMERIC, "")
    distinct_values = pc.unique(present.cast(pa.string()))
    distinct = len(distinct_values)
    evidence = f"{distinct} distinct values in {rows} rows"
    if distinct and date_texts(_python_values(distinct_values)) is not None:
        bounds = pc.min_max(distinct_values)
        return FeatureRole(name, DATE, f"ISO dates from {bounds['min']} to {bounds['max']}")
    if distinct >= MIN_DISTINCT_FOR_TEXT and distinct >= MIN_DISTINCT_SHARE_FOR_TEXT * len(present):
        texts = present.cast(pa.string())
        # Words as Python's str.split() counts them: runs of whitespace separate, leading and
        # trailing whitespace does not make empty words, and an empty text has none.
        trimmed = pc.utf8_trim_whitespace(texts)
        word_counts = pc.if_else(
            pc.equal(pc.utf8_length(trimmed), 0), 0, pc.list_value_length(pc.utf8_split_whitespace(trimmed))
        )
        words = _median(word_counts)
        chars = _median(pc.utf8_length(texts))
        if words >= MIN_MEDIAN_WORDS_FOR_TEXT or chars >= MIN_MEDIAN_CHARS_FOR_TEXT:
            return FeatureRole(name, FREE_TEXT, f"{evidence}, median {words:g} words, {chars:g} characters")
    if rows >= MIN_ROWS_FOR_IDENTIFIER and distinct == rows:
        return FeatureRole(name, IDENTIFIER, evidence)
    return FeatureRole(name, CATEGORICAL, "")


def _is_number(arrow_type: Any) -> bool:
    import pyarrow as pa

    kinds = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
    return any(is_kind(arrow_type) for is_kind in kinds)


def _median(values: Any) -> float:
    """The median as pandas computes it (the mean of the two middle values of an even count)."""
    import pyarrow.compute as pc

    return float(pc.quantile(values, q=0.5, interpolation="linear")[0].as_py())


def _python_values(values: pa.Array, piece: int = 10_000) -> Iterator[str]:
    """Values as Python strings a piece at a time: date_texts stops at the first non-date, so a
    column of millions of identifiers is not turned into millions of Python strings."""
    for start in range(0, len(values), piece):
        yield from values.slice(start, piece).to_pylist()


def kept_role(role: FeatureRole, arrow_type: pa.DataType) -> FeatureRole:
    """An excluded feature the user named in keep_features: numeric or categorical by its type."""
    kind = NUMERIC if _is_number(arrow_type) else CATEGORICAL
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


class TableColumns(Protocol):
    """The whole table's columns, one at a time (validate reads them from both splits' files)."""

    def type_of(self, name: str) -> pa.DataType | None:
        """The column's Arrow type, None when the table has no such column."""

    def values(self, name: str) -> pa.ChunkedArray:
        """The column's values in every row."""


def decide_roles(
    columns: TableColumns,
    schema: Any,
    label_column: str,
    keep_features: list[str] | None = None,
) -> dict[str, FeatureRole]:
    """The role of every schema feature but the label: the schema's own annotation where it has
    one (a reviewer's word), else decided from the column's values in ``columns`` (floats by their
    type alone, no values read); then keep_features turns an excluded feature back into a numeric
    or categorical one. Annotates ``schema`` with the result."""
    import pyarrow as pa

    recorded = schema_roles(schema)
    names = [f.name for f in schema.feature if f.name != label_column]
    keep = check_keep_features(keep_features, names)
    roles: dict[str, FeatureRole] = {}
    for name in names:
        role = recorded.get(name)
        arrow_type = columns.type_of(name)
        if role is None and arrow_type is not None:
            measured = pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type)
            role = FeatureRole(name, NUMERIC, "") if measured else decide_role(name, columns.values(name))
        if role is None:
            continue
        if role.excluded and name in keep:
            if arrow_type is None:
                raise KfkitError(f"keep_features: feature '{name}' is not in the data")
            role = kept_role(role, arrow_type)
        roles[name] = role
    annotate_schema(schema, roles)
    return roles
