"""kfkit's components, as kfp components to compose into your own pipelines::

    from kfkit.components import ingest, validate, train, evaluate, push

Each lives in its own folder, ``components/<name>/`` in the repository (the wheel installs the
folders here): ``component.py`` (the kfp declaration), ``executor.py`` (the logic), README,
``metadata.yaml``, OWNERS and tests.
"""

from pathlib import Path

# In a checkout the component folders sit at the repository's top level; the built wheel
# copies them into this package. Either way they import as kfkit.components.<name>.
_CHECKOUT = Path(__file__).resolve().parents[3] / "components"
if not (Path(__file__).parent / "ingest").is_dir() and _CHECKOUT.is_dir():
    __path__.append(str(_CHECKOUT))  # noqa: F821 - a package's __path__ is a module global

from kfkit.components.evaluate.component import evaluate  # noqa: E402
from kfkit.components.ingest.component import ingest  # noqa: E402
from kfkit.components.push.component import push  # noqa: E402
from kfkit.components.train.component import train  # noqa: E402
from kfkit.components.validate.component import validate  # noqa: E402

__all__ = ["evaluate", "ingest", "push", "train", "validate"]
