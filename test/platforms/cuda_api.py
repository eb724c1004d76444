"""The cuda-bindings calls the package makes, and what a cuda-bindings release defines.

- ``used_names(root)``: ``{'driver:cuMemAlloc': [(positional, keywords), ...],
  'driver:CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL': [], ...}`` for every
  attribute of ``cuda.bindings.driver`` / ``runtime`` / ``nvrtc`` the package (not the
  benchmarks) spells, through the names it binds those modules to (``driver``, ``drv``,
  ``self._drv``, ``runtime``, ``self._rt``, ``cudart``, ``nvrtc``).
- ``describe(modules, name)``: what a release defines for one name: None, ``{'kind': 'value'}``
  or ``{'kind': 'function', 'params': [[name, kind, has_default], ...]}`` from
  ``inspect.signature`` (cuda-bindings' Cython functions carry their signatures).

``scripts/platform_snapshots.py cuda-bindings`` installs each release into a temporary folder
and writes ``snapshots/cuda_bindings/<version>.json``; the test holds the calls to them.
"""

import ast
import inspect
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

#: The local names the package binds each cuda.bindings module to.
RECEIVERS = {'driver': 'driver', 'drv': 'driver', '_drv': 'driver', 'runtime': 'runtime',
             'rt': 'runtime', '_rt': 'runtime', 'cudart': 'runtime', 'nvrtc': 'nvrtc'}
MODULES = ('driver', 'runtime', 'nvrtc')
Shape = Tuple[int, Tuple[str, ...]]


def _receiver(expr: ast.AST) -> Optional[str]:
    if isinstance(expr, ast.Name):
        return RECEIVERS.get(expr.id)
    if (isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name)
            and expr.value.id == 'self'):
        return RECEIVERS.get(expr.attr)
    return None


def used_names(root: Path) -> Dict[str, List[Shape]]:
    """Return every cuda.bindings name the package uses, with its call shapes."""
    used: Dict[str, set] = {}
    for path in sorted((root / 'tensorrt_yolox_py').rglob('*.py')):
        tree = ast.parse(path.read_text(), str(path))
        calls = {id(node.func): node for node in ast.walk(tree) if isinstance(node, ast.Call)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            module = _receiver(node.value)
            if module is None or not node.attr[:2].lower() in ('cu', 'nv'):
                continue
            parent_name = f'{module}:{node.attr}'
            shapes = used.setdefault(parent_name, set())
            call = calls.get(id(node))
            if call is not None:
                shapes.add((len(call.args), tuple(sorted(k.arg or '**' for k in call.keywords))))
        for node in ast.walk(tree):   # enum members: driver.CUenum.MEMBER
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and _receiver(node.value.value) and node.value.attr[:2].lower() == 'cu'):
                module = _receiver(node.value.value)
                used.setdefault(f'{module}:{node.value.attr}.{node.attr}', set())
    return {name: sorted(shapes) for name, shapes in sorted(used.items())}


def describe(modules: Dict[str, Any], name: str) -> Optional[Dict[str, Any]]:
    """Describe ``name`` ('driver:cuMemAlloc', 'driver:CUenum.MEMBER') in loaded modules."""
    module, path = name.split(':', 1)
    obj: Any = modules[module]
    for part in path.split('.'):
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    if callable(obj) and not isinstance(obj, type):
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            return {'kind': 'function', 'params': None}
        kinds = {inspect.Parameter.POSITIONAL_ONLY: 'posonly',
                 inspect.Parameter.POSITIONAL_OR_KEYWORD: 'positional',
                 inspect.Parameter.VAR_POSITIONAL: 'varargs',
                 inspect.Parameter.KEYWORD_ONLY: 'kwonly',
                 inspect.Parameter.VAR_KEYWORD: 'varkw'}
        return {'kind': 'function',
                'params': [[p.name, kinds[p.kind], p.default is not inspect.Parameter.empty]
                           for p in signature.parameters.values()]}
    return {'kind': 'value'}


def binds(shape: Shape, entry: Dict[str, Any]) -> bool:
    """Return whether a call of ``shape`` binds to the function ``entry``."""
    params = entry.get('params')
    if params is None:
        return True   # no signature recorded: existence only
    positional, keywords = shape
    slots = [p for p in params if p[1] in ('posonly', 'positional')]
    if positional > len(slots) and not any(p[1] == 'varargs' for p in params):
        return False
    names = {p[0] for p in params if p[1] in ('positional', 'kwonly')}
    if any(k != '**' and k not in names for k in keywords) and not any(
            p[1] == 'varkw' for p in params):
        return False
    covered = {p[0] for p in slots[:positional]} | set(keywords)
    return '**' in keywords or all(p[2] or p[0] in covered for p in params
                                   if p[1] in ('posonly', 'positional', 'kwonly'))
