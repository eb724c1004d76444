"""The package's import graph: no circle among its modules, and a runtime apart from the lab.

The graph is read statically (``ast``) from every module of ``tensorrt_yolox_py``, with every
import counted, also those inside functions (a lazy import still ties two modules together).
An edge goes to the module that is named: ``from a.b import c`` is an edge to ``a.b.c`` when
that is a module, else to ``a.b``; the packages on the way (``a.b``, whose ``__init__`` runs
first) are edges too, except the importer's own enclosing packages (a package importing its
own submodules is not a circle).

Rules:

- no circle (strongly connected component of more than one module, or a module importing
  itself);
- the runtime (every package module outside ``devkit/``) imports nothing of the development
  kit: not ``tensorrt_yolox_py.devkit``, not ``benchmarks``;
- programs (``if __name__ == '__main__'``) live in ``tools/`` or ``devkit/tools/``, apart from
  ``STANDALONE_SCRIPTS`` (files run on their own, outside the installed package).
"""

import ast
from pathlib import Path
from typing import Dict, Iterable, List, Set

PACKAGE = 'tensorrt_yolox_py'
ROOT = Path(__file__).resolve().parents[1]
DEVKIT = f'{PACKAGE}.devkit'
FORBIDDEN_FOR_RUNTIME = (DEVKIT, 'benchmarks')
PROGRAM_FOLDERS = (f'{PACKAGE}.tools', f'{DEVKIT}.tools')
#: Files run on their own, outside the installed package: the ModelOpt worker (in ModelOpt's own
#: environment) and the driver probe (scripts/setup.sh, before the dependencies are installed).
STANDALONE_SCRIPTS = (f'{PACKAGE}.quantization.modelopt_worker', f'{PACKAGE}.cuda.driver')


def module_name(path: Path, root: Path = ROOT) -> str:
    """Dotted module name of a file under ``root``."""
    parts = list(path.relative_to(root).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def package_modules(root: Path = ROOT) -> Dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    return {module_name(p, root): p for p in sorted((root / PACKAGE).rglob('*.py'))}


def imports_of(name: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """Modules that ``path`` imports (see the module docstring); relative imports resolved."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            for alias in node.names:
                sub = f'{target}.{alias.name}'
                found.add(sub if sub in modules else target)
    return found


def package_graph(modules: Dict[str, Path]) -> Dict[str, Set[str]]:
    """Module -> the modules it imports (package modules and outside ones, dotted).

    Importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` (and ``a``): those packages are
    edges too, except the importer's own enclosing packages (already being imported).
    """
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        own = name.split('.')
        enclosing = {'.'.join(own[:i]) for i in range(1, len(own) + 1)}
        edges = set()
        for target in imports_of(name, path, modules):
            edges.add(target)
            parts = target.split('.')
            edges.update(package for package in ('.'.join(parts[:i])
                                                 for i in range(1, len(parts)))
                         if package in modules and package not in enclosing)
        graph[name] = edges
    return graph


def circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one node, and self-loops (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def runtime_violations(graph: Dict[str, Set[str]]) -> List[str]:
    """``runtime module -> forbidden module`` for each import of the lab from the runtime."""
    bad = []
    for name, edges in sorted(graph.items()):
        if name == DEVKIT or name.startswith(DEVKIT + '.'):
            continue
        for target in sorted(edges):
            if any(target == f or target.startswith(f + '.') for f in FORBIDDEN_FOR_RUNTIME):
                bad.append(f'{name} -> {target}')
    return bad


def _graph_of(edges: Iterable[str]) -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for edge in edges:
        src, dst = edge.split('>')
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
    return graph


def test_package_has_no_import_circle():
    found = circles(package_graph(package_modules()))
    assert not found, 'import circles: ' + '; '.join(' <-> '.join(c) for c in found)


def test_runtime_imports_nothing_of_the_development_kit():
    bad = runtime_violations(package_graph(package_modules()))
    assert not bad, 'runtime modules import the development kit: ' + ', '.join(bad)


def test_graph_sees_the_imports_it_checks():
    # The walk finds lazy (in-function) and relative imports with their real targets.
    graph = package_graph(package_modules())
    assert f'{PACKAGE}.ros.node' in graph[f'{PACKAGE}.ros.entry_points']
    assert f'{PACKAGE}.ros.lifecycle' in graph[f'{PACKAGE}.ros.node']
    assert f'{PACKAGE}.onnx_model.integrity' in graph[f'{PACKAGE}.pipeline']
    assert f'{PACKAGE}.evaluation.coco' in graph[f'{PACKAGE}.devkit.train']
    # backends.tensorrt.builder imports ...cuda.memory: cuda/__init__ runs first.
    assert f'{PACKAGE}.cuda' in graph[f'{PACKAGE}.backends.tensorrt.builder']
    assert f'{PACKAGE}.backends' not in graph[f'{PACKAGE}.backends.tensorrt.builder']
    assert len(graph) > 80


def test_checks_fail_on_a_circle_and_on_a_lab_import():
    # The two checks on small graphs of known shape (independent of the package's own).
    assert circles(_graph_of(['a>b', 'b>c', 'c>a', 'c>d'])) == [['a', 'b', 'c']]
    assert circles(_graph_of(['a>a'])) == [['a']]
    assert circles(_graph_of(['a>b', 'b>c', 'a>c'])) == []
    graph = _graph_of([f'{PACKAGE}.pipeline>{DEVKIT}.train', f'{DEVKIT}.train>{PACKAGE}.stages',
                       f'{PACKAGE}.ros.node>benchmarks.bench_host_path'])
    assert runtime_violations(graph) == [f'{PACKAGE}.pipeline -> {DEVKIT}.train',
                                         f'{PACKAGE}.ros.node -> benchmarks.bench_host_path']


def _is_program(path: Path) -> bool:
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                and isinstance(node.test.left, ast.Name) and node.test.left.id == '__name__':
            return True
    return False


def test_programs_live_in_tools():
    programs = [name for name, path in package_modules().items() if _is_program(path)]
    assert f'{PACKAGE}.tools.detect' in programs          # the walk sees them
    stray = [name for name in programs if name not in STANDALONE_SCRIPTS
             and not any(name.startswith(folder + '.') for folder in PROGRAM_FOLDERS)]
    assert not stray, f'python -m programs outside tools/: {stray}'
