"""Container images of kfkit's components. Built from ``components/*/Dockerfile`` with the
lock file; only the validate image carries TensorFlow."""

from kfkit import __version__

REGISTRY = "ghcr.io/kfkit"
BASE_IMAGE = f"{REGISTRY}/kfkit:{__version__}"
VALIDATE_IMAGE = f"{REGISTRY}/kfkit-validate:{__version__}"
SERVING_IMAGE = f"{REGISTRY}/kfkit-serving:{__version__}"
