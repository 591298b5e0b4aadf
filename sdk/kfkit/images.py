"""Container images of kfkit's components. Built from ``components/*/Dockerfile`` with the
lock file; only the validate image carries TensorFlow.

Components declare the default images below (their ``component.yaml`` names them). A pipeline
compiled for another registry or tag (``kfkit compile --image-registry R --image-tag T``, or
``KFKIT_IMAGE_REGISTRY`` / ``KFKIT_IMAGE_TAG``) names ``R/<image>:T`` for each kfkit task
instead: :class:`ImageSettings`, applied by :mod:`kfkit.task_settings`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from kfkit import __version__
from kfkit.errors import KfkitError

REGISTRY = "ghcr.io/kfkit"
BASE_IMAGE = f"{REGISTRY}/kfkit:{__version__}"
VALIDATE_IMAGE = f"{REGISTRY}/kfkit-validate:{__version__}"
SERVING_IMAGE = f"{REGISTRY}/kfkit-serving:{__version__}"
IMAGES = (BASE_IMAGE, VALIDATE_IMAGE, SERVING_IMAGE)

REGISTRY_ENV = "KFKIT_IMAGE_REGISTRY"
TAG_ENV = "KFKIT_IMAGE_TAG"
# A registry host with an optional port and path; a tag as Docker defines it.
_REGISTRY_RULE = re.compile(
    r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._/-]*[a-z0-9])?)*$"
)
_TAG_RULE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class ImageSettings:
    """Where a compiled pipeline's kfkit tasks pull their images from."""

    registry: str = REGISTRY
    tag: str = __version__

    def image(self, default_image: str) -> str:
        """``default_image`` (one of kfkit's) under this registry and tag; any other image as is."""
        if default_image not in IMAGES:
            return default_image
        name = default_image[len(REGISTRY) + 1 :].split(":", 1)[0]
        return f"{self.registry}/{name}:{self.tag}"


def is_validate_image(image: str) -> bool:
    """Whether ``image`` is the validate image (TensorFlow), under any registry and tag."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0] == "kfkit-validate"


def image_settings(
    registry: str | None = None, tag: str | None = None, environ: Mapping[str, str] | None = None
) -> ImageSettings:
    """Flag, else environment (``KFKIT_IMAGE_REGISTRY``, ``KFKIT_IMAGE_TAG``), else the defaults;
    a malformed value is one line naming where it came from."""
    environ = os.environ if environ is None else environ
    chosen = {}
    for key, flag, env, rule, default in (
        ("registry", registry, REGISTRY_ENV, _REGISTRY_RULE, REGISTRY),
        ("tag", tag, TAG_ENV, _TAG_RULE, __version__),
    ):
        value, where = (flag, f"--image-{key}") if flag else (environ.get(env, ""), env)
        value = value.strip().rstrip("/") if key == "registry" else value.strip()
        if value and not rule.match(value):
            raise KfkitError(f"{where}: {value!r} is not a valid image {key}")
        chosen[key] = value or default
    return ImageSettings(**chosen)
