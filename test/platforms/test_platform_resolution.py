"""The run-time dependency set resolves to wheels on every platform row (metadata only).

For each row of ``platform_rows.ROWS`` and each CUDA major it supports, pip resolves
requirements.txt + requirements-cuda<N>.txt for that row's Python and architecture with
``--only-binary=:all:`` (no interpreter of that version, no download of whole wheels: pip reads
the wheels' metadata files). pip evaluates environment markers against the running
interpreter, so the markers of the top-level requirements are evaluated here for the row's
Python first; markers of transitive dependencies are pip's (the running Python's) choice.

Needs PyPI: an unreachable registry fails with that reason (short network timeouts, one
retry, an overall limit), never hangs. pip's HTTP cache makes a second run fast.
"""

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from platform_rows import Row, ROWS

ROOT = Path(__file__).resolve().parents[2]
#: Seconds for one row's resolution (a warm cache needs about 7 s; a cold one about 30 s).
ROW_LIMIT_S = 240
NETWORK_ERRORS = re.compile(r'(Could not fetch URL|Max retries exceeded|NewConnectionError|'
                            r'ConnectTimeout|ReadTimeout|Temporary failure in name resolution|'
                            r'Network is unreachable|SSLError)', re.IGNORECASE)

CASES = [(row, cuda) for row in ROWS for cuda in row.cuda]


def requirement_lines(name: str, row: Row) -> List[str]:
    """Return the requirement lines of ``name`` whose marker holds on ``row`` (marker dropped)."""
    from packaging.markers import Marker

    env = {'python_version': row.python, 'python_full_version': row.python + '.0',
           'platform_machine': row.arch, 'sys_platform': 'linux', 'os_name': 'posix',
           'platform_system': 'Linux', 'implementation_name': 'cpython',
           'platform_python_implementation': 'CPython'}
    lines = []
    for raw in (ROOT / name).read_text().splitlines():
        line = raw.split('#', 1)[0].strip()
        if not line or line.startswith('-'):
            continue
        requirement, _, marker = line.partition(';')
        if marker.strip() and not Marker(marker.strip()).evaluate(env):
            continue
        lines.append(requirement.strip())
    return lines


def resolve(row: Row, cuda: str, work: Path) -> Tuple[int, str, Dict[str, str]]:
    """Resolve the run-time set for ``row`` with CUDA ``cuda``; return (status, log, versions)."""
    folder = work / f'{row.name}-cuda{cuda}'
    folder.mkdir(parents=True, exist_ok=True)
    req = folder / 'requirements.txt'
    req.write_text('\n'.join(requirement_lines('requirements.txt', row)
                             + requirement_lines(f'requirements-cuda{cuda}.txt', row)) + '\n')
    report = folder / 'report.json'
    command = [sys.executable, '-m', 'pip', 'install', '--dry-run', '--ignore-installed',
               '--quiet', '--disable-pip-version-check', '--no-input', '--timeout', '20',
               '--retries', '1', '--only-binary=:all:', '--python-version', row.python,
               '--implementation', 'cp', '--target', str(folder / 'target'),
               '--report', str(report), '-r', str(req)]
    for tag in row.platform_tags():
        command += ['--platform', tag]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=ROW_LIMIT_S)
    except subprocess.TimeoutExpired:
        return 124, f'pip did not finish within {ROW_LIMIT_S} s (registry unreachable?)', {}
    log = '\n'.join(line for line in (done.stdout + done.stderr).splitlines()
                    if 'is ignored' not in line)
    versions = {}
    if done.returncode == 0:
        data = json.loads(report.read_text())
        versions = {item['metadata']['name'].lower(): item['metadata']['version']
                    for item in data['install']}
    return done.returncode, log, versions


@pytest.fixture(scope='module')
def resolutions(tmp_path_factory) -> Dict[Tuple[str, str], Tuple[int, str, Dict[str, str]]]:
    """Resolve every (row, CUDA) case, three at a time (network-bound)."""
    work = tmp_path_factory.mktemp('resolve')
    with ThreadPoolExecutor(3) as pool:
        futures = {(row.name, cuda): pool.submit(resolve, row, cuda, work)
                   for row, cuda in CASES}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize('row,cuda', CASES, ids=[f'{r.name}-cuda{c}' for r, c in CASES])
def test_runtime_set_resolves(resolutions, row: Row, cuda: str):
    status, log, versions = resolutions[(row.name, cuda)]
    if status != 0 and (status == 124 or NETWORK_ERRORS.search(log)):
        pytest.fail(f'PyPI could not be reached to resolve {row.name} (this check needs the '
                    f'package index):\n{log[-2000:]}')
    assert status == 0, (f'the run-time requirements do not resolve to wheels for {row.name} '
                         f'(Python {row.python}, {row.arch}, CUDA {cuda}):\n{log[-3000:]}')
    # The set is what the code needs there: the bindings of that CUDA major, an ONNX Runtime
    # the code accepts on that Python.
    assert versions['cuda-bindings'].split('.')[0] == cuda, versions
    ort = tuple(int(part) for part in versions['onnxruntime'].split('.')[:2])
    assert ort >= ((1, 32) if row.python != '3.10' else (1, 20)), versions


def test_markers_pick_the_onnxruntime_python_310_has():
    py310 = next(row for row in ROWS if row.python == '3.10')
    py312 = next(row for row in ROWS if row.python == '3.12')
    assert 'onnxruntime>=1.20' in requirement_lines('requirements.txt', py310)
    assert 'onnxruntime>=1.32' not in requirement_lines('requirements.txt', py310)
    assert 'onnxruntime>=1.32' in requirement_lines('requirements.txt', py312)


def test_the_platform_table_names_every_row_and_check():
    text = (ROOT / 'docs' / 'platforms.md').read_text()
    table = text.split('## The table', 1)[1].split('\n## ', 1)[0]
    for row in ROWS:
        for cuda in row.cuda:
            named = f'`{row.name}-cuda{cuda}`' in table or f'`{row.name}-*`' in table
            assert named, f'docs/platforms.md does not name the resolution check of {row.name}'
    for name in ('test_platform_resolution.py', 'test_platform_python_floor.py',
                 'test_platform_ros_api.py', 'test_platform_rosdep.py',
                 'test_platform_cuda_bindings.py', 'test_platform_installed_wheel.py',
                 'test_platform_onnxruntime_floor.py', 'test_platform_runtime.py'):
        assert f'`{name}`' in table and (Path(__file__).parent / name).is_file(), name
    assert '(docs/platforms.md)' in (ROOT / 'README.md').read_text()
