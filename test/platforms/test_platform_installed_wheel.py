"""The installed form: the wheel carries what the code reads at run time, and runs from there.

The wheel is built (``pip wheel --no-deps``) from a copy of the tracked files, so nothing left in
the checkout (build/, an editable install) can stand in for a missing file. Then:

- its contents: the package and nothing else at the top level (no ``benchmarks``, no
  ``test``), every non-Python file of the package (CUDA sources, model, labels, sample data),
  every config file (parameters, labels, cameras, DDS profile) and launch file under
  ``share/tensorrt_yolox_py``, and the dependencies of requirements*.txt in its metadata;
- a fresh virtual environment gets the wheel (not editable) and runs, from a folder outside the
  checkout: the installed ``yolox_detect`` on the CPU (the bundled model and labels; and a
  hand-weighted model whose one detection is known), and the CUDA kernel sources loaded from
  the installed package (compiled with NVRTC where it is installed; no GPU needed).

The fresh environment reuses this environment's third-party packages through a path file (so
the check costs seconds, not a download); the package itself comes only from the wheel, which
the test asserts.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = 'tensorrt_yolox_py'


def tracked_files() -> list:
    """Return the repository's files (git: tracked and untracked-not-ignored, so a copy whose
    index is older than its files still gives them all), or every file outside ignored folders.
    """
    done = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                          cwd=ROOT, capture_output=True)
    if done.returncode == 0 and done.stdout:
        return [name for name in done.stdout.decode().split('\0')
                if name and (ROOT / name).is_file()]
    skip = {'.git', '.venv', 'build', 'install', 'log', '__pycache__', '.pytest_cache',
            '.device', '.whl', '.gl', 'out', 'output'}
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob('*')
            if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp('wheel')
    source = work / 'src'
    for name in tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    done = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                           '--no-build-isolation', '--disable-pip-version-check', '-q', '-w',
                           str(work / 'dist'), str(source)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (found,) = (work / 'dist').glob(f'{PACKAGE}-*.whl')
    return found


@pytest.fixture(scope='module')
def names(wheel) -> set:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_only_the_package_at_the_top_level(names):
    top = {name.split('/')[0] for name in names}
    data = {t for t in top if t.endswith('.data') or t.endswith('.dist-info')}
    assert top - data == {PACKAGE}, sorted(top - data)


def test_every_run_time_file_is_inside(names):
    package_files = [name for name in tracked_files()
                     if name.startswith(PACKAGE + '/') and not name.endswith('.py')]
    assert f'{PACKAGE}/cuda/preprocess.cu' in package_files
    assert f'{PACKAGE}/cuda/sampling.cuh' in package_files
    missing = sorted(set(package_files) - names)
    assert not missing, f'read at run time but not in the wheel: {missing}'
    share = next(t for t in {n.split('/')[0] for n in names} if t.endswith('.data'))
    share += f'/data/share/{PACKAGE}/'
    shared = [name for name in tracked_files() if name.split('/')[0] in ('config', 'launch')]
    assert 'config/fastdds_large_data.xml' in shared and 'config/yolox.param.yaml' in shared
    missing = sorted(name for name in shared if share + name not in names)
    assert not missing, f'not installed under share/{PACKAGE}: {missing}'
    assert share + 'package.xml' in names


def test_metadata_names_the_requirements(wheel):
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith('.dist-info/METADATA'))
        metadata = archive.read(info).decode()

    def key(requirement: Requirement) -> tuple:
        return (requirement.name, str(requirement.specifier), str(requirement.marker))

    declared = {key(Requirement(line.split(':', 1)[1].strip()))
                for line in metadata.splitlines() if line.startswith('Requires-Dist:')}
    expected = set()
    for name, extra in (('requirements.txt', None), ('requirements-cuda12.txt', 'cuda12'),
                        ('requirements-cuda13.txt', 'cuda13')):
        for raw in (ROOT / name).read_text().splitlines():
            line = raw.split('#', 1)[0].strip()
            if not line or line.startswith('-'):
                continue
            requirement = Requirement(line)
            if extra:
                marker = f' and ({requirement.marker})' if requirement.marker else ''
                requirement = Requirement(f'{requirement.name}{requirement.specifier}; '
                                          f'extra == "{extra}"{marker}')
            expected.add(key(requirement))
    missing = sorted(expected - declared)
    assert not missing, f'not in the wheel metadata: {missing}\nmetadata: {sorted(declared)}'
    assert 'Requires-Python: >=3.10' in metadata


@pytest.fixture(scope='module')
def fresh_env(tmp_path_factory, wheel) -> Path:
    """A new venv with the wheel installed (not editable); third-party packages shared."""
    env = tmp_path_factory.mktemp('fresh') / 'venv'
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / 'bin' / 'python'
    purelib = subprocess.run([str(python), '-c', 'import sysconfig; '
                              'print(sysconfig.get_paths()["purelib"])'], capture_output=True,
                             text=True, check=True).stdout.strip()
    # This environment's package folders (a venv's, or a system Python's dist-packages), never
    # the checkout: the package must come from the wheel.
    shared = [sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']] + [
        entry for entry in sys.path if entry.endswith(('site-packages', 'dist-packages'))]
    shared = [entry for entry in dict.fromkeys(shared)
              if Path(entry).is_dir() and Path(entry).resolve() != ROOT]
    (Path(purelib) / '_shared_third_party.pth').write_text('\n'.join(shared) + '\n')
    done = subprocess.run([sys.executable, '-m', 'pip', '--python', str(python), 'install',
                           '--no-deps', '--no-index', '--disable-pip-version-check', '-q',
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


def nvrtc_dir() -> str:
    """Return the folder of this environment's NVRTC library ('' without one).

    cuda-pathfinder looks for pip's NVRTC in the site-packages folders of the running Python
    only; the fresh environment shares this one's through a path file, so it is named to the
    loader instead (as a system CUDA install would be).
    """
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        return str(Path(load_nvidia_dynamic_lib('nvrtc').abs_path).parent)
    except Exception:  # noqa: BLE001 - no cuda-pathfinder or no NVRTC: nothing to name
        return ''


def fresh_environ(env: Path, home: Path) -> dict:
    """This process's environment (the driver's library path kept), with the fresh venv first.

    PYTHONPATH and PYTHONHOME are dropped so the checkout cannot be imported.
    """
    environ = {key: value for key, value in os.environ.items()
               if key not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV')}
    library = os.pathsep.join(p for p in (nvrtc_dir(), os.environ.get('LD_LIBRARY_PATH', ''))
                              if p)
    environ.update({'PATH': f'{env / "bin"}{os.pathsep}{os.environ.get("PATH", "/usr/bin")}',
                    'HOME': str(home), 'LD_LIBRARY_PATH': library})
    return environ


def run_in(env: Path, code: str, cwd: Path) -> str:
    done = subprocess.run([str(env / 'bin' / 'python'), '-c', code], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env=fresh_environ(env, cwd))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_installed_wheel_detects_on_the_cpu(fresh_env, planted_model, tmp_path):
    import cv2

    where = run_in(fresh_env, f'import {PACKAGE}; print({PACKAGE}.__file__)', tmp_path)
    assert where.startswith(str(fresh_env)), where           # the wheel, not the checkout
    image = np.full((640, 640, 3), 90, np.uint8)
    image[64:128, 128:192] = (0, 0, 255)                      # the planted model's CAR cell
    cv2.imwrite(str(tmp_path / 'scene.png'), image)
    env = fresh_environ(fresh_env, tmp_path)
    detect = str(fresh_env / 'bin' / 'yolox_detect')
    for model, out in ((None, 'bundled'), (planted_model, 'planted')):
        command = [detect, str(tmp_path / 'scene.png'), '--output', str(tmp_path / out),
                   '--device', 'cpu', '--param', 'score_threshold=0.5']
        command += ['--model', str(model)] if model else []
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    bundled = json.loads((tmp_path / 'bundled' / 'detections.json').read_text())
    assert len(bundled) == 1 and 'detections' in bundled[0]
    planted = json.loads((tmp_path / 'planted' / 'detections.json').read_text())
    dets = planted[0]['detections']
    assert [d['label'] for d in dets] == ['CAR']              # the bundled label file
    np.testing.assert_allclose(dets[0]['box_xyxy'], [128, 64, 192, 128], atol=1e-3)


@pytest.mark.slow
def test_installed_wheel_loads_its_kernel_sources(fresh_env, tmp_path):
    code = (
        'import json\n'
        f'from {PACKAGE}.cuda import kernels as K\n'
        'source = K.RUNTIME_KERNELS.source()\n'
        'compiled = None\n'
        'try:\n'
        '    from cuda.bindings import nvrtc\n'
        '    usable = int(nvrtc.nvrtcVersion()[0]) == 0\n'
        'except Exception:\n'
        '    usable = False\n'
        'if usable:\n'
        "    compiled = type(K.compile_kernels('sm_87')).__name__\n"
        "print(json.dumps({'here': str(K.HERE), 'names': [n for n in K.KERNEL_NAMES\n"
        "                  if n in source], 'compiled': compiled,\n"
        "                  'include_inlined': '#include' not in source}))\n")
    report = json.loads(run_in(fresh_env, code, tmp_path))
    assert report['here'].startswith(str(fresh_env)), report
    from tensorrt_yolox_py.cuda.kernels import KERNEL_NAMES

    assert report['names'] == list(KERNEL_NAMES) and report['include_inlined']
    if nvrtc_dir():   # NVRTC installed here: the installed sources must compile
        assert report['compiled'] == 'ObjectCode', report


GPU_CHECK = '''
import json, sys
import numpy as np
import tensorrt_yolox_py
from tensorrt_yolox_py.cuda.preprocess import CudaPreprocessor, cuda_unavailable_reason
from tensorrt_yolox_py.cuda.driver import bindings_major, driver_cuda_version
from tensorrt_yolox_py.image import SourceImage
from tensorrt_yolox_py.stages.preprocess import preprocess_cpu

reason = cuda_unavailable_reason(0)
if reason:
    print(json.dumps({'unavailable': reason}))
    sys.exit(0)
rng = np.random.default_rng(18)
report = {'package': tensorrt_yolox_py.__file__, 'driver_cuda': driver_cuda_version(),
          'bindings_major': bindings_major(), 'cases': []}
for encoding, shape in (('bgr8', (1280, 1920, 3)), ('rgb8', (720, 1280, 3)),
                        ('mono8', (480, 640, 1)), ('yuv422', (480, 640, 2))):
    image = SourceImage.from_array(rng.integers(0, 256, shape, np.uint8), encoding)
    for dtype in (np.float32, np.float16):
        with CudaPreprocessor((960, 960), dtype, 0) as pre:
            tensor, (lb,) = pre.run([image])
            tensor = np.array(tensor.to_host(), np.float32)
        ref, lb_ref = preprocess_cpu(image, (960, 960), np.float32)
        report['cases'].append({'encoding': encoding, 'dtype': np.dtype(dtype).name,
                                'shape': list(tensor.shape), 'same_letterbox': lb == lb_ref,
                                'max_abs_diff': float(np.abs(tensor - ref).max())})
print(json.dumps(report))
'''


@pytest.mark.gpu
@pytest.mark.slow
def test_installed_wheel_runs_the_fused_kernel_on_the_gpu(fresh_env, tmp_path):
    """The fused kernel compiled from the installed sources matches the CPU reference.

    On the GPU machine: ``python -m pytest -q -rA test/platforms/test_platform_installed_wheel.py
    -k gpu`` (the report is printed and written to ``$YOLOX_GPU_LOG`` when set).
    """
    from tensorrt_yolox_py.cuda.preprocess import cuda_unavailable_reason

    here = cuda_unavailable_reason(0)
    report = json.loads(run_in(fresh_env, GPU_CHECK, tmp_path).strip().splitlines()[-1])
    if 'unavailable' in report:
        if here is None:
            pytest.fail('CUDA works in this environment but not from the installed wheel: '
                        f"{report['unavailable']}")
        pytest.skip(f"no usable CUDA here: {report['unavailable']}")
    text = json.dumps(report, indent=1)
    print(text)
    if os.environ.get('YOLOX_GPU_LOG'):
        Path(os.environ['YOLOX_GPU_LOG']).write_text(text + '\n')
    assert report['package'].startswith(str(fresh_env)), report
    assert len(report['cases']) == 8
    for case in report['cases']:
        assert case['shape'] == [1, 3, 960, 960] and case['same_letterbox'], case
        # DESIGN.md: the GPU output is within 1.0 of the CPU reference (as test_cuda_preprocess)
        assert case['max_abs_diff'] <= 1.0, case
