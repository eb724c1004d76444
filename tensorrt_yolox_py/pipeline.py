"""The ``Detector``: preprocess -> infer -> postprocess, with per-stage timing.

Every adapter (ROS node, evaluator, demo, benchmarks) runs detection through this class.

Contract of ``Detector.detect_batch(sources)``, the one path:

- ``sources``: ``image.SourceImage`` objects (made and validated once by the adapter; an
  array with its encoding is wrapped there with ``SourceImage.from_array``). Anything else,
  or an empty sequence, raises ``InputError`` naming the bad image before any stage runs.
- returns one ``DetectionResult`` per source, in order: ``detections``
  (``stages.postprocess.Detections``, source-image pixels), ``letterbox`` (the geometry used),
  ``timings`` (ms per stage: ``preprocess``, ``infer``, ``postprocess``, ``total``) and
  ``batch_size`` (B, the images that shared the inference call).
- The sources go in chunks of ``backend.capabilities.max_batch``: each chunk is preprocessed
  by ONE ``preprocessor.run`` into one (B, 3, H, W) tensor (``tensors.HostTensor`` from the
  CPU preprocessor, ``tensors.DeviceTensor`` from the CUDA one), inferred by ONE
  ``backend.infer(tensor)`` and postprocessed per image. The pipeline never asks which kind
  of tensor it has: a device tensor stays on the GPU when the backend reads device memory
  (TensorRT, torch on CUDA: one stream, no host sync in between); ``Backend.infer`` copies it
  to the host otherwise. ``preprocess`` and ``infer`` times are the chunk's, ``postprocess``
  is the image's own.

``Detector.detect(source)`` is ``detect_batch([source])[0]``.

Host frames overlap: ``Detector.stage(sources)`` packs one chunk ahead into the preprocessor's
next pinned staging slot and queues its H2D (``cuda.preprocess.CudaPreprocessor.stage``;
None where the preprocessor cannot: the CPU one, or more sources than ``max_batch``);
``detect_batch(sources, staged=...)`` then runs that chunk without packing it again. One
thread stages batch n + 1 while another runs batch n (``batching.BatchScheduler``); the
staged slot is given back even when the chunk fails.

Where the backend decodes on the device (``capabilities.device_decode``: the torch backend on
CUDA, whose captured CUDA graph holds network, decode, score threshold and top-k) and the
preprocessor writes device tensors, the chunk goes: ``preprocessor.run(sources,
out=backend.input_tensor(B))`` (the kernel writes the captured work's static input, in the
backend's dtype and layout) -> ``backend.infer_decoded`` (only candidates cross to the host)
-> ``postprocessor.from_candidates`` (NMS, letterbox mapping), both calls under
``backend.device_lock()``. The decode's score threshold and output format are the
postprocessor's (set once here).
"""

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from .backends import create_backend
from .backends.base import Backend
from .errors import ModelContractError
from .image import SourceImage
from .labels import load_labels
from .onnx_model.integrity import check_model_file
from .params import DetectorConfig
from .stages.postprocess import Detections, Postprocessor
from .stages.preprocess import check_sources, CpuPreprocessor, LetterboxParams, Preprocessor
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


def make_preprocessor(config: DetectorConfig, backend: Backend) -> Preprocessor:
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
    """YOLOX detector over any Backend and Preprocessor; see the module contract."""

    def __init__(self, backend: Backend, preprocessor: Preprocessor,
                 postprocessor: Postprocessor, labels: Sequence[str]) -> None:
        if backend.num_classes > 0 and len(labels) != backend.num_classes:
            raise ModelContractError(
                f'the model has {backend.num_classes} classes but the label file has '
                f'{len(labels)} labels')
        self.backend = backend
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.labels: List[str] = list(labels)
        #: Decode + threshold + top-k inside the backend's captured GPU work: only candidates
        #: cross to the host; NMS and the letterbox mapping stay here.
        self._device_decode = bool(backend.capabilities.device_decode
                                   and preprocessor.writes_device_tensors)
        if self._device_decode:
            postprocessor.output_format = backend.configure_decode(
                postprocessor.score_threshold, postprocessor.output_format)
            backend.prepare()   # capture (compile) every batch size before the first frame

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

    def detect(self, source: SourceImage) -> DetectionResult:
        """Detect objects in one image: ``detect_batch([source])[0]``."""
        return self.detect_batch([source])[0]

    @property
    def can_stage(self) -> bool:
        """Whether ``stage`` packs chunks ahead (a preprocessor with host frames overlap)."""
        return callable(getattr(self.preprocessor, 'stage', None))

    def stage(self, sources: Sequence[SourceImage]) -> Optional[Any]:
        """Pack one chunk ahead (see the module contract); None where that is not possible."""
        sources = check_sources(sources)
        if not self.can_stage or len(sources) > max(1, int(self.backend.capabilities.max_batch)):
            return None
        return self.preprocessor.stage(sources)

    def detect_batch(self, sources: Sequence[SourceImage], staged: Optional[Any] = None
                     ) -> List[DetectionResult]:
        """Detect objects in several images with batched inference; see the module contract.

        ``staged``: what ``stage(sources)`` returned for these sources (one chunk).
        """
        try:
            sources = check_sources(sources)
            if staged is not None:
                return self._detect_chunk(sources, staged)
            step = max(1, int(self.backend.capabilities.max_batch))
            results: List[DetectionResult] = []
            for first in range(0, len(sources), step):
                results += self._detect_chunk(sources[first:first + step])
            return results
        finally:
            if staged is not None:
                staged.release()

    def _preprocess(self, sources: Sequence[SourceImage], staged: Optional[Any],
                    **out: Any) -> tuple:
        if staged is None:
            return self.preprocessor.run(sources, **out)
        return self.preprocessor.run(sources, staged=staged, **out)

    def _detect_chunk(self, sources: Sequence[SourceImage], staged: Optional[Any] = None
                      ) -> List[DetectionResult]:
        timer = StageTimer()
        start = time.perf_counter()
        if self._device_decode:
            return self._detect_decoded(sources, timer, start, staged)
        with timer.stage('preprocess'):
            tensor, letterboxes = self._preprocess(sources, staged)
        with timer.stage('infer'):
            output = self.backend.infer(tensor)
        return self._results(letterboxes, timer, start, lambda index, letterbox:
                             self.postprocessor(output[index:index + 1], letterbox))

    def _detect_decoded(self, sources: Sequence[SourceImage], timer: StageTimer, start: float,
                        staged: Optional[Any] = None) -> List[DetectionResult]:
        """Run one chunk on the device-decode path (see the module contract)."""
        with self.backend.device_lock():   # the static input is shared by the backend's users
            with timer.stage('preprocess'):
                tensor, letterboxes = self._preprocess(
                    sources, staged, out=self.backend.input_tensor(len(sources)))
            with timer.stage('infer'):
                decoded = self.backend.infer_decoded(tensor)

        def postprocess(index: int, letterbox: LetterboxParams) -> Detections:
            if index in decoded.raw:        # more passing anchors than the top-k kept
                return self.postprocessor(decoded.raw[index], letterbox)
            return self.postprocessor.from_candidates(
                decoded.candidates[index], decoded.counts[index], letterbox)

        return self._results(letterboxes, timer, start, postprocess)

    @staticmethod
    def _results(letterboxes: Sequence[LetterboxParams], timer: StageTimer, start: float,
                 postprocess: Callable[[int, LetterboxParams], Detections]
                 ) -> List[DetectionResult]:
        """One result per image: the chunk's shared stage times, its own postprocess time."""
        shared = dict(timer.times_ms)
        results = []
        for index, letterbox in enumerate(letterboxes):
            own = StageTimer()
            with own.stage('postprocess'):
                detections = postprocess(index, letterbox)
            times = dict(shared, **own.times_ms)
            times['total'] = (time.perf_counter() - start) * 1e3
            results.append(DetectionResult(detections, letterbox, times, len(letterboxes)))
        return results

    def label_of(self, class_id: int) -> str:
        """Return the label name of ``class_id`` (``class_<id>`` when out of range)."""
        if 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return f'class_{class_id}'

    def close(self) -> None:
        """Release the preprocessor's and the backend's resources (idempotent)."""
        try:
            self.preprocessor.close()
        finally:
            self.backend.close()

    def __enter__(self) -> 'Detector':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
