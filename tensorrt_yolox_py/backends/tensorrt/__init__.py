"""The TensorRT backend: engine building (FP32/FP16/INT8, GPU or DLA), engine cache, runtime.

Modules: ``builder`` (ONNX -> plan, INT8 paths, DLA), ``calibration`` (TensorRT calibrators),
``dynamic_range`` (explicit ranges, FP16 pins), ``engine_cache`` (keyed, locked, checksummed
plans), ``runtime`` (``TensorRTBackend``; device memory through ``cuda.memory``, the replaceable
layer), ``common`` (import, version policy, logger). Importing this package does not import
``tensorrt`` or CUDA; they are imported when an engine is built or opened.
"""

from .builder import BuildProgress, EngineSettings, prepare_engine, PreparedEngine
from .common import TensorRTError
from .runtime import EngineLoadError, TensorRTBackend

__all__ = ['BuildProgress', 'EngineLoadError', 'EngineSettings', 'PreparedEngine',
           'TensorRTBackend', 'TensorRTError', 'prepare_engine']
