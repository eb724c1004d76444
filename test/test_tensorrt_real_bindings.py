"""The package's callback classes on the REAL TensorRT bindings of every supported version.

The real ``tensorrt`` extension of 8.6.1, 10.3.0, 10.13.3.9, 10.16.1.11 and 11.4.0.106 is made
importable with stub libraries by ``scripts/trt_api.sh`` (run by ``scripts/setup.sh``; it needs
PyPI and gcc): classes, base ``__init__`` and signatures are the real ones, nothing can run.
Each version is imported in its own process (``trt_api/real_callbacks.py``), which subclasses
and instantiates the logger, progress monitor, profiler and the three calibrators exactly as the
package does; here their overrides' parameter names are compared with the real signatures.
Whenever a version's real bindings are prepared, its API is dumped anew
(``third_party/trt_api/dump_api.py``) and compared with the committed manifest, so a manifest
cannot drift from the real module.

A version whose bindings could not be prepared is skipped with the reason, except in CI
(``CI=true``), where that is a failure: CI runs ``scripts/setup.sh`` (``scripts/trt_api.sh``),
which prepares them, and the conformance claims rest on these tests. (CI's Python must be one
the wheels exist for: ``tensorrt-bindings`` 8.6.1 has none for CPython 3.12.)
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tensorrt_yolox_py.backends.tensorrt.calibration import BASES
from tensorrt_yolox_py.backends.tensorrt.capabilities import supports
from trt_api.api import Api, manifest, version_tuple, VERSIONS

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get('TRT_API_WORK', ROOT / 'build' / 'trt_api'))
SCRIPT = ROOT / 'test' / 'trt_api' / 'real_callbacks.py'
TRAMPOLINE_ARITY = {'get_quantile': 0, 'get_regression_cutoff': 0, 'read_histogram_cache': 1,
                    'write_histogram_cache': 2}


DUMP = ROOT / 'third_party' / 'trt_api' / 'dump_api.py'
#: Manifest keys that describe where and with what the dump ran, not the API.
PLACE_KEYS = ('python', 'module_file')


def in_ci() -> bool:
    """Whether this runs in CI (``CI=true``, as CI services set it)."""
    return os.environ.get('CI', '').strip().lower() == 'true'


def ready_dir(version: str) -> Path:
    """Return the importable real bindings of ``version`` (skip when absent; fail in CI)."""
    path = WORK / 'ready' / version / 'py'
    here = f'{sys.version_info[0]}.{sys.version_info[1]}'
    message = ''
    if not (path / 'tensorrt' / '__init__.py').is_file():
        log = WORK / f'stub-{version}.log'
        pip_log = WORK / f'pip-{version}.log'
        why = next((p.read_text()[-300:] for p in (pip_log, log) if p.is_file()), '')
        message = (f'real TensorRT {version} bindings not prepared in {path} for Python '
                   f'{here} (bash scripts/trt_api.sh prepares them; needs PyPI, gcc and a '
                   f'wheel for this Python) {why}').strip()
    else:
        built = wheel_python(path.parent / 'stub_info.json')
        if built not in ('', here):
            message = (f'the real TensorRT {version} bindings in {path} are built for Python '
                       f'{built}, this is Python {here}: run scripts/trt_api.sh with this '
                       f'Python (YOLOX_VENV=its venv, TRT_API_WORK=another folder)')
    if message:
        if in_ci():
            pytest.fail(f'CI=true: {message}')
        pytest.skip(message)
    return path


def wheel_python(stub_info: Path) -> str:
    """Return 'X.Y' of the CPython wheel the stubs were built from ('' when not tagged)."""
    try:
        wheel = Path(json.loads(stub_info.read_text())['wheel']).name
    except (OSError, ValueError, KeyError):
        return ''
    tag = wheel.split('-')[2] if wheel.count('-') >= 4 else ''
    return f'{tag[2]}.{tag[3:]}' if tag.startswith('cp') and len(tag) > 3 else ''


def test_ci_is_detected_from_the_environment(monkeypatch):
    monkeypatch.setenv('CI', 'true')
    assert in_ci()
    monkeypatch.setenv('CI', 'false')
    assert not in_ci()
    monkeypatch.delenv('CI')
    assert not in_ci()


def test_bindings_of_another_python_skip_with_the_reason(monkeypatch, tmp_path):
    """Stubs built from a wheel of another CPython cannot be imported: skip, saying so."""
    import _pytest.outcomes as outcomes

    other = '3.9' if sys.version_info[:2] != (3, 9) else '3.8'
    here = f'{sys.version_info[0]}{sys.version_info[1]}'
    ready = tmp_path / 'ready' / '10.3.0'
    (ready / 'py' / 'tensorrt').mkdir(parents=True)
    (ready / 'py' / 'tensorrt' / '__init__.py').write_text('')
    info = ready / 'stub_info.json'
    monkeypatch.setattr(sys.modules[__name__], 'WORK', tmp_path)
    monkeypatch.delenv('CI', raising=False)
    tag = other.replace('.', '')
    info.write_text(json.dumps({'wheel': f'/w/tensorrt_cu12_bindings-10.3.0-cp{tag}-none-'
                                         'manylinux_2_17_x86_64.whl'}))
    with pytest.raises(outcomes.Skipped, match=f'built for Python {other}'):
        ready_dir('10.3.0')
    info.write_text(json.dumps({'wheel': f'/w/tensorrt_cu12_bindings-10.3.0-cp{here}-none-'
                                         'manylinux_2_17_x86_64.whl'}))
    assert ready_dir('10.3.0') == ready / 'py'


def test_missing_bindings_fail_in_ci_and_skip_elsewhere(monkeypatch, tmp_path):
    import _pytest.outcomes as outcomes

    monkeypatch.setattr(sys.modules[__name__], 'WORK', tmp_path)
    monkeypatch.setenv('CI', 'true')
    with pytest.raises(outcomes.Failed, match='CI=true'):
        ready_dir('10.3.0')
    monkeypatch.delenv('CI')
    with pytest.raises(outcomes.Skipped):
        ready_dir('10.3.0')


@pytest.mark.parametrize('version', VERSIONS)
def test_committed_manifest_equals_the_real_module(version, tmp_path):
    """Dump the real module again and compare it with test/trt_api/manifests (no drift)."""
    path = ready_dir(version)
    out = tmp_path / 'manifest.json'
    env = dict(os.environ, PYTHONPATH=str(path), PYTHONWARNINGS='ignore',
               LD_LIBRARY_PATH=str(path.parent / 'lib'))
    result = subprocess.run([sys.executable, str(DUMP), '--inprocess', str(out), '--no-docs'],
                            env=env, cwd='/', capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = json.loads(out.read_text())
    committed = manifest(version)
    for key in PLACE_KEYS:
        fresh.pop(key, None)
    committed = {k: v for k, v in committed.items() if k not in PLACE_KEYS}
    assert fresh['version'] == version
    differing = sorted(k for k in set(fresh) | set(committed) if fresh.get(k) != committed.get(k))
    detail = []
    for key in differing:
        if isinstance(fresh.get(key), dict) and isinstance(committed.get(key), dict):
            names = sorted(n for n in set(fresh[key]) | set(committed[key])
                           if fresh[key].get(n) != committed[key].get(n))
            detail.append(f'{key}: {names[:20]}')
        else:
            detail.append(key)
    assert not differing, (f'{version}: the committed manifest differs from the real module '
                           f'(bash scripts/trt_api.sh --manifests regenerates it): {detail}')


@pytest.mark.parametrize('version', VERSIONS)
def test_callback_classes_subclass_the_real_interfaces(version, tmp_path):
    path = ready_dir(version)
    out = tmp_path / 'report.json'
    env = dict(os.environ, PYTHONPATH=str(path))
    result = subprocess.run([sys.executable, str(SCRIPT), str(out)], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report['version'] == version
    assert str(path) in report['module']           # the real extension, not the double
    expected = {'ILogger', 'IProfiler'}
    if supports(version_tuple(version)[:3], 'progress_monitor'):
        expected.add('IProgressMonitor')
    if supports(version_tuple(version)[:3], 'implicit_int8'):
        expected |= set(BASES.values())
    assert set(report['classes']) == expected
    api = Api(version)
    for base, entry in report['classes'].items():
        assert entry['isinstance'] and base in entry['mro'], (base, entry['mro'])
        assert 'pybind11_object' in entry['mro']
        for method, params in entry['overrides'].items():
            sigs = api.method_signatures(base, method)
            if sigs:
                assert any([p.name for p in sig.params] == params for sig in sigs), \
                    f'{version} {base}.{method}{tuple(params)} vs {[s.text for s in sigs]}'
            else:
                assert len(params) == TRAMPOLINE_ARITY[method], (base, method, params)
