"""Lazy attributes of a package (PEP 562): its public names resolve on first use, so importing the package (the
CLI builds every command's parser) does not import torch and diffusers."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_attributes(package: str, names: dict[str, str]) -> Callable[[str], object]:
    """The module ``__getattr__`` of ``package`` that imports ``names[name]`` (a module) for ``name``."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name]), name)

    return __getattr__
