"""Lazy attributes of a package (PEP 562): its public names resolve on first use, so importing the package (the
CLI builds every command's parser) does not import torch and diffusers."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_attributes(package: str, modules: dict[str, tuple[str, ...]]) -> Callable[[str], object]:
    """The module ``__getattr__`` of ``package``: each name of ``modules[module]`` is imported from ``module`` on
    first use."""
    owner = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str):
        if name not in owner:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(owner[name]), name)

    return __getattr__
