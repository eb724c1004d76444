"""Inference backends behind one ``Backend`` interface, registered with what they can do.

``create_backend(config)`` honours ``backend`` (auto or a registered name) and ``device``
(gpu | dla0 | dla1 | cpu): ``auto`` takes the first registered backend that can serve the
config (TensorRT where ``import tensorrt`` works and the device is not ``cpu``; else torch
through onnx2torch where both can be found and the CUDA driver reports a GPU; else ONNX
Runtime), and logs which one and why. Deciding imports neither tensorrt nor torch: the module
specs are looked up and the GPU is counted through the CUDA driver library (``ctypes``). An
explicit ``backend: torch`` also runs on the CPU (``device: cpu`` or no GPU). The registry and
the capabilities live in ``base``.
"""

import ctypes
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any, Tuple

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


def _tensorrt_usable(config: DetectorConfig) -> str:
    if config.device == 'cpu':
        return 'device=cpu'
    if not tensorrt_importable():
        return ('the tensorrt Python module is not installed (install TensorRT 8.6, 10.x or '
                '11.x, or use backend:=onnxruntime / device:=cpu)')
    return ''


def _create_tensorrt(config: DetectorConfig) -> Backend:
    from .tensorrt import TensorRTBackend

    return TensorRTBackend.from_config(config)


def _torch_usable(config: DetectorConfig) -> str:
    if config.device in DLA_DEVICES:
        return f'{config.device} needs TensorRT'
    missing = [m for m in ('torch', 'onnx2torch') if not module_findable(m)]
    if missing:
        return (f"{' and '.join(missing)} not installed (pip install torch && "
                'pip install --no-deps onnx2torch)')
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
        if torch_has_cuda() and cuda_gpu_count() > config.gpu_id:
            device = f'cuda:{config.gpu_id}'
        else:
            LOGGER.warning('torch backend: no CUDA GPU %d for this torch build here; running '
                           'on the CPU', config.gpu_id)
    return TorchBackend(config.resolved_model_path, device=device, precision=config.precision,
                        max_batch=config.max_batch, cuda_graph=config.cuda_graph,
                        num_threads=config.num_threads)


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
        return entry.name, f'backend={entry.name} was requested'
    reasons = []
    for entry in REGISTRY.values():
        why_not = entry.usable(config)
        if not why_not:
            tried = f' ({"; ".join(reasons)})' if reasons else ''
            return entry.name, f'backend=auto, device={config.device}: {entry.name}{tried}'
        reasons.append(f'not {entry.name}: {why_not}')
    if config.device in DLA_DEVICES:
        raise ParameterError('device', f"'{config.device}' needs TensorRT, which is not "
                             'installed here (use device:=gpu or device:=cpu)')
    raise ParameterError('backend', 'no backend can run here: ' + '; '.join(reasons))


def create_backend(config: DetectorConfig) -> Backend:
    """Build the backend chosen by ``choose_backend`` and log the choice and its reason."""
    name, reason = choose_backend(config)
    LOGGER.info('inference backend: %s (%s)', name, reason)
    return REGISTRY[name].create(config)


__all__: Any = ['Backend', 'BackendEntry', 'REGISTRY', 'choose_backend', 'create_backend',
                'cuda_gpu_count', 'module_findable', 'register', 'tensorrt_importable']
