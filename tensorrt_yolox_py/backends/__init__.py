"""Inference backends behind one ``Backend`` interface, and the factory that picks one.

``create_backend(config)`` honours ``backend`` (auto | tensorrt | onnxruntime) and ``device``
(gpu | dla0 | dla1 | cpu): ``auto`` takes TensorRT where ``import tensorrt`` works and the device
is not ``cpu``, else ONNX Runtime, and returns the reason for its choice with the backend.
"""

import importlib.util
import logging
import sys
from typing import Tuple

from ..errors import ParameterError
from ..params import DetectorConfig
from .base import Backend

LOGGER = logging.getLogger(__name__)


def tensorrt_importable() -> bool:
    """Return whether the ``tensorrt`` Python module can be found (without importing it)."""
    if sys.modules.get('tensorrt') is not None:
        return True
    try:
        return importlib.util.find_spec('tensorrt') is not None
    except (ImportError, ValueError):
        return False


def choose_backend(config: DetectorConfig) -> Tuple[str, str]:
    """Return (backend name, reason) for ``config`` without loading anything."""
    if config.backend == 'onnxruntime':
        return 'onnxruntime', 'backend=onnxruntime was requested'
    if config.backend == 'tensorrt':
        if not tensorrt_importable():
            raise ParameterError('backend', "'tensorrt' was requested but the tensorrt Python "
                                 'module is not installed (install TensorRT 10, or use '
                                 'backend:=onnxruntime / device:=cpu)')
        return 'tensorrt', 'backend=tensorrt was requested'
    if config.device == 'cpu':
        return 'onnxruntime', 'backend=auto and device=cpu'
    if tensorrt_importable():
        return 'tensorrt', f'backend=auto, tensorrt is installed, device={config.device}'
    if config.device in ('dla0', 'dla1'):
        raise ParameterError('device', f"'{config.device}' needs TensorRT, which is not "
                             'installed here (use device:=gpu or device:=cpu)')
    return 'onnxruntime', 'backend=auto and the tensorrt module is not installed'


def create_backend(config: DetectorConfig) -> Backend:
    """Build the backend chosen by ``choose_backend`` and log the choice and its reason."""
    name, reason = choose_backend(config)
    LOGGER.info('inference backend: %s (%s)', name, reason)
    if name == 'tensorrt':
        from .tensorrt import TensorRTBackend

        return TensorRTBackend.from_config(config)
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(config.resolved_model_path, num_threads=config.num_threads)
