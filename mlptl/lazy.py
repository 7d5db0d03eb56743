"""Names a package loads on first use (PEP 562), so that importing it for its specs does not import what
only some processes need (torch and nequip in the processes that train, Ray and MLflow in the driver)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, module_of: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` comes from the submodule ``module_of[name]``
    (relative to ``package``), imported when the name is first asked for."""

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)

    return __getattr__
