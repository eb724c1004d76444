"""What rclpy / launch / launch_ros API the package uses, and what a distribution's sources define.

Two halves, both by reading Python sources with ``ast`` (nothing is imported):

- ``used_names(root)``: every rclpy / launch / launch_ros name the installed code (the package,
  the launch files) imports or calls, with the shapes of its calls: ``'rclpy:init'``,
  ``'rclpy.executors:SingleThreadedExecutor'``, ``'rclpy.node:Node.create_publisher'`` (a
  method called on ``self`` in a subclass of an imported class), ``'rclpy:*.spin_once'`` (a
  method called on some object, matched against every class of those packages), each with the
  calls' (positional count, keyword names, star-args) shapes.
- ``snapshot(used, readers)``: for each used name, what a distribution defines: None (absent),
  ``{'kind': 'value'}``, ``{'kind': 'module'}``, or a callable's parameters
  (``[name, kind, has_default]``, kind one of posonly / positional / kwonly / varargs / varkw),
  its return annotation (source text) and, for classes, the constructor's. ``'*.method'``
  entries hold the signatures of every class of that distribution defining the method.

``compatible(shape, signature)`` says whether a call shape binds to a signature.
``scripts/platform_snapshots.py ros-api`` writes the snapshots; the test reads them.
"""

import ast
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

PACKAGES = ('rclpy', 'launch', 'launch_ros')
#: Method names too generic to attribute to an rclpy / launch object when the receiver's type is
#: unknown (they are the methods of builtin containers, threads, files, ...).
GENERIC = {'get', 'items', 'keys', 'values', 'append', 'extend', 'pop', 'update', 'copy',
           'join', 'start', 'close', 'read', 'write', 'split', 'strip', 'format', 'add',
           'remove', 'clear', 'set', 'wait', 'is_set', 'put', 'acquire', 'release', 'index',
           'count', 'sort', 'setdefault', 'result', 'done', 'cancel', 'run', 'send', 'info',
           'warning', 'error', 'debug', 'exception', 'critical', 'lower', 'upper', 'encode',
           'decode', 'replace', 'startswith', 'endswith', 'insert', 'discard', 'tolist', 'fill',
           'reshape', 'astype', 'view', 'item', 'flush', 'seek', 'fileno', 'destroy', 'notify',
           'notify_all', 'is_alive', 'submit', 'shutdown', 'exists', 'open', 'resolve',
           'mkdir', 'unlink', 'match', 'search', 'group'}
Shape = Tuple[int, Tuple[str, ...], bool, bool]


def _files(root: Path) -> List[Path]:
    return sorted((root / 'tensorrt_yolox_py').rglob('*.py')) + sorted(
        (root / 'launch').glob('*.py'))


def _shape(call: ast.Call) -> Shape:
    star = any(isinstance(arg, ast.Starred) for arg in call.args)
    positional = sum(1 for arg in call.args if not isinstance(arg, ast.Starred))
    keywords = tuple(sorted(k.arg for k in call.keywords if k.arg is not None))
    return positional, keywords, star, any(k.arg is None for k in call.keywords)


class _Scanner(ast.NodeVisitor):
    """Collect one file's uses of the ROS packages' names."""

    def __init__(self, used: Dict[str, Set[Shape]],
                 groups: Optional[Set[Tuple[str, ...]]] = None):
        self.used = used
        self.groups = groups if groups is not None else set()
        self.alternatives: Dict[str, Tuple[str, ...]] = {}   # local name -> its alternatives
        self.aliases: Dict[str, str] = {}   # local name -> 'module' or 'module:Name'
        self.other_imports: Set[str] = set()   # local names of any other imported module
        self.classes: List[Tuple[Set[str], List[str]]] = []   # (own methods, ROS bases)

    def _add(self, name: str, shape: Optional[Shape] = None) -> None:
        shapes = self.used.setdefault(name, set())
        if shape is not None:
            shapes.add(shape)

    # ---- imports (module level or inside functions: the package imports lazily) ----
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split('.')[0] not in PACKAGES:
                self.other_imports.add(alias.asname or alias.name.split('.')[0])
            else:
                self._add(alias.name)
                local = alias.asname or alias.name.split('.')[0]
                self.aliases[local] = alias.name if alias.asname else local

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module or node.module.split('.')[0] not in PACKAGES:
            self.other_imports.update(alias.asname or alias.name for alias in node.names)
            return
        for alias in node.names:
            self._add(f'{node.module}:{alias.name}')
            self.aliases[alias.asname or alias.name] = f'{node.module}:{alias.name}'

    def visit_Try(self, node: ast.Try) -> None:
        """``try: from a import X`` / ``except ImportError: from b import X``: alternatives."""
        caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        if caught & {'ImportError', 'ModuleNotFoundError', '(ImportError, AttributeError)'}:
            found: Dict[str, List[str]] = {}
            for block in [node.body] + [h.body for h in node.handlers]:
                for statement in block:
                    if (isinstance(statement, ast.ImportFrom) and statement.module
                            and not statement.level
                            and statement.module.split('.')[0] in PACKAGES):
                        for alias in statement.names:
                            found.setdefault(alias.asname or alias.name, []).append(
                                f'{statement.module}:{alias.name}')
            for local, names in found.items():
                if len(names) > 1:
                    self.alternatives[local] = tuple(sorted(set(names)))
                    self.groups.add(self.alternatives[local])
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        # rclpy = require('rclpy', ...): the lazy import helper
        value = node.value
        if (isinstance(value, ast.Call) and getattr(value.func, 'id', '') == 'require'
                and value.args and isinstance(value.args[0], ast.Constant)
                and str(value.args[0].value).split('.')[0] in PACKAGES):
            module = str(value.args[0].value)
            self._add(module)
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.aliases[target.id] = module
        self.generic_visit(node)

    # ---- classes deriving from an imported class: self.method(...) ----
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = [self._qualify(base) for base in node.bases]
        ros_bases = [base for base in bases if base and ':' in base]
        own = {item.name for item in node.body
               if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.classes.append((own, ros_bases))
        self.generic_visit(node)
        self.classes.pop()

    def _qualify(self, expr: ast.AST) -> Optional[str]:
        """Return 'module:Name.attr' for an expression rooted at an imported name."""
        parts: List[str] = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name) or expr.id not in self.aliases:
            return None
        base = self.aliases[expr.id]
        parts.reverse()
        if ':' in base:
            return '.'.join([base] + parts)
        # a module: attributes may name submodules (launch.logging.get_logger)
        module = base
        while len(parts) > 1 and not parts[0][:1].isupper():
            candidate = f'{module}.{parts[0]}'
            if candidate in self.used or parts[0] in ('logging', 'utilities', 'actions'):
                module = candidate
                parts = parts[1:]
                continue
            break
        return f'{module}:' + '.'.join(parts) if parts else module

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self._qualify(node)
        if name and ':' in name:
            self._add(name)
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = self._qualify(func)
        if isinstance(func, ast.Name) and func.id in self.alternatives:
            for alternative in self.alternatives[func.id]:
                self._add(alternative, _shape(node))
        elif name:
            self._add(name, _shape(node))
        elif isinstance(func, ast.Name) and func.id in self.aliases:
            self._add(self.aliases[func.id], _shape(node))
        elif isinstance(func, ast.Attribute):
            receiver = func.value
            if (isinstance(receiver, ast.Name) and receiver.id == 'self' and self.classes
                    and self.classes[-1][1] and func.attr not in self.classes[-1][0]):
                for base in self.classes[-1][1]:
                    self._add(f'{base}.{func.attr}', _shape(node))
            elif (not func.attr.startswith('_') and func.attr not in GENERIC
                  and not (isinstance(receiver, ast.Name)
                           and receiver.id in self.other_imports)):
                self._add(f'*.{func.attr}', _shape(node))
        for child in ast.iter_child_nodes(node):
            if child is not func or not name:
                self.visit(child)


def alternatives(root: Path) -> Set[Tuple[str, ...]]:
    """Return the groups of names imported as either-or (``try`` / ``except ImportError``).

    A distribution needs one name of each group (with every call binding), not all of them.
    """
    groups: Set[Tuple[str, ...]] = set()
    for path in _files(root):
        _Scanner({}, groups).visit(ast.parse(path.read_text(), str(path)))
    return groups


def used_names(root: Path) -> Dict[str, List[Shape]]:
    """Return every ROS-package name the installed code uses, with its call shapes."""
    used: Dict[str, Set[Shape]] = {}
    for path in _files(root):
        found: Dict[str, Set[Shape]] = {}
        scanner = _Scanner(found)
        scanner.visit(ast.parse(path.read_text(), str(path)))
        for name, shapes in found.items():
            # methods of unknown receivers count only in files that use the ROS packages
            if scanner.aliases or not name.startswith('*.'):
                used.setdefault(name, set()).update(shapes)
    return {name: sorted(shapes) for name, shapes in sorted(used.items())}


# ---- the sources of one distribution ----
class Definitions:
    """Parsed modules of rclpy / launch / launch_ros from ``readers`` (package -> Source)."""

    def __init__(self, readers: Dict[str, Any]):
        self.readers = readers
        self._trees: Dict[str, Optional[Tuple[ast.Module, bool]]] = {}

    def _prefix(self, package: str) -> str:
        reader = self.readers[package]
        return '' if getattr(reader, 'git', None) is None and reader.ref is None else package + '/'

    def module(self, name: str) -> Optional[Tuple[ast.Module, bool]]:
        """Return (tree, is_package) of module ``name`` or None."""
        if name not in self._trees:
            package = name.split('.')[0]
            reader = self.readers.get(package)
            found = None
            if reader is not None:
                base = self._prefix(package) + name.replace('.', '/')
                for relative, is_package in ((base + '.py', False),
                                             (base + '/__init__.py', True)):
                    text = reader.read(relative)
                    if text is not None:
                        found = (ast.parse(text), is_package)
                        break
            self._trees[name] = found
        return self._trees[name]

    def modules(self, package: str) -> Iterable[str]:
        """Return the module names of ``package`` (every .py file of it)."""
        reader = self.readers[package]
        prefix = self._prefix(package)
        for relative in reader.list(prefix + package):
            if not relative.endswith('.py') or '/test' in relative:
                continue
            module = relative[len(prefix):-3].replace('/', '.')
            yield module[:-len('.__init__')] if module.endswith('.__init__') else module

    def lookup(self, module: str, name: str, depth: int = 0) -> Optional[Tuple[str, ast.AST]]:
        """Resolve ``name`` in ``module``: ('module', Module) / (module, def node) / None."""
        parsed = self.module(module)
        if parsed is None or depth > 8:
            return None
        tree, is_package = parsed
        found: Optional[Tuple[str, ast.AST]] = None
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name == name and 'overload' not in _decorators(node):
                    found = (module, node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found = (module, node)
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        source = _absolute(module, is_package, node)
                        found = (self.lookup(source, alias.name, depth + 1)
                                 or self._submodule(f'{source}.{alias.name}'))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname == name:
                        found = self._submodule(alias.name)
        if found is None:
            found = self._submodule(f'{module}.{name}')
        return found

    def _submodule(self, name: str) -> Optional[Tuple[str, ast.AST]]:
        parsed = self.module(name)
        return ('module', parsed[0]) if parsed else None

    def member(self, module: str, cls: ast.ClassDef, name: str, depth: int = 0
               ) -> Optional[ast.AST]:
        """Return the definition of ``name`` in class ``cls`` or its bases (MRO order).

        The last definition in the class body wins (as in Python); ``@overload`` stubs are
        skipped for the implementation.
        """
        found = None
        for node in cls.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                if 'overload' not in _decorators(node):
                    found = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    found = node
        if found is not None:
            return found
        if depth > 8:
            return None
        for base in cls.bases:
            resolved = self._resolve_expr(module, base)
            if resolved and isinstance(resolved[1], ast.ClassDef):
                hit = self.member(resolved[0], resolved[1], name, depth + 1)
                if hit is not None:
                    return hit
        return None

    def _resolve_expr(self, module: str, expr: ast.AST) -> Optional[Tuple[str, ast.AST]]:
        if isinstance(expr, ast.Name):
            return self.lookup(module, expr.id)
        if isinstance(expr, ast.Attribute):
            owner = self._resolve_expr(module, expr.value)
            if owner and owner[0] == 'module':
                return None
        return None


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ''
    parts = module.split('.')
    keep = len(parts) - node.level + (1 if is_package else 0)
    base = parts[:keep]
    return '.'.join(base + ([node.module] if node.module else []))


def _decorators(node: ast.AST) -> Set[str]:
    return {ast.unparse(d).split('(')[0].split('.')[-1]
            for d in getattr(node, 'decorator_list', [])}


def signature(node: ast.AST, method: bool) -> Dict[str, Any]:
    """Return the parameters and return annotation of a function definition."""
    args = node.args
    params: List[List[Any]] = []
    positional = args.posonlyargs + args.args
    defaults_from = len(positional) - len(args.defaults)
    for index, arg in enumerate(positional):
        kind = 'posonly' if index < len(args.posonlyargs) else 'positional'
        params.append([arg.arg, kind, index >= defaults_from])
    if args.vararg:
        params.append([args.vararg.arg, 'varargs', True])
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append([arg.arg, 'kwonly', default is not None])
    if args.kwarg:
        params.append([args.kwarg.arg, 'varkw', True])
    decorators = _decorators(node)
    if method and 'staticmethod' not in decorators and params and params[0][1] != 'varargs':
        params = params[1:]
    result: Dict[str, Any] = {'kind': 'function', 'params': params,
                              'returns': ast.unparse(node.returns) if node.returns else None}
    if 'property' in decorators:
        result = {'kind': 'property'}
    return result


def describe(defs: Definitions, found: Optional[Tuple[str, ast.AST]], attrs: List[str]
             ) -> Optional[Dict[str, Any]]:
    """Describe what ``found`` (and then ``attrs`` inside it) is."""
    if found is None:
        return None
    module, node = found
    method = False
    for attr in attrs:
        if module == 'module':
            return {'kind': 'value'}   # a submodule attribute path: existence only
        if not isinstance(node, ast.ClassDef):
            return {'kind': 'value'}
        member = defs.member(module, node, attr)
        if member is None:
            return None
        node, method = member, True
    if module == 'module':
        return {'kind': 'module'}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return signature(node, method)
    if isinstance(node, ast.ClassDef):
        init = defs.member(module, node, '__init__')
        entry: Dict[str, Any] = {'kind': 'class'}
        if isinstance(init, (ast.FunctionDef, ast.AsyncFunctionDef)):
            entry['init'] = signature(init, True)
        return entry
    return {'kind': 'value'}


def snapshot(used: Dict[str, List[Shape]], readers: Dict[str, Any]) -> Dict[str, Any]:
    """Return what the distribution of ``readers`` defines for every used name."""
    defs = Definitions(readers)
    out: Dict[str, Any] = {}
    methods = {name[2:] for name in used if name.startswith('*.')}
    index = _method_index(defs, methods) if methods else {}
    for name in used:
        if name.startswith('*.'):
            out[name] = index.get(name[2:]) or None
            continue
        if ':' not in name:
            out[name] = {'kind': 'module'} if defs.module(name) else None
            continue
        module, path = name.split(':', 1)
        head, *attrs = path.split('.')
        out[name] = describe(defs, defs.lookup(module, head), attrs)
    return out


def method_universe(readers: Dict[str, Any]) -> Set[str]:
    """Return the public method names of every class of the packages in ``readers``."""
    defs = Definitions(readers)
    names: Set[str] = set()
    for package in readers:
        for module in defs.modules(package):
            parsed = defs.module(module)
            for node in (parsed[0].body if parsed else []):
                if isinstance(node, ast.ClassDef):
                    names.update(item.name for item in node.body
                                 if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                                 and not item.name.startswith('_'))
    return names


def _method_index(defs: Definitions, wanted: Set[str]) -> Dict[str, List[Dict[str, Any]]]:
    index: Dict[str, List[Dict[str, Any]]] = {}
    for package in defs.readers:
        for module in defs.modules(package):
            parsed = defs.module(module)
            if parsed is None:
                continue
            for node in parsed[0].body:
                if not isinstance(node, ast.ClassDef):
                    continue
                for item in node.body:
                    if (isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                            and item.name in wanted and 'overload' not in _decorators(item)):
                        entry = signature(item, True)
                        entry['owner'] = f'{module}:{node.name}'
                        index.setdefault(item.name, []).append(entry)
    return {name: sorted(entries, key=lambda e: e['owner']) for name, entries in index.items()}


def compatible(shape: Shape, sig: Dict[str, Any]) -> bool:
    """Return whether a call of ``shape`` binds to the parameters of ``sig``."""
    positional, keywords, star, starstar = shape
    params = sig['params']
    slots = [p for p in params if p[1] in ('posonly', 'positional')]
    if positional > len(slots) and not any(p[1] == 'varargs' for p in params):
        return False
    names = {p[0]: p for p in params if p[1] in ('positional', 'kwonly')}
    varkw = any(p[1] == 'varkw' for p in params)
    for keyword in keywords:
        if keyword not in names and not varkw:
            return False
        if keyword in names and names[keyword][1] == 'positional' \
                and slots.index(names[keyword]) < positional:
            return False   # given twice
    if star or starstar:
        return True
    covered = {p[0] for p in slots[:positional]} | set(keywords)
    return all(p[2] or p[0] in covered for p in params
               if p[1] in ('posonly', 'positional', 'kwonly'))


def callable_signatures(entry: Any) -> List[Dict[str, Any]]:
    """Return the signatures a call of a snapshot entry may bind to (a class: its __init__)."""
    if entry is None:
        return []
    if isinstance(entry, list):
        return [e for e in entry if e.get('kind') == 'function']
    if entry.get('kind') == 'function':
        return [entry]
    if entry.get('kind') == 'class' and 'init' in entry:
        return [entry['init']]
    return []


def wheel_version(site: Path, name: str) -> Optional[str]:
    """Return the version of the installed distribution ``name`` (``*.egg-info`` or dist-info)."""
    for info in sorted(Path(site).glob(f'{name}-*-info')):
        return info.name[len(name) + 1:].split('-')[0]
    return None
