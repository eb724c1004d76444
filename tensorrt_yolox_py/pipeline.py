"""The ``Detector``: preprocess -> infer -> postprocess, with per-stage timing.

Every adapter (ROS node, evaluator, demo, benchmarks) runs detection through this class.

Contract of ``Detector.detect(image, encoding)``:

- ``image``: (H, W, 3) uint8, ``bgr8`` or ``rgb8``, rows possibly strided (see
  ``stages.preprocess``); bad input raises ``InputError`` before any stage runs.
- returns ``DetectionResult``: ``detections`` (``stages.postprocess.Detections``, source-image
  pixels), ``letterbox`` (the geometry used) and ``timings`` (ms per stage: ``preprocess``,
  ``infer``, ``postprocess``, ``total``).

When the backend can read a device buffer (TensorRT) and the preprocessor writes one (CUDA),
the image stays on the GPU between the two stages (one stream, no host sync in between).
"""

import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .backends import create_backend
from .backends.base import Backend
from .errors import ModelContractError
from .labels import load_labels
from .model.integrity import check_model_file
from .params import DetectorConfig
from .stages.postprocess import Detections, Postprocessor
from .stages.preprocess import CpuPreprocessor, LetterboxParams, validate_image
from .timing import StageTimer

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionResult:
    """What one ``detect()`` call returns."""

    detections: Detections
    letterbox: LetterboxParams
    timings: Dict[str, float]


def make_preprocessor(config: DetectorConfig, backend: Backend) -> Any:
    """Return the CUDA preprocessor when asked for and a GPU is there, else the CPU one."""
    if config.preprocess_on_gpu:
        reason = ''
        try:
            from .cuda.preprocess import CudaPreprocessor, cuda_unavailable_reason
        except ImportError as exc:
            reason = f'the CUDA preprocessing module cannot be imported ({exc})'
        else:
            reason = cuda_unavailable_reason(config.gpu_id) or ''
            if not reason:
                LOGGER.info('preprocessing: fused CUDA kernel on GPU %d', config.gpu_id)
                return CudaPreprocessor(backend.input_hw, dtype=backend.input_dtype,
                                        gpu_id=config.gpu_id)
        LOGGER.info('preprocessing: CPU reference (preprocess_on_gpu is true but %s)', reason)
    else:
        LOGGER.info('preprocessing: CPU reference (preprocess_on_gpu is false)')
    return CpuPreprocessor(backend.input_hw, dtype=backend.input_dtype)


class Detector:
    """YOLOX detector over any Backend and preprocessor; see the module contract."""

    def __init__(self, backend: Backend, preprocessor: Any, postprocessor: Postprocessor,
                 labels: Sequence[str]) -> None:
        if backend.num_classes > 0 and len(labels) != backend.num_classes:
            raise ModelContractError(
                f'the model has {backend.num_classes} classes but the label file has '
                f'{len(labels)} labels')
        self.backend = backend
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.labels: List[str] = list(labels)
        self._device_path = (callable(getattr(backend, 'infer_device', None))
                             and callable(getattr(preprocessor, 'enqueue', None)))

    @classmethod
    def from_config(cls, config: DetectorConfig, backend: Optional[Backend] = None
                    ) -> 'Detector':
        """Build backend, preprocessor, postprocessor and labels from validated parameters."""
        labels = load_labels(config.resolved_label_path)
        if backend is None:
            if str(config.resolved_model_path).lower().endswith('.onnx'):
                check_model_file(config.resolved_model_path)  # FileError if corrupted
            backend = create_backend(config)
        try:
            preprocessor = make_preprocessor(config, backend)
            postprocessor = Postprocessor(backend.input_hw, config.score_threshold,
                                          config.nms_threshold, config.max_detections,
                                          config.output_format)
            return cls(backend, preprocessor, postprocessor, labels)
        except BaseException:
            backend.close()
            raise

    @property
    def input_hw(self) -> tuple:
        """Model input (height, width)."""
        return self.backend.input_hw

    def detect(self, image: np.ndarray, encoding: str = 'bgr8') -> DetectionResult:
        """Detect objects in one image; see the module contract."""
        validate_image(image, encoding)
        timer = StageTimer()
        start = time.perf_counter()
        if self._device_path:
            with timer.stage('preprocess'):
                letterbox = self.preprocessor.enqueue(image, encoding)
            with timer.stage('infer'):
                output = self.backend.infer_device(self.preprocessor.device_ptr,
                                                   self.preprocessor.stream_handle)
        else:
            with timer.stage('preprocess'):
                tensor, letterbox = self.preprocessor(image, encoding)
            with timer.stage('infer'):
                output = self.backend.infer(tensor)
        with timer.stage('postprocess'):
            detections = self.postprocessor(output, letterbox)
        timer.times_ms['total'] = (time.perf_counter() - start) * 1e3
        return DetectionResult(detections, letterbox, timer.times_ms)

    def label_of(self, class_id: int) -> str:
        """Return the label name of ``class_id`` (``class_<id>`` when out of range)."""
        if 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return f'class_{class_id}'

    def close(self) -> None:
        """Release the preprocessor's and the backend's resources (idempotent)."""
        close = getattr(self.preprocessor, 'close', None)
        if callable(close):
            close()
        self.backend.close()

    def __enter__(self) -> 'Detector':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
