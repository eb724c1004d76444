"""The package's callback classes on the REAL TensorRT bindings of every supported version.

The real ``tensorrt`` extension of 8.6.1, 10.3.0, 10.13.3.9, 10.16.1.11 and 11.4.0.106 is made
importable with stub libraries by ``scripts/trt_api.sh`` (run by ``scripts/setup.sh``; it needs
PyPI and gcc): classes, base ``__init__`` and signatures are the real ones, nothing can run.
Each version is imported in its own process (``trt_api/real_callbacks.py``), which subclasses
and instantiates the logger, progress monitor, profiler and the three calibrators exactly as the
package does; here their overrides' parameter names are compared with the real signatures.
A version whose bindings could not be prepared is skipped with the reason.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tensorrt_yolox_py.backends.tensorrt.calibration import BASES
from tensorrt_yolox_py.backends.tensorrt.capabilities import supports
from trt_api.api import Api, version_tuple, VERSIONS

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get('TRT_API_WORK', ROOT / 'build' / 'trt_api'))
SCRIPT = ROOT / 'test' / 'trt_api' / 'real_callbacks.py'
TRAMPOLINE_ARITY = {'get_quantile': 0, 'get_regression_cutoff': 0, 'read_histogram_cache': 1,
                    'write_histogram_cache': 2}


def ready_dir(version: str) -> Path:
    """Return the importable real bindings of ``version`` (skip when absent)."""
    path = WORK / 'ready' / version / 'py'
    if not (path / 'tensorrt' / '__init__.py').is_file():
        log = WORK / f'stub-{version}.log'
        pip_log = WORK / f'pip-{version}.log'
        why = next((p.read_text()[-300:] for p in (pip_log, log) if p.is_file()), '')
        pytest.skip(f'real TensorRT {version} bindings not prepared in {path} (bash '
                    f'scripts/trt_api.sh prepares them; needs PyPI and gcc) {why}'.strip())
    return path


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
