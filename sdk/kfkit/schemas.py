"""A model's reference schema: what ``kfkit schema show|diff|freeze|reset`` look at and change.

The reference is not a file of its own: it is the ``schema.pbtxt`` kept beside the model's latest
pushed version (train writes it, push uploads it, ``resolve_baseline`` hands it to validate), so
it changes only when a run pushes. Two ways to change it on purpose, both visible:

- **freeze**: write it to a file to review and commit, then run with ``schema_uri=<file>`` (a
  curated schema wins over the reference);
- **reset**: a record ``s3://models/<model>/kfkit-schema-reset.json`` saying "do not check new
  data against the schema (or statistics) of versions up to N"; the next run infers a schema from
  its own train split, and its ``resolve_baseline`` artifact records the reset (lineage). Pushing a
  newer version makes the reference that version's schema again.

Reads the schema with tensorflow-metadata's protos only (no TensorFlow).
"""

from __future__ import annotations

import datetime
import getpass
import json
from pathlib import Path
from typing import Any

from kfkit import names
from kfkit.errors import KfkitError
from kfkit.model_registry import latest_version, version_folder
from kfkit.storage import ObjectStore, ObjectUri

RESET_FILE = "kfkit-schema-reset.json"


def reset_uri(model_name: str) -> ObjectUri:
    return ObjectUri(names.MODELS_BUCKET, f"{names.check_model_name(model_name)}/{RESET_FILE}")


def read_reset(store: ObjectStore, model_name: str) -> dict[str, Any] | None:
    """The reset record of a model, or None."""
    uri = reset_uri(model_name)
    if not store.bucket_exists(names.MODELS_BUCKET) or not store.exists(uri):
        return None
    return json.loads(store.get_bytes(uri))


def reference_version(store: ObjectStore, model_name: str) -> tuple[str | None, dict[str, Any] | None]:
    """(the version whose schema is the reference, the reset record). None: no reference, the
    next run infers its schema (nothing pushed yet, or reset after the latest version)."""
    latest = latest_version(store, model_name)
    reset = read_reset(store, model_name)
    if latest is None or (reset is not None and int(latest) <= int(reset["after_version"])):
        return None, reset
    return latest, reset


def schema_text(store: ObjectStore, model_name: str, version: str | None = None) -> tuple[str, str]:
    """(schema.pbtxt text, version) of ``version``, else of the reference version."""
    if version is None:
        version, reset = reference_version(store, model_name)
        if version is None:
            why = (
                f"reset after version {reset['after_version']} (kfkit schema reset)"
                if reset
                else "no pushed version"
            )
            raise KfkitError(f"model {model_name} has no reference schema: {why}; the next run infers one")
    uri = version_folder(model_name, version).child(names.SCHEMA_FILE)
    if not store.exists(uri):
        raise KfkitError(
            f"{uri}: version {version} of {model_name} keeps no schema (pushed before kfkit kept one)"
        )
    return store.get_bytes(uri).decode(), str(version)


def parse(text: str, where: str):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    try:
        return text_format.Parse(text, schema_pb2.Schema())
    except text_format.ParseError as exc:
        raise KfkitError(f"{where}: not a valid TFDV schema: {exc}") from None


def describe(schema) -> list[dict[str, Any]]:
    """One row a feature: name, type, presence, domain (values or range), comparator thresholds."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    domains = {d.name: list(d.value) for d in schema.string_domain}
    rows = []
    for feature in schema.feature:
        row: dict[str, Any] = {
            "feature": feature.name,
            "type": schema_pb2.FeatureType.Name(feature.type),
            "min_presence": round(feature.presence.min_fraction, 4),
        }
        if feature.HasField("domain") or feature.HasField("string_domain"):
            values = (
                domains.get(feature.domain)
                if feature.HasField("domain")
                else list(feature.string_domain.value)
            )
            row["values"] = values or []
        if feature.HasField("int_domain"):
            row["range"] = [feature.int_domain.min, feature.int_domain.max]
        if feature.HasField("float_domain"):
            row["range"] = [feature.float_domain.min, feature.float_domain.max]
        for kind in ("drift_comparator", "skew_comparator"):
            if feature.HasField(kind):
                comparator = getattr(feature, kind)
                if comparator.HasField("infinity_norm"):
                    row[kind] = comparator.infinity_norm.threshold
                elif comparator.HasField("jensen_shannon_divergence"):
                    row[kind] = comparator.jensen_shannon_divergence.threshold
        rows.append(row)
    return rows


def diff(old, new) -> list[dict[str, Any]]:
    """What changed between two schemas, a row a change: added, removed, type, presence, values."""
    before = {row["feature"]: row for row in describe(old)}
    after = {row["feature"]: row for row in describe(new)}
    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            changes.append({"feature": name, "change": "removed"})
        elif name not in before:
            changes.append({"feature": name, "change": "added", "type": after[name]["type"]})
        else:
            for key in ("type", "min_presence", "range"):
                if before[name].get(key) != after[name].get(key):
                    changes.append(
                        {
                            "feature": name,
                            "change": key,
                            "from": before[name].get(key),
                            "to": after[name].get(key),
                        }
                    )
            old_values, new_values = set(before[name].get("values", [])), set(after[name].get("values", []))
            if old_values != new_values:
                changes.append(
                    {
                        "feature": name,
                        "change": "values",
                        "added": sorted(new_values - old_values),
                        "removed": sorted(old_values - new_values),
                    }
                )
    return changes


def freeze(
    store: ObjectStore, model_name: str, out: Path, version: str | None = None, force: bool = False
) -> str:
    """Write the reference (or ``version``'s) schema to ``out`` to review and commit; the version."""
    text, version = schema_text(store, model_name, version)
    if out.exists() and not force:
        raise KfkitError(f"{out}: exists; nothing written (--force overwrites)")
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Frozen from {version_folder(model_name, version)}{names.SCHEMA_FILE} by kfkit schema freeze.\n"
    )
    out.write_text(header + text)
    return version


def reset(store: ObjectStore, model_name: str) -> dict[str, Any]:
    """Record that new data is not checked against any version up to the latest; the record."""
    latest = latest_version(store, model_name)
    if latest is None:
        raise KfkitError(f"model {model_name} has no pushed version: there is no reference to reset")
    record = {
        "model_name": model_name,
        "after_version": int(latest),
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "by": getpass.getuser(),
    }
    store.put_bytes(reset_uri(model_name), json.dumps(record, indent=2).encode(), "application/json")
    return record
