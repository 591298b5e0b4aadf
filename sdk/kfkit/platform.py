"""What a pipeline adds to kfkit's tasks for a Kubernetes cluster (kfp-kubernetes): names and
keys of Kubernetes objects, never values. kfp.local ignores all of it; ``kfkit run-local`` gives
its tasks the same variables from its own environment."""

from __future__ import annotations

from kfp import dsl, kubernetes

from kfkit import names, signing


def use_object_store(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The task reads the object store's endpoint and credentials from kfkit's Secret
    (``kfkit-object-store`` in the run's namespace, from manifests/pipelines/) as environment
    variables. Every kfkit component that reads or writes the store needs it."""
    kubernetes.use_secret_as_env(task, names.OBJECT_STORE_SECRET, names.OBJECT_STORE_SECRET_KEYS)
    return task


def use_model_signing_key(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The task signs the models it writes with the private key in kfkit's Secret
    (``kfkit-model-signing``, key ``signing-key.pem``), mounted as a read-only file whose path is
    ``KFKIT_SIGNING_KEY_FILE``. Train needs it."""
    kubernetes.use_secret_as_volume(task, signing.SIGNING_KEY_SECRET, mount_path=signing.SIGNING_KEY_MOUNT)
    task.set_env_variable(
        signing.SIGNING_KEY_ENV, f"{signing.SIGNING_KEY_MOUNT}/{signing.SIGNING_KEY_SECRET_FILE}"
    )
    return task


def use_trusted_model_keys(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The task accepts models signed by the public keys in kfkit's ConfigMap
    (``kfkit-trusted-model-keys``), mounted as the folder ``KFKIT_TRUSTED_KEYS_DIR``. Every task
    that loads or downloads a model (resolve_baseline, evaluate) needs it."""
    kubernetes.use_config_map_as_volume(
        task, signing.TRUSTED_KEYS_CONFIG_MAP, mount_path=signing.TRUSTED_KEYS_MOUNT
    )
    task.set_env_variable(signing.TRUSTED_KEYS_DIR_ENV, signing.TRUSTED_KEYS_MOUNT)
    return task
