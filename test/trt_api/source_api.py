"""A names-only TensorRT API manifest read from NVIDIA's binding SOURCES (no wheel needed).

For versions with no bindings wheel on the package index (TensorRT 8.5, JetPack 5.1), the
Python API can still be read from the pybind11 sources in NVIDIA/TensorRT
(``python/src/**/*.cpp`` on the ``release/<major.minor>`` branch)::

    git -C TensorRT archive release/8.5 python | tar -x -C /tmp/trt8.5
    python test/trt_api/source_api.py /tmp/trt8.5/python 8.5.3 OUT.json 'DESCRIPTION'

It reads ``py::class_<...>(m, "Name")`` / ``py::enum_<...>(m, "Name")`` declarations and the
``.def("x")``, ``.def_static``, ``.def_property[_readonly]``, ``.def_readwrite`` /
``.def_readonly`` and ``.value("X")`` calls chained on them (or on a variable holding them),
plus ``m.attr("x")`` / ``m.def("x")`` module names and what ``packaging/tensorrt/__init__.py``
defines, and writes ``{"version", "source", "made_by", "module": [names], "classes": {name:
[members]}, "enums": {name: [members]}}`` (nested as ``Owner.Name``).
Blocks under preprocessor switches that release builds leave off (``ENABLE_INETWORK_SERIALIZE``)
are dropped. It gives names only: no signatures, argument names, enum values or inherited
members (8.5's class hierarchy is flat for the names this package uses), and not pybind11's
``bind_vector`` containers. ``test_tensorrt_jetpack5.py``
checks the reader against the real 8.6.1 wheel's manifest with the 8.6 sources.
"""

import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Set

_DECL = re.compile(r'py::(class_|enum_)\s*<[^;{]*?>\s*(?:(\w+)\s*)?[({]\s*(\w+)\s*,\s*"(\w+)"')
_MEMBER = re.compile(r'\.(def|def_static|def_property|def_property_readonly|def_readwrite|'
                     r'def_readonly|def_property_static|value)\s*\(\s*"(\w+)"')
_VAR_DEF = re.compile(r'\b(\w+)\s*\.\s*(?:def|def_static|def_property|def_property_readonly|'
                      r'def_readwrite|def_readonly|value)\s*\(')


#: Preprocessor switches that are off in NVIDIA's release builds (their blocks are dropped).
_OFF_SWITCHES = ('ENABLE_INETWORK_SERIALIZE',)


def _strip_comments(text: str) -> str:
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    text = re.sub(r'//[^\n]*', '', text)
    for switch in _OFF_SWITCHES:
        text = re.sub(r'#if\s+' + switch + r'\b.*?#endif', '', text, flags=re.S)
    return text


def read_sources(src: Path) -> Dict[str, Dict[str, Set[str]]]:
    """Return {'classes', 'enums': {name: members}, 'module': names} from ``src``'s .cpp."""
    classes: Dict[str, Set[str]] = {}
    enums: Dict[str, Set[str]] = {}
    module: Set[str] = set()
    for path in sorted(Path(src).rglob('*.cpp')):
        text = _strip_comments(path.read_text(errors='replace'))
        events = []
        variables: Dict[str, str] = {}
        for match in _DECL.finditer(text):
            kind, var, scope, name = match.groups()
            if scope != 'm' and scope in variables:     # nested: ILogger.Severity
                name = f'{variables[scope]}.{name}'
            table = classes if kind == 'class_' else enums
            table.setdefault(name, set())
            events.append((match.start(), 'decl', name, table))
            if var:
                variables[var] = name
            assign = re.search(r'(\w+)\s*=\s*$', text[max(0, match.start() - 80):match.start()])
            if assign:
                variables[assign.group(1)] = name
        for match in _VAR_DEF.finditer(text):
            if match.group(1) in variables:
                name = variables[match.group(1)]
                table = classes if name in classes else enums
                events.append((match.start(), 'decl', name, table))
        for match in _MEMBER.finditer(text):
            events.append((match.start(), 'member', match.group(2), match.group(1)))
        events.sort(key=lambda e: e[0])
        current, table, last = None, None, 0
        for position, kind, name, owner_table in events:
            if kind == 'decl':
                current, table, last = name, owner_table, position
                continue
            if table is enums and owner_table != 'value':
                last = position      # an enum's own methods (__str__ ...): not members
                continue
            if current is None:
                continue
            # a statement end between the owner and this member ends the owner's chain
            between = text[last:position]
            if _ends_statement(between):
                current = None
                continue
            table[current].add(name)
            last = position
        module.update(re.findall(r'\bm\.attr\(\s*"(\w+)"\s*\)', text))
        module.update(re.findall(r'\bm\.def\(\s*"(\w+)"', text))
    return {'classes': classes, 'enums': enums, 'module': module}


def read_python_init(path: Path, found: Dict[str, Dict[str, Set[str]]]) -> None:
    """Add the names ``tensorrt/__init__.py`` defines (functions, ``Class.attr = ...``)."""
    text = Path(path).read_text(errors='replace')
    found['module'].update(re.findall(r'^def (\w+)\(', text, flags=re.M))
    for owner, member in re.findall(r'^\s*(\w+)\.(\w+)\s*=', text, flags=re.M):
        if owner in found['classes']:
            found['classes'][owner].add(member)


def _ends_statement(text: str) -> bool:
    """Whether ``text`` has a ``;`` outside parentheses, brackets and string literals."""
    depth, in_string, escape = 0, False, False
    for char in text:
        if in_string:
            if escape:
                escape = False
            elif char == '\\':
                escape = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in '([{':
            depth += 1
        elif char in ')]}':
            depth -= 1
        elif char == ';' and depth <= 0:
            return True
    return False


def source_manifest(python_dir: Path, version: str, source: str) -> Dict[str, object]:
    """Return the names-only manifest of a TensorRT ``python/`` source folder.

    Reads ``python_dir/src/**/*.cpp`` and ``packaging/tensorrt/__init__.py`` (8.5) or
    ``packaging/bindings_wheel/tensorrt/__init__.py`` (8.6).
    """
    found = read_sources(Path(python_dir) / 'src')
    for init in (Path(python_dir) / 'packaging' / 'tensorrt' / '__init__.py',   # 8.5
                 Path(python_dir) / 'packaging' / 'bindings_wheel' / 'tensorrt' / '__init__.py'):
        if init.is_file():
            read_python_init(init, found)
    return {'version': version, 'source': source,
            'made_by': 'test/trt_api/source_api.py (names only, from the pybind11 sources '
                       'and tensorrt/__init__.py)',
            'module': sorted(found['module']),
            'classes': {k: sorted(v) for k, v in sorted(found['classes'].items())},
            'enums': {k: sorted(v) for k, v in sorted(found['enums'].items())}}


def has(data: Dict[str, object], dotted: str) -> bool:
    """Whether a names-only manifest has ``Name``, ``Name.member`` or ``Name.Nested.m``."""
    tables: Dict[str, Dict[str, List[str]]] = {key: data[key]  # type: ignore[misc]
                                               for key in ('classes', 'enums')}
    if dotted in data['module'] or any(dotted in t for t in tables.values()):  # type: ignore
        return True
    owner, _, member = dotted.rpartition('.')
    for key, table in tables.items():
        if owner in table:
            return member in table[owner] or (member == '__init__' and key == 'classes')
    return False


def main(argv: List[str]) -> int:
    """Command line: PYTHON_DIR VERSION OUT.json [SOURCE-DESCRIPTION]."""
    if len(argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    src, version, out = argv[:3]
    source = argv[3] if len(argv) == 4 else str(src)
    Path(out).write_text(json.dumps(source_manifest(Path(src), version, source), indent=1)
                         + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
