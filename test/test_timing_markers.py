"""Every test that asserts a wall-clock bound carries the ``timing`` marker.

CI is a loaded 2-core machine: such a test must hold with the other core busy, and
``scripts/timing_under_load.py`` proves it for the ``timing``-marked tests (docs/architecture.md,
"Tests"). A test found here asserting on a clock reading without the marker would escape that.
"""

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

TEST_DIR = Path(__file__).resolve().parent
#: Words that make an assertion a wall-clock one (a clock read, or what is computed from one).
CLOCK_WORDS = ('monotonic', 'perf_counter', 'time.time', 'elapsed', 'latencies')


def _marked(decorators: List[ast.expr], source: str) -> bool:
    return any('mark.timing' in (ast.get_source_segment(source, d) or '') for d in decorators)


def _test_functions(path: Path) -> Iterator[Tuple[ast.FunctionDef, bool, str]]:
    source = path.read_text()
    tree = ast.parse(source)
    module_marked = any(
        isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == 'pytestmark'
                                             for t in node.targets)
        and 'mark.timing' in (ast.get_source_segment(source, node) or '')
        for node in tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name.startswith('test_'):
            yield node, module_marked or _marked(node.decorator_list, source), source


def _is_ordering(test: ast.expr) -> bool:
    """Whether the asserted expression contains a <, <=, > or >= comparison."""
    return any(isinstance(node, ast.Compare)
               and any(isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in node.ops)
               for node in ast.walk(test))


def clock_assertions(function: ast.FunctionDef, source: str) -> List[str]:
    """Return the assertions of ``function`` that compare a clock reading."""
    found = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assert) and _is_ordering(node.test):
            text = ast.get_source_segment(source, node.test) or ''
            if any(word in text for word in CLOCK_WORDS):
                found.append(text)
    return found


def test_clock_assertions_are_marked_timing() -> None:
    unmarked = []
    for path in sorted(TEST_DIR.rglob('test_*.py')):
        if path.name == Path(__file__).name:          # its own example is not a test bound
            continue
        for function, marked, source in _test_functions(path):
            asserts = clock_assertions(function, source)
            if asserts and not marked:
                unmarked.append(f'{path.relative_to(TEST_DIR)}::{function.name}: {asserts[0]}')
    assert not unmarked, 'mark these @pytest.mark.timing:\n' + '\n'.join(unmarked)


def test_the_check_sees_a_clock_assertion() -> None:
    source = ('def test_x():\n    started = time.monotonic()\n    work()\n'
              '    assert time.monotonic() - started < 1.0\n    assert ok\n')
    function = ast.parse(source).body[0]
    assert clock_assertions(function, source) == ['time.monotonic() - started < 1.0']
    assert not clock_assertions(ast.parse('def test_y():\n    assert latencies == []\n').body[0],
                                'def test_y():\n    assert latencies == []\n')
