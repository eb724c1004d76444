"""Inference backends behind one ``Backend`` interface, registered with what they can do.

``create_backend(config)`` honours ``backend`` (auto or a registered name) and ``device``
(gpu | dla0 | dla1 | cpu): ``auto`` takes the first registered backend that can serve the
config (TensorRT where ``import tensorrt`` works and the device is not ``cpu``, else ONNX
Runtime), and logs which one and why. The registry and the capabilities live in ``base``.
"""

import importlib.util
import logging
import sys
from typing import Any, Tuple

from ..errors import ParameterError
from ..params import DetectorConfig, DLA_DEVICES
from .base import Backend, BackendEntry, register, REGISTRY

LOGGER = logging.getLogger(__name__)


def tensorrt_importable() -> bool:
    """Return whether the ``tensorrt`` Python module can be found (without importing it)."""
    if sys.modules.get('tensorrt') is not None:
        return True
    try:
        return importlib.util.find_spec('tensorrt') is not None
    except (ImportError, ValueError):
        return False


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


def _onnxruntime_usable(config: DetectorConfig) -> str:
    if config.device in DLA_DEVICES:
        return f'{config.device} needs TensorRT'
    return ''


def _create_onnxruntime(config: DetectorConfig) -> Backend:
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(config.resolved_model_path, num_threads=config.num_threads)


register(BackendEntry('tensorrt', _tensorrt_usable, _create_tensorrt,
                      'TensorRT engine on the GPU or a DLA core'))
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
                'register', 'tensorrt_importable']
