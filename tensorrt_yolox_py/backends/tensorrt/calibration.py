"""TensorRT implicit INT8 calibrators fed by the calibration images (the inference preprocessing).

Contract of ``make_calibrator(trt, algorithm, image_paths, input_shape, input_dtype, cache_path,
memory, percentile, progress)``:

- ``algorithm``: ``Entropy`` -> ``trt.IInt8EntropyCalibrator2`` (the DLA's only calibrator),
  ``MinMax`` -> ``trt.IInt8MinMaxCalibrator``, ``Legacy`` -> ``trt.IInt8LegacyCalibrator`` with
  quantile ``percentile / 100`` and regression cutoff 1.0.
- ``get_batch(names)`` returns ONE device pointer (the network has one input) holding the next
  image's ``preprocess_cpu`` tensor (1, 3, H, W), copied through a pinned staging buffer on the
  calibrator's own stream; ``None`` after the last image. Batch size 1 (explicit batch).
- ``read_calibration_cache`` returns the bytes of ``cache_path`` if it is a verified artefact
  (``trust.read_verified``: the user's file, matching the digest recorded when it was written;
  then TensorRT skips the batches); ``write_calibration_cache`` writes it atomically with its
  digest (``trust.write_atomic``). TensorRT may reject an offered cache (NVIDIA: a cache from
  another TensorRT version is skipped) and then asks for batches: a cache counts as used
  (``used_cache``) only while no batch was asked for after it was offered.
- Exceptions inside the callbacks (an unreadable image, a Ctrl-C) cannot cross TensorRT's C++
  boundary (TensorRT would print them and end calibration early): every callback catches
  ``BaseException``, records it in ``errors`` (``common.CallbackErrors``) and ends the data;
  the builder re-raises it after the build returns.
- ``complete``: True once every image was fed (or a cache was used, no batch asked for). A
  calibration that did not consume every image never persists anything:
  ``write_calibration_cache`` refuses to write and the builder refuses the engine
  (``IncompleteCalibration``).
- ``calibrator.release()`` frees the device/pinned buffers and the stream.

The calibrator classes are deprecated from TensorRT 10.1 (explicit quantization replaces them);
the builder uses them on TensorRT < 10.1, on request (``int8_mode: implicit``), or for the DLA.
"""

import logging
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

from ...quantization.images import calibration_tensors
from ...trust import read_verified, write_atomic
from .common import CallbackErrors, TensorRTError

LOGGER = logging.getLogger(__name__)


class IncompleteCalibration(TensorRTError):
    """Calibration ended before every image was used; nothing of it may be kept."""


BASES = {'Entropy': 'IInt8EntropyCalibrator2', 'MinMax': 'IInt8MinMaxCalibrator',
         'Legacy': 'IInt8LegacyCalibrator'}


def make_calibrator(trt: Any, algorithm: str, image_paths: Sequence[Path],
                    input_shape: Tuple[int, int, int, int], input_dtype: Any,
                    cache_path: Path, memory: Any, percentile: float = 99.9999,
                    progress: Optional[Callable[[int, int], None]] = None,
                    errors: Optional[CallbackErrors] = None) -> Any:
    """Return a calibrator instance; see the module contract."""
    if algorithm not in BASES:
        raise ValueError(f'unknown calibration algorithm {algorithm!r} (known: '
                         f'{", ".join(BASES)})')
    base = getattr(trt, BASES[algorithm])
    shape = tuple(int(d) for d in input_shape)
    dtype = np.dtype(input_dtype)
    total = len(image_paths)
    errors = errors if errors is not None else CallbackErrors()

    class ImageCalibrator(base):
        """One preprocessed calibration image per batch."""

        def __init__(self) -> None:
            base.__init__(self)
            self.algorithm = algorithm
            self.cache_path = Path(cache_path)
            self.count = 0
            self.total = total
            self.errors = errors
            self.used_cache = False    # offered, and no batch asked for since
            self.refused_write = False
            self._tensors = calibration_tensors(image_paths, shape[2:], dtype.type)
            self._stream = memory.stream_create()
            self._staging = memory.pinned_empty(shape, dtype)
            self._device = memory.malloc(self._staging.nbytes)

        def get_batch_size(self) -> int:
            return 1

        @property
        def complete(self) -> bool:
            """Whether every image was fed (or a calibration cache replaced them)."""
            return self.used_cache or (self.count == self.total and not self.errors.pending)

        def get_batch(self, names: Sequence[str]) -> Optional[list]:
            if self.used_cache:
                self.used_cache = False   # TensorRT rejected the cache it was offered
                LOGGER.warning('TensorRT did not accept the calibration cache %s (another '
                               'TensorRT version?): calibrating with the images',
                               self.cache_path)
            if self.errors.pending:
                return None
            try:
                tensor = next(self._tensors, None)
                if tensor is None:
                    return None
                if len(names) != 1:
                    raise ValueError(f'the network has {len(names)} inputs {list(names)}; '
                                     'calibration feeds one')
                np.copyto(self._staging, tensor)
                memory.htod_async(self._device, self._staging, self._stream)
                memory.synchronize(self._stream)
                self.count += 1
                if progress is not None:
                    progress(self.count, total)
                return [int(self._device)]
            except BaseException as exc:  # noqa: B902 - TensorRT would swallow it
                LOGGER.error('calibration stopped after %d of %d images: %s: %s', self.count,
                             total, type(exc).__name__, exc)
                self.errors.record('get_batch', exc)
                return None

        def read_calibration_cache(self) -> Optional[bytes]:
            try:
                data = read_verified(self.cache_path, 'calibration cache')
                if data is not None:
                    LOGGER.info('using calibration cache %s', self.cache_path)
                    self.used_cache = True
                    return data
            except BaseException as exc:  # noqa: B902 - TensorRT would swallow it
                self.errors.record('read_calibration_cache', exc)
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            try:
                if not self.complete:
                    self.refused_write = True
                    LOGGER.error('calibration used %d of %d images: its cache is not written',
                                 self.count, total)
                    return
                write_atomic(self.cache_path, bytes(cache))   # copy: cache lives during the call
                LOGGER.info('wrote calibration cache %s', self.cache_path)
            except BaseException as exc:  # noqa: B902 - TensorRT would swallow it
                self.errors.record('write_calibration_cache', exc)

        def get_quantile(self) -> float:
            return float(percentile) / 100.0

        def get_regression_cutoff(self) -> float:
            return 1.0

        def read_histogram_cache(self, length: int) -> Optional[bytes]:
            return None

        def write_histogram_cache(self, data: Any, length: int) -> None:
            return None

        def release(self) -> None:
            if self._device:
                memory.free(self._device)
                memory.free_pinned(self._staging)
                memory.stream_destroy(self._stream)
                self._device = 0

    return ImageCalibrator()
