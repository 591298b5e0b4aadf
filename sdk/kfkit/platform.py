"""What a pipeline adds to kfkit's tasks for a Kubernetes cluster (kfp-kubernetes): names and
keys of Kubernetes objects, never values. kfp.local ignores all of it; ``kfkit run-local`` gives
its tasks the same variables from its own environment."""

from __future__ import annotations

from kfp import dsl, kubernetes

from kfkit import names


def use_object_store(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The task reads the object store's endpoint and credentials from kfkit's Secret
    (``kfkit-object-store`` in the run's namespace, from manifests/pipelines/) as environment
    variables. Every kfkit component that reads or writes the store needs it."""
    kubernetes.use_secret_as_env(task, names.OBJECT_STORE_SECRET, names.OBJECT_STORE_SECRET_KEYS)
    return task
