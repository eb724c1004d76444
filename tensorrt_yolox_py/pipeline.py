"""The ``Detector``: preprocess -> infer -> postprocess, with per-stage timing.

Every adapter (ROS node, evaluator, demo, benchmarks) runs detection through this class.

Contract of ``Detector.detect(image, encoding)``:

- ``image``: an ``image.SourceImage`` (made once by the adapter), or an (H, W, C) uint8 array
  in ``encoding`` (default bgr8; any of ``image.ENCODINGS``), wrapped and validated once here;
  bad input raises ``InputError`` before any stage runs.
- returns ``DetectionResult``: ``detections`` (``stages.postprocess.Detections``, source-image
  pixels), ``letterbox`` (the geometry used) and ``timings`` (ms per stage: ``preprocess``,
  ``infer``, ``postprocess``, ``total``).

When the backend declares ``capabilities.device_input`` (TensorRT, torch on CUDA) and the
preprocessor declares ``device_output`` (CUDA), the image stays on the GPU between the two
stages (one stream, no host sync in between).

``Detector.detect_batch(images, encodings)`` -> one ``DetectionResult`` per image, in order:
several cameras' frames in one inference call per ``backend.capabilities.max_batch`` images.
The batch is preprocessed by one call (``enqueue_batch`` into one (B, 3, H, W) device buffer
on the GPU path; the CPU preprocessor per image into one (B, 3, H, W) array otherwise),
inferred once and postprocessed per image. Every image is validated first (``InputError``
names the bad one); ``preprocess`` and ``infer`` times are the batch's, ``postprocess`` is the
image's own, ``DetectionResult.batch_size`` is B.
"""

import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from .backends import create_backend
from .backends.base import Backend
from .errors import InputError, ModelContractError
from .image import as_source
from .labels import load_labels
from .onnx_model.integrity import check_model_file
from .params import DetectorConfig
from .stages.postprocess import Detections, Postprocessor
from .stages.preprocess import CpuPreprocessor, LetterboxParams
from .timing import StageTimer

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionResult:
    """What one ``detect()`` call returns."""

    detections: Detections
    letterbox: LetterboxParams
    timings: Dict[str, float]
    #: How many images shared this result's inference call (``detect_batch``).
    batch_size: int = 1


def make_preprocessor(config: DetectorConfig, backend: Backend) -> Any:
    """Return the CUDA preprocessor when asked for and a GPU is there, else the CPU one.

    ``device: cpu`` always preprocesses on the CPU (and never probes CUDA).
    """
    if config.device == 'cpu':
        LOGGER.info('preprocessing: CPU reference (device is cpu)')
    elif config.preprocess_on_gpu:
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
                 labels: Sequence[str], gpu_resident: bool = True) -> None:
        if backend.num_classes > 0 and len(labels) != backend.num_classes:
            raise ModelContractError(
                f'the model has {backend.num_classes} classes but the label file has '
                f'{len(labels)} labels')
        self.backend = backend
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.labels: List[str] = list(labels)
        #: Whether the preprocessed tensor stays on the GPU (``gpu_resident=False`` forces the
        #: host round trip even where both stages could share device memory: benchmarks).
        self._device_path = bool(gpu_resident and backend.capabilities.device_input
                                 and getattr(preprocessor, 'device_output', False))
        self._batch_buffer: Optional[np.ndarray] = None

    @classmethod
    def from_config(cls, config: DetectorConfig, backend: Optional[Backend] = None
                    ) -> 'Detector':
        """Build backend, preprocessor, postprocessor and labels from validated parameters."""
        labels = load_labels(config.resolved_label_path)
        if backend is None:
            if str(config.resolved_model_path).lower().endswith('.onnx'):
                check_model_file(config.resolved_model_path,   # FileError if corrupted
                                 config.require_verified_model)
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

    def detect(self, image: Any, encoding: Optional[str] = None) -> DetectionResult:
        """Detect objects in one image; see the module contract."""
        image = as_source(image, encoding)
        timer = StageTimer()
        start = time.perf_counter()
        if self._device_path:
            with timer.stage('preprocess'):
                letterbox = self.preprocessor.enqueue(image)
            with timer.stage('infer'):
                output = self.backend.infer_device(self.preprocessor.device_ptr,
                                                   self.preprocessor.stream_handle)
        else:
            with timer.stage('preprocess'):
                tensor, letterbox = self.preprocessor(image)
            with timer.stage('infer'):
                output = self.backend.infer(tensor)
        with timer.stage('postprocess'):
            detections = self.postprocessor(output, letterbox)
        timer.times_ms['total'] = (time.perf_counter() - start) * 1e3
        return DetectionResult(detections, letterbox, timer.times_ms)

    def detect_batch(self, images: Sequence[Any],
                     encodings: Union[None, str, Sequence[Optional[str]]] = None
                     ) -> List[DetectionResult]:
        """Detect objects in several images with batched inference; see the module contract."""
        if encodings is None or isinstance(encodings, str):
            encodings = [encodings] * len(images)
        if len(encodings) != len(images):
            raise InputError(f'{len(images)} images but {len(encodings)} encodings')
        sources = []
        for index, (image, encoding) in enumerate(zip(images, encodings)):
            try:
                sources.append(as_source(image, encoding))
            except InputError as exc:
                raise InputError(f'image {index}: {exc}') from exc
        step = max(1, int(self.backend.capabilities.max_batch))
        results: List[DetectionResult] = []
        for first in range(0, len(sources), step):
            results += self._detect_chunk(sources[first:first + step])
        return results

    def _detect_chunk(self, sources: Sequence[Any]) -> List[DetectionResult]:
        timer = StageTimer()
        start = time.perf_counter()
        count = len(sources)
        if self._device_path:
            with timer.stage('preprocess'):
                letterboxes = list(self.preprocessor.enqueue_batch(sources))
            with timer.stage('infer'):
                output = self.backend.infer_device(self.preprocessor.batch_device_ptr(count),
                                                   self.preprocessor.stream_handle,
                                                   batch=count)
        else:
            with timer.stage('preprocess'):
                batch = self._host_batch(count)
                letterboxes = []
                for index, source in enumerate(sources):
                    tensor, letterbox = self.preprocessor(source)
                    batch[index] = tensor[0]
                    letterboxes.append(letterbox)
            with timer.stage('infer'):
                output = self.backend.infer(batch)
        shared = dict(timer.times_ms)
        results = []
        for index, letterbox in enumerate(letterboxes):
            own = StageTimer()
            with own.stage('postprocess'):
                detections = self.postprocessor(output[index:index + 1], letterbox)
            times = dict(shared, **own.times_ms)
            times['total'] = (time.perf_counter() - start) * 1e3
            results.append(DetectionResult(detections, letterbox, times, count))
        return results

    def _host_batch(self, count: int) -> np.ndarray:
        """Return a reused (count, 3, H, W) host array of the backend's input dtype."""
        buffer = self._batch_buffer
        if buffer is None or buffer.shape[0] < count:
            buffer = self._batch_buffer = np.empty((count, 3) + tuple(self.input_hw),
                                                   dtype=self.backend.input_dtype)
        return buffer[:count]

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
