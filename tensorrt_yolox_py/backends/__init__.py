"""Inference backends behind one ``Backend`` interface, registered with what they can do.

``create_backend(config)`` honours ``backend`` (auto or a registered name) and ``device``
(gpu | dla0 | dla1 | cpu): ``auto`` takes the first registered backend that can serve the
config (TensorRT where ``import tensorrt`` works and the device is not ``cpu``; else torch
through onnx2torch where both can be found and the CUDA driver reports a GPU; else ONNX
Runtime), and logs which one and why. Deciding imports neither tensorrt nor torch: the module
specs are looked up and the GPU is counted through the CUDA driver library (``ctypes``). An
explicit ``backend: torch`` also runs on the CPU (``device: cpu`` or no GPU). The registry and
the capabilities live in ``base``.

A ``gpu`` or DLA device that nothing here can serve (no TensorRT, no CUDA torch, no GPU) is
refused with the reasons (``ParameterError`` on ``device``) unless ``allow_cpu_fallback`` is
true: then ONNX Runtime (or an explicitly requested torch) runs on the CPU and the reason
starts with ``CPU_FALLBACK`` (logged as a warning). An explicit ``backend: onnxruntime`` is the
user's own choice of the CPU, not a fallback. On a Jetson (``/etc/nv_tegra_release``) where
``auto`` finds no ``tensorrt`` module, ``create_backend`` warns with the fix
(``jetson_tensorrt_hint``), and a refusal names it: JetPack's TensorRT lives in the system
Python, which a venv sees only with system site packages.
"""

import ctypes
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any, List, Tuple

from ..errors import ParameterError
from ..params import DetectorConfig, DLA_DEVICES
from .base import Backend, BackendEntry, register, REGISTRY

LOGGER = logging.getLogger(__name__)


def module_findable(name: str) -> bool:
    """Return whether the Python module ``name`` can be found (without importing it)."""
    if sys.modules.get(name) is not None:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def tensorrt_importable() -> bool:
    """Return whether the ``tensorrt`` Python module can be found (without importing it)."""
    return module_findable('tensorrt')


def torch_has_cuda() -> bool:
    """Return whether the installed torch is a CUDA build (its CUDA library is there)."""
    try:
        spec = importlib.util.find_spec('torch')
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    lib = Path(list(spec.submodule_search_locations)[0]) / 'lib'
    return any(lib.glob('libtorch_cuda*')) or any(lib.glob('torch_cuda*'))


def cuda_gpu_count() -> int:
    """Return the number of CUDA GPUs the driver reports (0 without a driver). Never raises."""
    for name in ('libcuda.so.1', 'libcuda.so', 'nvcuda.dll'):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
        except AttributeError:
            return 0
        return int(count.value)
    return 0


#: L4T's release file: present on every Jetson (JetPack), absent elsewhere.
TEGRA_RELEASE = Path('/etc/nv_tegra_release')
#: Where apt's python3-libnvinfer (JetPack) installs the tensorrt module.
SYSTEM_DIST_PACKAGES = Path('/usr/lib/python3/dist-packages')


def jetson_release() -> str:
    """Return the first line of L4T's release file ('' when this is not a Jetson)."""
    try:
        return TEGRA_RELEASE.read_text(errors='replace').splitlines()[0].strip('# ').strip()
    except (OSError, IndexError):
        return ''


def jetson_tensorrt_hint() -> str:
    """Return why a Jetson's TensorRT is not importable here and the fix ('' if not a Jetson)."""
    release = jetson_release()
    if not release:
        return ''
    system = SYSTEM_DIST_PACKAGES / 'tensorrt'
    where = (f'{system} exists (apt python3-libnvinfer) but this Python ({sys.executable}) does '
             'not see it' if system.is_dir() else
             'apt python3-libnvinfer is not installed (sudo apt-get install python3-libnvinfer)')
    return (f'Jetson ({release}): import tensorrt fails: {where}. JetPack\'s TensorRT is in the '
            'system Python: run in it (colcon workspace) or in a venv made with '
            '--system-site-packages (scripts/setup.sh does that on a Jetson); '
            'see docs/platforms.md')


def _tensorrt_usable(config: DetectorConfig) -> str:
    if config.device == 'cpu':
        return 'device=cpu'
    if not tensorrt_importable():
        hint = jetson_tensorrt_hint()
        return ('the tensorrt Python module is not installed (install TensorRT 8.6, 10.x or '
                '11.x, or use backend:=onnxruntime / device:=cpu)' + (f'. {hint}' if hint else ''))
    return ''


def _create_tensorrt(config: DetectorConfig) -> Backend:
    from .tensorrt import TensorRTBackend

    return TensorRTBackend.from_config(config)


def _torch_usable(config: DetectorConfig) -> str:
    if config.device in DLA_DEVICES:
        return f'{config.device} needs TensorRT'
    if not module_findable('torch'):   # onnx2torch: only for models the static converter
        return 'torch not installed (pip install torch)'   # does not cover

    if config.backend == 'auto':
        if config.device == 'cpu':
            return 'device=cpu (auto takes torch only on a GPU)'
        if not torch_has_cuda():
            return 'torch is a CPU-only build (auto takes torch only on a GPU)'
        if cuda_gpu_count() <= config.gpu_id:
            return f'no CUDA GPU {config.gpu_id} (auto takes torch only on a GPU)'
    return ''


def _create_torch(config: DetectorConfig) -> Backend:
    from .torch_backend import TorchBackend

    device = 'cpu'
    if config.device == 'gpu':
        if _torch_sees_gpu(config):
            device = f'cuda:{config.gpu_id}'
        else:  # allowed by choose_backend (allow_cpu_fallback), which logged it
            LOGGER.warning('torch backend: no CUDA GPU %d for this torch build here; running '
                           'on the CPU (allow_cpu_fallback is true)', config.gpu_id)
    return TorchBackend(config.resolved_model_path, device=device, precision=config.precision,
                        max_batch=config.max_batch, cuda_graph=config.cuda_graph,
                        num_threads=config.num_threads, compile_mode=config.torch_compile,
                        cache_dir=config.engine_cache_dir or None)


def _onnxruntime_usable(config: DetectorConfig) -> str:
    if config.device in DLA_DEVICES:
        return f'{config.device} needs TensorRT'
    return ''


def _create_onnxruntime(config: DetectorConfig) -> Backend:
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(config.resolved_model_path, num_threads=config.num_threads,
                              max_batch=config.max_batch)


register(BackendEntry('tensorrt', _tensorrt_usable, _create_tensorrt,
                      'TensorRT engine on the GPU or a DLA core'))
register(BackendEntry('torch', _torch_usable, _create_torch,
                      'PyTorch (onnx2torch) on a CUDA GPU, or the CPU when asked for'))
register(BackendEntry('onnxruntime', _onnxruntime_usable, _create_onnxruntime,
                      'ONNX Runtime on the CPU'))


def choose_backend(config: DetectorConfig) -> Tuple[str, str]:
    """Return (backend name, reason) for ``config`` without loading anything."""
    if config.backend != 'auto':
        entry = REGISTRY.get(config.backend)
        if entry is None:
            raise ParameterError('backend', f"unknown backend '{config.backend}' (registered: "
                                 f"{', '.join(REGISTRY)})")
        why_not = entry.usable(config)
        if why_not:
            name = 'device' if config.device in DLA_DEVICES else 'backend'
            raise ParameterError(name, f"backend '{entry.name}' was requested but {why_not}")
        if entry.name == 'torch' and config.device == 'gpu' and not _torch_sees_gpu(config):
            return _cpu_fallback(config, 'torch', [
                f'torch cannot use CUDA GPU {config.gpu_id} here (a CPU-only build or no GPU)'])
        return entry.name, f'backend={entry.name} was requested'
    reasons = []
    for entry in REGISTRY.values():
        why_not = entry.usable(config)
        if not why_not:
            if entry.name == 'onnxruntime' and config.device != 'cpu':
                return _cpu_fallback(config, entry.name, reasons)
            tried = f' ({"; ".join(reasons)})' if reasons else ''
            return entry.name, f'backend=auto, device={config.device}: {entry.name}{tried}'
        reasons.append(f'not {entry.name}: {why_not}')
    if config.device in DLA_DEVICES:
        return _cpu_fallback(config, 'onnxruntime', reasons)
    raise ParameterError('backend', 'no backend can run here: ' + '; '.join(reasons))


#: The start of the reason ``choose_backend`` gives for a CPU fallback (node diagnostics).
CPU_FALLBACK = 'CPU fallback'


def _torch_sees_gpu(config: DetectorConfig) -> bool:
    return torch_has_cuda() and cuda_gpu_count() > config.gpu_id


def _cpu_fallback(config: DetectorConfig, name: str, reasons: List[str]) -> Tuple[str, str]:
    """Return (``name``, reason) on the CPU for a gpu / DLA device, or refuse (ParameterError).

    Running a gpu or DLA camera on the CPU is the user's decision (``allow_cpu_fallback``):
    refused by default, with the reasons and both fixes.
    """
    why = '; '.join(reasons) or 'no GPU backend'
    if not config.allow_cpu_fallback:
        raise ParameterError('device', f"'{config.device}' cannot run here ({why}); set "
                             'allow_cpu_fallback:=true to run on the CPU instead, or '
                             'device:=cpu')
    return name, (f'{CPU_FALLBACK}: device={config.device} cannot run here ({why}); '
                  f'running {name} on the CPU because allow_cpu_fallback is true')


def create_backend(config: DetectorConfig) -> Backend:
    """Build the backend chosen by ``choose_backend`` and log the choice and its reason."""
    name, reason = choose_backend(config)
    if reason.startswith(CPU_FALLBACK):   # its reasons name the Jetson fix where there is one
        LOGGER.warning('inference backend: %s (%s)', name, reason)
        return REGISTRY[name].create(config)
    if config.backend == 'auto' and name != 'tensorrt' and config.device != 'cpu':
        hint = jetson_tensorrt_hint() if not tensorrt_importable() else ''
        if hint:
            LOGGER.warning('%s; backend auto falls back to %s', hint, name)
    LOGGER.info('inference backend: %s (%s)', name, reason)
    return REGISTRY[name].create(config)


__all__: Any = ['Backend', 'BackendEntry', 'CPU_FALLBACK', 'REGISTRY', 'choose_backend',
                'create_backend', 'cuda_gpu_count', 'jetson_tensorrt_hint', 'module_findable',
                'register', 'tensorrt_importable']
