"""Build the SeldonDeployment (``machinelearning.seldon.io/v1``) that serves a pushed model.

The model is fetched from the object store by Seldon's storage initializer, which reads
rclone-style credentials from the Secret named by ``envSecretRefName``: no credential is
ever written into the manifest.
"""

from __future__ import annotations

import re
from typing import Any

from kfkit.images import SERVING_IMAGE  # noqa: E402 - re-exported for callers

DEFAULT_NAMESPACE = "kfkit-serving"
STORAGE_SECRET = "kfkit-seldon-rclone"
MODEL_CLASS = "kfkit.serving.model.KfkitModel"


def resource_name(model_name: str) -> str:
    """A DNS-1123 name for the deployment (Kubernetes refuses anything else)."""
    name = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")
    return name[:63].rstrip("-") or "model"


def seldon_deployment(
    model_name: str,
    version: str,
    model_uri: str,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = SERVING_IMAGE,
    secret_name: str = STORAGE_SECRET,
    replicas: int = 1,
) -> dict[str, Any]:
    name = resource_name(model_name)
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/managed-by": "kfkit",
        "kfkit.io/model-version": str(version),
    }
    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "name": name,
            "protocol": "seldon",
            "predictors": [
                {
                    "name": f"v{version}",
                    "replicas": replicas,
                    "traffic": 100,
                    "labels": labels,
                    "componentSpecs": [
                        {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "model",
                                        "image": image,
                                        "env": [
                                            # One OpenMP thread per worker: tree models
                                            # collapse when workers' threads fight for cores.
                                            {"name": "OMP_NUM_THREADS", "value": "1"},
                                            {"name": "KFKIT_MODEL_DIR", "value": "/mnt/models"},
                                        ],
                                        "securityContext": {
                                            "runAsNonRoot": True,
                                            "allowPrivilegeEscalation": False,
                                        },
                                    }
                                ]
                            }
                        }
                    ],
                    "graph": {
                        "name": "model",
                        "type": "MODEL",
                        "modelUri": model_uri,
                        "envSecretRefName": secret_name,
                        "children": [],
                    },
                }
            ],
        },
    }
