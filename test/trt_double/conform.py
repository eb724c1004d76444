"""Hold the double's ``tensorrt`` module to one real version's API (from its manifest).

``conform(module, api, control)`` runs once per version mode, right after the emulator was
executed:

- module names the real module lacks are deleted (test machinery lives in ``control``);
- in every class, public members the real class lacks are deleted, and a class the package
  cannot subclass refuses new public attributes (pybind11 objects have no ``__dict__``);
- every public method, constructor and property setter is wrapped: a call binds to one of
  the real pybind11 signatures (argument count, keyword names) or raises pybind11's
  ``TypeError: incompatible function arguments``; enum arguments must be members of that
  enum (pybind11 enums do not convert from int), ``int`` refuses ``float``, ``str`` refuses
  non-strings, class arguments must be instances (or None), ``buffer`` must support the
  buffer protocol; a readonly property refuses assignment. Validated calls are recorded in
  ``control.api_calls``.
"""

import functools
from typing import Any, Dict, List

from trt_api.api import Api, Signature

INT_TYPES = ('int', 'typing.SupportsInt')
FLOAT_TYPES = ('float', 'typing.SupportsFloat')


def _type_ok(api: Api, module: Any, typ: str, value: Any) -> bool:
    if typ in api.enums:
        cls = _lookup(module, typ)
        return cls is None or isinstance(value, cls)
    if typ in INT_TYPES:
        return not isinstance(value, float) and value is not None and hasattr(value,
                                                                              '__index__')
    if typ in FLOAT_TYPES:
        return isinstance(value, (int, float)) or hasattr(value, '__float__')
    if typ == 'str':
        return isinstance(value, (str, bytes))
    if typ in ('buffer', 'typing_extensions.Buffer', 'collections.abc.Buffer'):
        try:
            memoryview(value)
        except TypeError:
            return False
        return True
    if typ in api.classes:
        cls = _lookup(module, typ)
        return value is None or cls is None or isinstance(value, cls)
    return True


def _lookup(module: Any, qualname: str) -> Any:
    obj = module
    for part in qualname.split('.'):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _incompatible(name: str, sigs: List[Signature], args: tuple, kwargs: dict) -> TypeError:
    lines = [f'{name}(): incompatible function arguments. The following argument types are '
             'supported:']
    lines += [f'    {i}. {sig.text}' for i, sig in enumerate(sigs, 1)]
    shown = ', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])
    lines += ['', f'Invoked with: {shown}']
    return TypeError('\n'.join(lines))


def check_call(api: Api, module: Any, qualname: str, name: str, args: tuple,
               kwargs: dict) -> None:
    """Raise pybind11's TypeError unless the call binds to a real signature of the method."""
    sigs = api.method_signatures(qualname, name)
    for sig in sigs:
        bound = sig.bind(args, kwargs)
        if bound is None:
            continue
        types = {p.name: p.type for p in sig.params}
        if all(_type_ok(api, module, types[k], v) for k, v in bound.items()):
            return
    raise _incompatible(name, sigs, args, kwargs)


def _wrap_method(api: Api, module: Any, control: Any, qualname: str, name: str,
                 fn: Any) -> Any:
    @functools.wraps(fn)
    def validated(self: Any, *args: Any, **kwargs: Any) -> Any:
        check_call(api, module, qualname, name, args, kwargs)
        control.api_calls.append((f'{qualname}.{name}', args, kwargs))
        return fn(self, *args, **kwargs)

    return validated


def _wrap_property(api: Api, module: Any, control: Any, qualname: str, name: str,
                   prop: property, entry: Dict[str, Any]) -> property:
    setter: Any = None
    if prop.fset is not None and not entry.get('readonly'):
        sig = Signature.parse(entry.get('setter_signature') or '(arg0: x, arg1: object)')
        typ = sig.params[0].type if sig.params else ''
        fset = prop.fset

        def checked(self: Any, value: Any) -> None:
            if not _type_ok(api, module, typ, value):
                raise TypeError(f'(): incompatible function arguments. The following argument '
                                f'types are supported:\n    1. {sig.text}\n\nInvoked with: '
                                f'{value!r}')
            control.api_calls.append((f'{qualname}.{name}=', (value,), {}))
            fset(self, value)

        setter = checked
    return property(prop.fget, setter, None, prop.__doc__)


def _strict_setattr(cls: Any, allowed: set) -> None:
    original = cls.__setattr__

    def __setattr__(self: Any, key: str, value: Any) -> None:  # noqa: N807
        if type(self) is cls and not key.startswith('_') and key not in allowed:
            raise AttributeError(f"'tensorrt.tensorrt.{cls.__name__}' object has no "
                                 f"attribute '{key}'")
        original(self, key, value)

    cls.__setattr__ = __setattr__


def _conform_class(api: Api, module: Any, control: Any, qualname: str, cls: Any) -> None:
    members = api.members(qualname)
    for attr, value in list(vars(cls).items()):
        if attr.startswith('_') and attr != '__init__':
            continue
        if attr == '__init__':
            if api.classes[qualname].get('constructor'):
                setattr(cls, attr, _wrap_method(api, module, control, qualname, attr, value))
            continue
        if attr not in members:
            delattr(cls, attr)
            control.pruned.append(f'{qualname}.{attr}')
            continue
        if isinstance(value, property):
            entry = api.property_entry(qualname, attr) or {}
            setattr(cls, attr, _wrap_property(api, module, control, qualname, attr, value,
                                              entry))
        elif isinstance(value, staticmethod):
            continue
        elif callable(value) and not isinstance(value, type):
            setattr(cls, attr, _wrap_method(api, module, control, qualname, attr, value))
    _strict_setattr(cls, set(members))


def conform(module: Any, api: Api, control: Any) -> None:
    """Prune and wrap ``module`` to ``api``'s real surface; see the module docstring."""
    real = set(api.module_names())
    for name in list(vars(module)):
        if name.startswith('_'):
            continue
        if name not in real:
            delattr(module, name)
            control.pruned.append(name)
    done = set()

    def visit(qualname: str, cls: Any) -> None:
        if id(cls) in done or not isinstance(cls, type):
            return
        done.add(id(cls))
        if qualname in api.classes:
            _conform_class(api, module, control, qualname, cls)
            for nested in api.classes[qualname].get('nested', []):
                child = getattr(cls, nested['name'], None)
                if child is not None:
                    visit(nested['target'], child)

    for name in list(vars(module)):
        if not name.startswith('_'):
            visit(name, getattr(module, name))
