"""PEP 562 lazy attributes for a package's ``__init__``: public names imported on first use.

``__getattr__, __dir__ = lazy_attributes(__name__, globals(), {"name": "package.module", ...})``
makes ``package.name`` import ``package.module`` only when it is first read (then it is cached in
the package's namespace), so importing the package stays cheap (the root package and ``io`` use it:
``digitaltwin --help`` and the front end's helper process do not import JAX).
"""
from __future__ import annotations

import importlib
from typing import Callable

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, namespace: dict, names: dict[str, str]) -> tuple[Callable, Callable]:
    """The package's ``(__getattr__, __dir__)`` for ``names`` (``attribute -> defining module``)."""

    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            namespace[name] = value  # later look-ups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
