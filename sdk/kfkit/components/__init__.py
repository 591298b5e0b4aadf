"""kfkit's components, as kfp components to compose into your own pipelines::

    from kfkit.components import ingest, validate, train, evaluate, push

Each lives in its own folder, ``components/<name>/`` in the repository (the wheel installs the
folders here): ``component.py`` (the kfp declaration), ``executor.py`` (the logic), README,
``metadata.yaml``, OWNERS and tests. ``kfkit.components.<name>`` is the kfp component; the
folder's modules import with ``from kfkit.components.<name>.executor import run`` or
``from kfkit.components.<name> import executor`` (not ``import kfkit.components.<name>.executor
as x``, whose attribute lookup meets the component).
"""

import importlib
import sys
import types
from pathlib import Path

# In a checkout the component folders sit at the repository's top level; the built wheel
# copies them into this package. Either way they import as kfkit.components.<name>.
_CHECKOUT = Path(__file__).resolve().parents[3] / "components"
if not (Path(__file__).parent / "ingest").is_dir() and _CHECKOUT.is_dir():
    __path__.append(str(_CHECKOUT))  # noqa: F821 - a package's __path__ is a module global

__all__ = sorted(p.parent.name for folder in __path__ for p in Path(folder).glob("*/component.py"))  # noqa: F821


class _Components(types.ModuleType):
    """Loads each component on first use, and keeps ``kfkit.components.<name>`` the component.

    Lazily: a task process imports only its executor, and kfp's ``kfp.dsl`` in a task has no
    ``dsl.component`` to declare the others with. And Python binds an imported sub-package on
    its parent (importing ``kfkit.components.train.executor`` sets ``kfkit.components.train``
    to the folder's package), which would hide the component: that binding is ignored here.
    """

    def __getattr__(self, name: str):
        if name not in __all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        component = getattr(importlib.import_module(f"{__name__}.{name}.component"), name)
        super().__setattr__(name, component)
        return component

    def __setattr__(self, name: str, value) -> None:
        if name in __all__ and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *__all__})


sys.modules[__name__].__class__ = _Components
