"""Platform-dependent choices at run time: CUDA bindings by driver, Jetson TensorRT, old ORT."""

import logging
import subprocess
import sys
import types
from pathlib import Path

import pytest

import tensorrt_yolox_py.backends as backends
from tensorrt_yolox_py.backends.tensorrt.builder import EngineSettings, plan_int8
from tensorrt_yolox_py.cuda import driver
from tensorrt_yolox_py.errors import ParameterError
from tensorrt_yolox_py.params import make_config
from tensorrt_yolox_py.quantization import static

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize('version, expected', [
    (None, 'requirements-cuda13.txt'), ((12, 2), 'requirements-cuda12.txt'),
    ((12, 9), 'requirements-cuda12.txt'), ((13, 0), 'requirements-cuda13.txt'),
    ((14, 1), 'requirements-cuda13.txt'), ((11, 4), None)])
def test_requirements_file_follows_the_driver(version, expected):
    assert driver.requirements_file(version) == expected
    if expected:
        assert (ROOT / expected).is_file()


def test_bindings_newer_than_the_driver_are_named_with_the_fix():
    reason = driver.mismatch_reason((12, 6), 13)
    assert 'cuda-bindings 13.x' in reason and 'CUDA 12.6' in reason
    assert 'requirements-cuda12.txt' in reason and '580' in reason
    assert driver.mismatch_reason((13, 0), 13) is None
    assert driver.mismatch_reason((13, 0), 12) is None      # older bindings run on newer drivers
    assert driver.mismatch_reason(None, 13) is None         # no driver: cuInit says so later


def test_no_driver_library_means_no_version():
    assert driver.driver_cuda_version('libcuda-does-not-exist.so.1') is None


def test_driver_module_runs_as_a_script_without_the_package():
    # scripts/setup.sh runs the file with the system Python before anything is installed.
    done = subprocess.run([sys.executable, '-S', str(ROOT / 'tensorrt_yolox_py/cuda/driver.py')],
                          capture_output=True, text=True, timeout=60, check=True)
    expected = driver.requirements_file(driver.driver_cuda_version())
    assert done.stdout.strip() == expected


@pytest.fixture
def jetson(tmp_path, monkeypatch):
    """Pretend to be a Jetson (an L4T release file) whose Python has no tensorrt module."""
    release = tmp_path / 'nv_tegra_release'
    release.write_text('# R36 (release), REVISION: 4.3, GCID: 1, BOARD: generic, EABI: aarch64\n')
    system = tmp_path / 'dist-packages'
    (system / 'tensorrt').mkdir(parents=True)
    monkeypatch.setattr(backends, 'TEGRA_RELEASE', release)
    monkeypatch.setattr(backends, 'SYSTEM_DIST_PACKAGES', system)
    monkeypatch.setattr(backends, 'tensorrt_importable', lambda: False)
    return system


def test_auto_on_a_jetson_without_tensorrt_warns_with_the_fix(jetson, planted_model, caplog):
    # No GPU backend here: refused by default, naming the Jetson fix ...
    config = make_config({'model_path': str(planted_model), 'device': 'gpu'})
    with pytest.raises(ParameterError) as info:
        backends.create_backend(config)
    assert 'R36' in str(info.value) and '--system-site-packages' in str(info.value)
    # ... and, with the fallback allowed, one warning that names it.
    config = make_config({'model_path': str(planted_model), 'device': 'gpu',
                          'allow_cpu_fallback': True})
    with caplog.at_level(logging.WARNING, logger='tensorrt_yolox_py.backends'):
        backend = backends.create_backend(config)
    backend.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    text = warnings[0]
    assert 'R36' in text and 'import tensorrt fails' in text
    assert str(jetson / 'tensorrt') in text and '--system-site-packages' in text
    assert 'docs/platforms.md' in text


def test_dla_on_a_jetson_without_tensorrt_says_why(jetson, planted_model):
    config = make_config({'model_path': str(planted_model), 'device': 'dla0'})
    with pytest.raises(ParameterError) as info:
        backends.choose_backend(config)
    assert 'needs TensorRT' in str(info.value) and '--system-site-packages' in str(info.value)


def test_explicit_tensorrt_on_a_jetson_without_it_says_why(jetson, planted_model):
    config = make_config({'model_path': str(planted_model), 'backend': 'tensorrt'})
    with pytest.raises(ParameterError) as info:
        backends.choose_backend(config)
    assert 'not installed' in str(info.value) and '--system-site-packages' in str(info.value)


def test_auto_elsewhere_does_not_warn(tmp_path, monkeypatch, planted_model, caplog):
    monkeypatch.setattr(backends, 'TEGRA_RELEASE', tmp_path / 'absent')
    monkeypatch.setattr(backends, 'tensorrt_importable', lambda: False)
    assert backends.jetson_tensorrt_hint() == ''
    config = make_config({'model_path': str(planted_model), 'allow_cpu_fallback': True})
    with caplog.at_level(logging.WARNING, logger='tensorrt_yolox_py.backends'):
        backends.create_backend(config).close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # Only the CPU fallback's own warning where this machine has no GPU backend: no Jetson hint.
    assert all(backends.CPU_FALLBACK in w for w in warnings), warnings
    assert not [w for w in warnings if 'Jetson' in w or 'import tensorrt fails' in w], warnings


def test_auto_int8_falls_back_to_implicit_without_qdq_writing(tmp_path, caplog):
    gpu = EngineSettings(tmp_path / 'm.onnx')
    assert plan_int8(gpu, (10, 3, 0), False, qdq_writable=True).mode == 'explicit'
    with caplog.at_level(logging.WARNING):
        plan = plan_int8(gpu, (10, 3, 0), False, qdq_writable=False)
    assert plan.mode == 'implicit' and 'onnxruntime>=1.32' in plan.reason
    assert any('1.23.2' in r.getMessage() for r in caplog.records)
    # Paths that need no Q/DQ writing are unchanged.
    assert plan_int8(gpu, (8, 6, 2), False, qdq_writable=False).mode == 'implicit'
    dla = EngineSettings(tmp_path / 'm.onnx', dla_core_id=0)
    assert plan_int8(dla, (10, 3, 0), False, qdq_writable=False).mode == 'ranges'


def test_calibration_cache_support_is_read_from_onnxruntime(monkeypatch):
    import onnxruntime

    major, minor = (int(p) for p in onnxruntime.__version__.split('.')[:2])
    assert static.calibration_cache_supported() == ((major, minor) >= (1, 32))

    def quantize_static(model_input, model_output, calibration_data_reader):
        """The signature of ONNX Runtime 1.23's, reduced: no calibration_cache_path."""

    monkeypatch.setattr(static, '_ort_quantization',
                        lambda: types.SimpleNamespace(quantize_static=quantize_static))
    assert static.calibration_cache_supported() is False
    with pytest.raises(RuntimeError, match='Python 3.11'):
        static.require_calibration_cache()
