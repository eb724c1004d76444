"""The CUDA layer works with the CUDA 12 and the CUDA 13 bindings and NVRTC.

- Every ``cuda.bindings`` driver / runtime / nvrtc name the package spells exists, and every
  call binds, in cuda-bindings 12.8.0 (the floor of requirements-cuda12.txt), 12.9.10, 13.0.0
  (the floor of requirements-cuda13.txt) and 13.5.0: ``snapshots/cuda_bindings/<version>.json``
  (``inspect.signature`` of each release's real module; ``scripts/platform_snapshots.py
  cuda-bindings`` regenerates them).
- The runtime kernels compile with NVRTC 13 (this environment, when installed) for Orin
  (sm_87), Hopper (sm_90) and Thor (sm_110), and with NVRTC 12 for Orin and Hopper: the CUDA 12
  bindings and NVRTC are installed (from pip's cache or PyPI) into a cache folder
  (``platform_rows.check_folder``) and the compile runs in a Python that sees only them (no
  GPU is needed to compile).
"""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cuda_api
from platform_rows import install_once

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).resolve().parent / 'snapshots' / 'cuda_bindings'
VERSIONS = ('12.8.0', '12.9.10', '13.0.0', '13.5.0')
REGENERATE = 'python3 scripts/platform_snapshots.py cuda-bindings ' + ' '.join(VERSIONS)


def nvrtc_major():
    try:
        from cuda.bindings import nvrtc

        status, major, _ = nvrtc.nvrtcVersion()
        return major if int(status) == 0 else None
    except Exception:  # noqa: BLE001 - not installed or no library: no NVRTC here
        return None


@pytest.fixture(scope='module')
def used():
    return cuda_api.used_names(ROOT)


def test_the_scan_sees_the_memory_layer_and_the_preprocessor(used):
    # cuda/memory.py (copies, events, streams through the runtime API), cuda/check.py
    # (the driver's count), cuda/kernels.py (NVRTC's version).
    for name in ('runtime:cudaMemcpyAsync', 'runtime:cudaEventRecord',
                 'runtime:cudaStreamWaitEvent', 'runtime:cudaMallocHost', 'driver:cuInit',
                 'nvrtc:nvrtcVersion'):
        assert name in used, name


def test_the_floors_of_the_requirements_are_checked():
    for major in ('12', '13'):
        text = (ROOT / f'requirements-cuda{major}.txt').read_text()
        floor = re.search(r'^cuda-bindings>=([0-9.]+)', text, re.M).group(1)
        assert any(v.startswith(floor) for v in VERSIONS), (major, floor, VERSIONS)


@pytest.mark.parametrize('version', VERSIONS)
def test_every_call_exists_and_binds(used, version):
    names = json.loads((SNAPSHOTS / f'{version}.json').read_text())['names']
    unknown = sorted(set(used) - set(names))
    assert not unknown, f'not in the snapshots: {unknown}; regenerate them: {REGENERATE}'
    problems = []
    for name, shapes in used.items():
        entry = names[name]
        if entry is None:
            problems.append(f'{name}: not in cuda-bindings {version}')
            continue
        for shape in shapes:
            if entry['kind'] != 'function' or not cuda_api.binds(tuple(shape), entry):
                problems.append(f'{name}{shape} does not bind: {entry}')
    assert not problems, '\n'.join(problems)


def test_a_call_that_does_not_bind_is_caught():
    names = json.loads((SNAPSHOTS / '13.5.0.json').read_text())['names']
    copy = names['runtime:cudaMemcpyAsync']      # (dst, src, count, kind, stream)
    assert cuda_api.binds((5, ()), copy)
    assert not cuda_api.binds((6, ()), copy)
    assert not cuda_api.binds((4, ()), copy)                 # the stream is not optional
    assert cuda_api.binds((4, ('stream',)), copy)
    assert not cuda_api.binds((4, ('strm',)), copy)           # no such keyword


COMPILE = '''
import json, sys
from cuda.bindings import nvrtc
import cuda.bindings
from tensorrt_yolox_py.cuda import kernels as K
status, major, minor = nvrtc.nvrtcVersion()
out = {'bindings': cuda.bindings.__version__, 'nvrtc': [major, minor], 'compiled': {}}
for arch in sys.argv[1:]:
    out['compiled'][arch] = type(K.compile_kernels(arch)).__name__
print(json.dumps(out))
'''


@pytest.mark.skipif(nvrtc_major() is None, reason='NVRTC is not installed here')
def test_kernels_compile_with_this_environments_nvrtc():
    from cuda.bindings import nvrtc

    archs = ['sm_87', 'sm_90'] + (['sm_110'] if nvrtc_major() >= 13 else [])
    done = subprocess.run([sys.executable, '-c', COMPILE, *archs], capture_output=True,
                          text=True, timeout=300, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report['nvrtc'][0] == int(nvrtc.nvrtcVersion()[1])
    assert report['compiled'] == {arch: 'ObjectCode' for arch in archs}


def cuda12_folder() -> Path:
    """requirements-cuda12.txt's bindings + NVRTC in a cache folder (made once)."""
    text = (ROOT / 'requirements-cuda12.txt').read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    requirements = [line.split('#', 1)[0].strip() for line in text.splitlines()]
    wanted = [r for r in requirements if r and not r.startswith('cuda-core')]
    return install_once(f'cuda12-{digest}', wanted)


@pytest.mark.slow
@pytest.mark.skipif(nvrtc_major() is None, reason='NVRTC is not installed here')
def test_kernels_compile_with_cuda12_bindings_and_nvrtc():
    folder = cuda12_folder()
    library = folder / 'nvidia' / 'cuda_nvrtc' / 'lib'
    assert (library / 'libnvrtc.so.12').is_file(), sorted(folder.rglob('libnvrtc*'))
    import sysconfig

    # The base interpreter without site-packages: only the CUDA 12 folder, the checkout and
    # (after them) this environment's other packages (cuda-core, numpy) are importable, and
    # the loader is shown NVRTC 12 only.
    path = os.pathsep.join([str(folder), str(ROOT), sysconfig.get_paths()['purelib']])
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'PYTHONPATH': path,
           'LD_LIBRARY_PATH': str(library), 'HOME': os.environ.get('HOME', '/tmp')}
    done = subprocess.run([sys._base_executable, '-S', '-c', COMPILE, 'sm_87', 'sm_90'],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report['bindings'].startswith('12.') and report['nvrtc'][0] == 12, report
    assert report['compiled'] == {'sm_87': 'ObjectCode', 'sm_90': 'ObjectCode'}
