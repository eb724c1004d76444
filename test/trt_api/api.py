"""The real TensorRT Python API of each supported version, from the committed JSON manifests.

The manifests (``test/trt_api/manifests/tensorrt-<version>.json``) were dumped from the real
bindings wheels (``tensorrt-bindings`` 8.6.1, ``tensorrt-cu12-bindings`` 10.3.0, 10.13.3.9,
10.16.1.11, 11.4.0.106) made importable with stub libraries; ``bash scripts/trt_api.sh
--manifests`` regenerates them. This module answers: does version V have this name, and does
this call bind to one of its pybind11 signatures (argument count, keyword names, enum types)?
"""

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

MANIFESTS = Path(__file__).resolve().parent / 'manifests'
#: The real versions, oldest first.
VERSIONS = ('8.6.1', '10.3.0', '10.13.3.9', '10.16.1.11', '11.4.0.106')
#: The PyPI package holding each version's bindings.
PACKAGES = {'8.6.1': 'tensorrt-bindings'}
PREFIXES = ('tensorrt.tensorrt.', 'tensorrt.')


def version_tuple(version: str) -> Tuple[int, ...]:
    """Return the numeric parts of a version string."""
    return tuple(int(p) for p in re.findall(r'\d+', version)[:4])


@lru_cache(maxsize=None)
def manifest(version: str) -> Dict[str, Any]:
    """Return the manifest of a real version (one of VERSIONS)."""
    return json.loads((MANIFESTS / f'tensorrt-{version}.json').read_text())


def surface_for(version: str) -> str:
    """Return the real version whose API surface emulates ``version``.

    The newest real version of the same major that is not newer, else the oldest of that
    major (10.0.1 -> 10.3.0, 10.8.0 -> 10.3.0, 11.0.0 -> 11.4.0.106); for a major without a
    manifest (a refused version such as 8.5 or 12.0), the nearest real version.
    """
    wanted = version_tuple(version)
    same = [v for v in VERSIONS if version_tuple(v)[0] == wanted[0]]
    if not same:
        older = [v for v in VERSIONS if version_tuple(v) <= wanted]
        return older[-1] if older else VERSIONS[0]
    older = [v for v in same if version_tuple(v)[:3] <= wanted[:3]]
    return older[-1] if older else same[0]


def strip_type(text: str) -> str:
    """Return a pybind11 type name without the module prefix."""
    text = text.strip()
    for prefix in PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def _split_top(text: str) -> List[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char in '([{<':
            depth += 1
        elif char in ')]}>':
            depth -= 1
        if char == ',' and depth == 0:
            parts.append(''.join(current))
            current = []
        else:
            current.append(char)
    if ''.join(current).strip():
        parts.append(''.join(current))
    return parts


@dataclass(frozen=True)
class Param:
    """One parameter of a pybind11 signature."""

    name: str
    type: str
    has_default: bool


@dataclass(frozen=True)
class Signature:
    """A parsed pybind11 signature (without ``self``)."""

    text: str
    params: Tuple[Param, ...]
    returns: str

    @classmethod
    def parse(cls, text: str, drop_self: bool = True) -> 'Signature':
        """Parse ``name(a: T, b: U = d) -> R`` (or ``(arg0: C, arg1: T) -> R``)."""
        start = text.index('(')
        depth, end = 0, start
        for end in range(start, len(text)):
            depth += text[end] in '([{<'
            depth -= text[end] in ')]}>'
            if depth == 0:
                break
        inner, rest = text[start + 1:end], text[end + 1:]
        params = []
        for piece in _split_top(inner):
            piece = piece.strip()
            head, eq, _ = piece.partition(' = ')
            name, _, typ = head.partition(': ')
            params.append(Param(name.strip(), strip_type(typ), bool(eq)))
        if drop_self and params and params[0].name in ('self', 'arg0'):
            params = params[1:]
        returns = strip_type(rest.partition('->')[2]) if '->' in rest else ''
        return cls(text, tuple(params), returns)

    def bind(self, args: Sequence[Any], kwargs: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Return {param: value} if the call binds (count and keyword names), else None."""
        if len(args) > len(self.params):
            return None
        bound = {p.name: value for p, value in zip(self.params, args)}
        for key, value in kwargs.items():
            names = [p.name for p in self.params]
            if key not in names or key in bound:
                return None
            bound[key] = value
        for param in self.params:
            if param.name not in bound and not param.has_default:
                return None
        return bound


class Api:
    """Look-ups into one version's manifest."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.data = manifest(version)

    @property
    def classes(self) -> Dict[str, Any]:
        """Class qualname -> class entry."""
        return self.data['classes']

    @property
    def enums(self) -> Dict[str, Any]:
        """Enum qualname -> enum entry (members with their real values)."""
        return self.data['enums']

    def module_names(self) -> List[str]:
        """Every public name of the ``tensorrt`` module."""
        return list(self.data['module'])

    def members(self, qualname: str) -> Dict[str, str]:
        """Public members of a class or enum: name -> 'method' | 'property' | 'attribute' ..."""
        if qualname in self.enums:
            return {name: 'member' for name in self.enums[qualname]['members']}
        entry = self.classes.get(qualname)
        if entry is None:
            return {}
        out: Dict[str, str] = {}
        for name in entry.get('inherited_methods', {}):
            out[name] = 'method'
        for name in entry.get('inherited_properties', {}):
            out[name] = 'property'
        out.update({name: 'method' for name in entry['methods']})
        out.update({name: 'property' for name in entry['properties']})
        out.update({name: 'attribute' for name in entry.get('attributes', {})})
        for nested in entry.get('nested', []):
            out[nested['name']] = 'nested'
        return out

    def has(self, dotted: str) -> bool:
        """Whether ``Name`` or ``Class.member`` (or ``Class.Nested.member``) exists."""
        if dotted in self.data['module'] or dotted in self.classes or dotted in self.enums:
            return True
        owner, _, member = dotted.rpartition('.')
        if member == '__init__':
            return bool((self.classes.get(owner) or {}).get('constructor'))
        return bool(owner) and member in self.members(owner)

    def _defining(self, qualname: str, name: str, kind: str) -> Optional[Dict[str, Any]]:
        entry = self.classes.get(qualname)
        if entry is None:
            return None
        table = entry['methods'] if kind == 'method' else entry['properties']
        if name in table:
            return table[name]
        inherited = entry.get(f'inherited_{kind}s', {}).get(name)
        return self._defining(inherited, name, kind) if inherited else None

    def method_signatures(self, qualname: str, name: str) -> List[Signature]:
        """Return the parsed signatures of a method (``__init__``: constructor), [] if absent."""
        if name == '__init__':
            ctor = (self.classes.get(qualname) or {}).get('constructor') or {}
            return [Signature.parse(s) for s in ctor.get('signatures', [])]
        entry = self._defining(qualname, name, 'method')
        return [Signature.parse(s) for s in (entry or {}).get('signatures', [])]

    def property_entry(self, qualname: str, name: str) -> Optional[Dict[str, Any]]:
        """Return the property's entry (readonly flag, setter signature), or None."""
        return self._defining(qualname, name, 'property')

    def method_kind(self, qualname: str, name: str) -> str:
        """'instance', 'static' or 'class' ('' when absent)."""
        entry = self._defining(qualname, name, 'method')
        return (entry or {}).get('kind', '')


def all_apis() -> List[Api]:
    """Return an Api for every real version."""
    return [Api(v) for v in VERSIONS]
