"""Lazy import of heavy optional dependencies, with an error that says what to install."""

import importlib
from types import ModuleType

from .errors import MissingDependencyError


def require(module: str, feature: str, install: str) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming ``feature`` and ``install``.

    Example: ``ort = require('onnxruntime', 'the ONNX Runtime backend',
    'pip install onnxruntime')``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the Python module '{module}', which could not be imported "
            f"({exc}). Install it with: {install}") from exc
