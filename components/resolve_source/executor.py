"""resolve_source's logic: the content identities a run's cache keys follow.

KFP caches a task on its input parameters' values and its input artifacts' ids; a source URI
or a model name alone stays the same while the data, the registry or the serving version
behind it changes. This step runs uncached, first, and turns each into a string that changes
exactly when the content does (object etags from a listing, no data read; sha256 of local
files; the version the deploy target serves), so ingest's and resolve_baseline's keys, and
every key after them, follow the content.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfkit import names
from kfkit.components.ingest.executor import list_source, source_identity
from kfkit.errors import KfkitError
from kfkit.storage import ObjectStore, ObjectUri, is_object_uri

if TYPE_CHECKING:
    from kfkit.runtime import Task

NO_REGISTRY = "none"
NO_SCHEMA = "none"
# The component's outputs, one string each.
IDENTITIES = ("source_identity", "baseline_identity", "schema_identity")


def schema_identity(schema_uri: str, store: ObjectStore | None = None) -> str:
    """The curated schema's content as one string (its object's etag, a local file's sha256),
    ``none`` without one: validate's cache key follows an edited schema at the same URI.
    Validate asks again before it reads the schema and refuses one that changed since."""
    if not schema_uri:
        return NO_SCHEMA
    if is_object_uri(schema_uri):
        info = (store or ObjectStore.from_env()).stat(ObjectUri.parse(schema_uri))
        if info is None:
            raise KfkitError(f"{schema_uri}: curated schema not found")
        tag = f"etag:{info.etag}"
    else:
        path = Path(schema_uri)
        if not path.is_file():
            raise KfkitError(f"{schema_uri}: curated schema not found")
        tag = f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    return "sha256:" + hashlib.sha256(f"{schema_uri}\t{tag}\n".encode()).hexdigest()


def registry_identity(model_name: str, store: ObjectStore) -> str:
    """sha256 over every object (URI, etag) under the model's registry folder: a push adds a
    version, `kfkit schema reset` writes its file there; ``none`` when empty."""
    if not model_name or not store.bucket_exists(names.MODELS_BUCKET):
        return NO_REGISTRY
    folder = ObjectUri(names.MODELS_BUCKET, f"{names.check_model_name(model_name)}/")
    objects = store.list(folder)
    if not objects:
        return NO_REGISTRY
    lines = "".join(f"{o.uri}\t{o.etag}\n" for o in objects)
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def baseline_identity(
    model_name: str, store: ObjectStore, deploy_strategy: str | None = None, serving_namespace: str = ""
) -> str:
    """What resolve_baseline will resolve, as one string: the registry folder's identity and the
    version the deploy target serves now (asked as resolve_baseline asks it: a rollback or a
    promotion changes the baseline with no change in the registry); ``none`` for no registry."""
    from kfkit import deploy

    registry = registry_identity(model_name, store)
    if registry == NO_REGISTRY:
        return NO_REGISTRY
    served = None
    if deploy_strategy is not None:
        served, _ = deploy.served_version(model_name, deploy_strategy, serving_namespace)
    # The reason is left out: an unreachable target's error text is no content.
    state = f"{registry}\nserved\t{served or '-'}\n"
    return "sha256:" + hashlib.sha256(state.encode()).hexdigest()


def resolve(
    source_uri: str,
    model_name: str = "",
    store: ObjectStore | None = None,
    deploy_strategy: str | None = None,
    serving_namespace: str = "",
    schema_uri: str = "",
) -> dict[str, Any]:
    """The three identities, and how many files the source has."""
    files = list_source(source_uri, store)
    baseline = NO_REGISTRY
    if model_name:
        baseline = baseline_identity(
            model_name, store or ObjectStore.from_env(), deploy_strategy, serving_namespace
        )
    return {
        "source_identity": source_identity(files),
        "baseline_identity": baseline,
        "schema_identity": schema_identity(schema_uri, store),
        "source_files": len(files),
    }


def check(params: dict[str, Any]) -> None:
    """The parameters alone, before any task runs. ``deploy_strategy`` is push's parameter:
    push checks it (run-local names the first task whose check refuses a value)."""
    if params.get("model_name"):
        names.check_model_name(params["model_name"])


def run(task: Task) -> None:
    p = task.params
    found = resolve(
        p["source_uri"],
        p.get("model_name") or "",
        deploy_strategy=p.get("deploy_strategy"),
        serving_namespace=p.get("serving_namespace") or "",
        schema_uri=p.get("schema_uri") or "",
    )
    for name in IDENTITIES:
        Path(p[name]).parent.mkdir(parents=True, exist_ok=True)
        Path(p[name]).write_text(found[name])
    task.say(
        f"{found['source_files']} file(s) at {p['source_uri']}: {found['source_identity'][:19]}; "
        f"baseline {found['baseline_identity'][:19]}"
        + (f"; schema {found['schema_identity'][:19]}" if found["schema_identity"] != NO_SCHEMA else "")
    )
