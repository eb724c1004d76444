"""CUDA preprocessing stage: the fused letterbox kernel, writing a device tensor.

Contract: the one of ``stages/preprocess.py`` (identical geometry, pad 114, bilinear with OpenCV
INTER_LINEAR sampling, BGR planes, values 0-255, every encoding of ``image.ENCODINGS``
converted inside the one fused kernel), computed on the GPU by the kernels of
``cuda/kernels.py``; results match ``preprocess_cpu`` within 1.0 everywhere.

- ``CudaPreprocessor(input_hw, dtype, gpu_id)`` is a ``stages.preprocess.Preprocessor``:
  ``run(sources) -> (DeviceTensor, letterboxes)``. Each source's bytes go to the GPU with one
  H2D straight from the frame's own memory (from page-locked memory a true async DMA, the
  frame kept alive until it is done; from pageable memory the driver stages it and returns
  once the frame is read: the fastest measured, benchmarks/results/host_path_*.md); several
  sources are packed into one pinned staging buffer and sent with one H2D. Then ONE kernel
  writes the (B, 3, in_h, in_w) tensor: the single-image fused kernel for B = 1, the batch
  kernel (``blockIdx.z`` = image) otherwise. Nothing waits on the host: the returned
  ``tensors.DeviceTensor`` carries the instance's stream (``stream_handle``), GPU and owner
  (the instance); enqueue the consumer on that stream. The tensor lives in one device buffer
  per instance (grown to the largest batch seen, so its pointer is stable in steady state)
  and is overwritten by the next ``run``.
- One CUDA stream per instance (= per camera); an instance is not meant to be called from two
  threads at once (a call from a new thread makes the GPU current there). ``close()`` frees
  every CUDA resource explicitly (idempotent; also a context manager).
- CUDA through one layer: memory, streams, events and copies through ``cuda.memory.CudaMemory``
  (every return code checked by ``cuda.check``), kernels compiled and launched through
  ``kernels.LoadedKernels``.

The benchmark lab (CUDA graphs, H2D overlap, chunked / parallel staging copies, kernel
variant choice, device-resident source images, ``download``) is a subclass in
``benchmarks/cuda_lab.py``, over the hooks ``_upload`` / ``_h2d`` / ``_launch_one`` /
``_fused_variant`` / ``_consumed`` / ``_staging_moved`` / ``_next_slot_index`` here.
"""

import importlib
import logging
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import kernels as K
from .check import CudaUnavailableError
from .driver import bindings_major, driver_cuda_version, mismatch_reason
from .memory import CudaMemory
from ..errors import InputError
from ..image import Encoding, SourceImage
from ..stages.preprocess import (check_sources, compute_letterbox, LetterboxParams,
                                 Preprocessor)
from ..tensors import DeviceTensor

LOG = logging.getLogger(__name__)
#: Bytes of slack after each staging buffer (the word-load kernels may read up to 3 bytes past
#: the last pixel, inside the aligned 32-bit word that holds it).
_SLACK = 64
_ALIGN = 256


def cuda_unavailable_reason(gpu_id: int = 0) -> Optional[str]:
    """Return why CUDA preprocessing cannot run here, or None when it can. Never raises."""
    try:
        driver = importlib.import_module('cuda.bindings.driver')
        nvrtc = importlib.import_module('cuda.bindings.nvrtc')
        importlib.import_module('cuda.core')
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return f'cuda-python is not importable ({exc})'
    mismatch = mismatch_reason(driver_cuda_version(), bindings_major())
    if mismatch:
        return mismatch
    try:
        status = driver.cuInit(0)[0]
        if int(status) != 0:
            return f'cuInit failed ({status})'
        status, count = driver.cuDeviceGetCount()
        if int(status) != 0 or count <= gpu_id:
            return f'no CUDA device {gpu_id} (found {count if int(status) == 0 else 0})'
    except Exception as exc:  # noqa: BLE001 - no driver library, broken install, ...
        return f'no usable CUDA driver ({type(exc).__name__}: {exc})'
    try:
        status, _major, _minor = nvrtc.nvrtcVersion()
        if int(status) != 0:
            return f'NVRTC unusable ({status})'
    except Exception as exc:  # noqa: BLE001
        return (f'NVRTC not found ({type(exc).__name__}: {exc}); install the NVRTC of the '
                f'bindings\' CUDA major (requirements-cuda12.txt / -cuda13.txt)')
    return None


def cuda_available(gpu_id: int = 0) -> bool:
    """Return True when a CUDA driver, GPU ``gpu_id`` and NVRTC are usable. Never raises."""
    return cuda_unavailable_reason(gpu_id) is None


def host_copy_plan(image: Any) -> Tuple[int, int]:
    """Return ``(pitch, nbytes)`` of the staging copy of a SourceImage (or (H, W, C) array).

    Rows with packed pixels and a small padding (ROS ``step``) are copied as one block that
    keeps the padding (pitch = the row stride); anything else is compacted to a packed pitch.
    """
    pixels = image.pixels if isinstance(image, SourceImage) else image
    h, w, c = pixels.shape[0], pixels.shape[1], pixels.shape[2] if pixels.ndim == 3 else 1
    row = c * w
    stride = pixels.strides[0]
    slack = min(_ALIGN, row // 2)
    packed = pixels.strides[1:] == ((c, 1) if pixels.ndim == 3 else (1,))
    if packed and (h == 1 or row <= stride <= row + slack):
        pitch = row if h == 1 else stride
        return pitch, (h - 1) * pitch + row
    return row, h * row


def _flat_bytes(image: Any, pitch: int, nbytes: int) -> np.ndarray:
    """Return the ``nbytes`` staged bytes of ``image``: a flat view, or a compact copy."""
    pixels = image.pixels if isinstance(image, SourceImage) else image
    c = pixels.shape[2] if pixels.ndim == 3 else 1
    packed = pixels.strides[1:] == ((c, 1) if pixels.ndim == 3 else (1,))
    if packed and (pixels.shape[0] == 1 or pitch == pixels.strides[0]):
        return np.lib.stride_tricks.as_strided(pixels, shape=(nbytes,), strides=(1,),
                                               writeable=False)
    return np.ascontiguousarray(pixels).reshape(-1)


class _Staging:
    """A pinned host buffer and a device buffer of the same capacity, plus their events."""

    def __init__(self) -> None:
        self.capacity = 0
        self.host_ptr = 0
        self.host: Optional[np.ndarray] = None
        self.dev_ptr = 0
        self.copied: Any = None     # event: the H2D into ``dev_ptr`` is done
        self.consumed: Any = None   # event: the kernel reading ``dev_ptr`` is done (lab)
        self.used = False
        self.keep: Any = None       # the frame a direct H2D reads, until ``copied``


class CudaPreprocessor(Preprocessor):
    """Letterbox preprocessing on a CUDA GPU; see the module docstring for the contract.

    ``kernels``: the ``KernelSet`` to compile (the runtime one; the benchmark lab passes its
    variants).
    """

    name = 'cuda'
    writes_device_tensors = True

    def __init__(self, input_hw: Tuple[int, int], dtype: type = np.float32, gpu_id: int = 0,
                 kernels: K.KernelSet = K.RUNTIME_KERNELS) -> None:
        super().__init__(input_hw, dtype)
        K.dtype_suffix(self.dtype)  # raises ValueError for dtypes other than float32/16
        self.kernels = kernels
        self.gpu_id = int(gpu_id)
        self._closed = True
        reason = cuda_unavailable_reason(self.gpu_id)
        if reason is not None:
            raise CudaUnavailableError(f'CUDA preprocessing is unavailable: {reason}')
        self._mem: Optional[CudaMemory] = None
        self._gpu: Optional[K.LoadedKernels] = None
        self._streams: List[int] = []
        self._device_ptrs: List[int] = []
        self._host_arrays: Dict[int, np.ndarray] = {}
        self._events: List[Any] = []
        self._prepared: Dict[tuple, tuple] = {}
        self._batch: Dict[str, Any] = {}
        self.stream_handle = 0
        self._closed = False
        try:
            self._gpu = K.LoadedKernels(kernels, self.gpu_id)
            self.arch = self._gpu.arch
            self._mem = CudaMemory(self.gpu_id)
            self._thread = threading.get_ident()
            self.stream_handle = self._new_stream()
            self._gpu.stream(self.stream_handle)   # wrapped now, never inside a graph capture
            in_h, in_w = self.input_hw
            self.output_nbytes = 3 * in_h * in_w * self.dtype.itemsize
            self._out_ptr = self._alloc_device(self.output_nbytes)
            self._out_images = 1
            self._slots = [self._new_slot()]
        except BaseException:
            self.close()
            raise
        LOG.debug('CudaPreprocessor on %s (%s): %s, %s, kernels %s', self._gpu.device_name,
                  self.arch, self.input_hw, self.dtype, kernels.name)

    # ---- the Preprocessor interface ----
    def run(self, sources: Sequence[SourceImage], out: Optional[DeviceTensor] = None
            ) -> Tuple[DeviceTensor, List[LetterboxParams]]:
        """Letterbox ``sources`` into the instance's device tensor; see the module contract.

        ``out``: a device tensor to write instead (a backend's static input, e.g. the one a
        captured CUDA graph reads), (B, 3, H, W) 'NCHW' or (B, H, W, 3) 'NHWC' of this
        instance's dtype on this GPU; NHWC goes through the batch kernel (any B).
        """
        sources = check_sources(sources)
        self._ensure_open()
        count = len(sources)
        layout = 'NCHW'
        if out is None:
            dst = self._output(count)
        else:
            dst, layout = self._check_out(out, count), out.layout
        if count == 1 and layout == 'NCHW':
            letterboxes = [self._enqueue_one(sources[0], dst)]
        else:
            letterboxes = self._enqueue_batch(sources, dst, layout)
        shape = ((count, 3) + self.input_hw if layout == 'NCHW'
                 else (count,) + self.input_hw + (3,))
        tensor = DeviceTensor(dst, shape, self.dtype, layout, self.stream_handle, self.gpu_id,
                              owner=self if out is None else out.owner)
        return tensor, letterboxes

    def _check_out(self, out: DeviceTensor, count: int) -> int:
        """Return ``out``'s pointer, or raise InputError unless it fits ``count`` images."""
        want = ((count, 3) + self.input_hw if out.layout == 'NCHW'
                else (count,) + self.input_hw + (3,))
        if not isinstance(out, DeviceTensor) or tuple(out.shape) != want or \
                out.dtype != self.dtype or out.device_id != self.gpu_id:
            raise InputError(f'out must be a {want} {self.dtype} {out.layout} device tensor on '
                             f'GPU {self.gpu_id}, got {out!r}')
        return int(out.ptr)

    def synchronize(self) -> None:
        """Wait until everything enqueued on the instance's streams has finished."""
        if self._closed or self._mem is None:
            return
        for stream in self._streams:
            self._mem.synchronize(stream)

    @property
    def closed(self) -> bool:
        """Whether close() has run."""
        return self._closed

    # ---- resources ----
    def _new_stream(self) -> int:
        stream = self._mem.stream_create()
        self._streams.append(stream)
        return stream

    def _new_event(self) -> Any:
        event = self._mem.event_create()
        self._events.append(event)
        return event

    def _new_slot(self) -> _Staging:
        slot = _Staging()
        slot.copied = self._new_event()
        slot.consumed = self._new_event()
        return slot

    def _alloc_device(self, nbytes: int) -> int:
        ptr = int(self._mem.malloc(int(nbytes)))
        self._device_ptrs.append(ptr)
        return ptr

    def _alloc_host(self, nbytes: int) -> Tuple[int, np.ndarray]:
        array = self._mem.pinned_empty((int(nbytes),), np.uint8)
        ptr = int(array.ctypes.data)
        self._host_arrays[ptr] = array
        return ptr, array

    def _free_device(self, ptr: int) -> None:
        if ptr in self._device_ptrs:
            self._device_ptrs.remove(ptr)
            self._mem.free(ptr)

    def _free_host(self, ptr: int) -> None:
        array = self._host_arrays.pop(ptr, None)
        if array is not None:
            self._mem.free_pinned(array)

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError('CudaPreprocessor is closed')
        if threading.get_ident() != self._thread:
            self._gpu.activate()
            self._mem.activate()
            self._thread = threading.get_ident()

    def _output(self, count: int) -> int:
        """Return the device buffer for ``count`` images (grown on demand)."""
        if self._out_images < count:
            self.synchronize()
            self._free_device(self._out_ptr)
            self._out_ptr = self._alloc_device(count * self.output_nbytes)
            self._out_images = count
        return self._out_ptr

    def _reserve(self, slot: _Staging, nbytes: int) -> None:
        """Grow ``slot`` to hold ``nbytes`` (waits for the streams before freeing old memory)."""
        if slot.capacity >= nbytes:
            return
        self.synchronize()
        self._staging_moved()
        if slot.capacity:
            self._free_host(slot.host_ptr)
            self._free_device(slot.dev_ptr)
        capacity = -(-(nbytes + _SLACK) // _ALIGN) * _ALIGN
        slot.host_ptr, slot.host = self._alloc_host(capacity)
        slot.dev_ptr = self._alloc_device(capacity)
        slot.capacity = capacity
        slot.used = False

    def _take_slot(self, nbytes: int, index: Optional[int] = None) -> _Staging:
        """Return staging slot ``index`` (default: the next one), grown, its last H2D done."""
        slot = self._slots[self._next_slot_index() if index is None else index]
        self._reserve(slot, nbytes)
        if slot.used:  # the previous H2D out of this slot's source must have finished
            self._mem.event_synchronize(slot.copied)
        slot.used = True
        slot.keep = None
        return slot

    # ---- hooks (the benchmark lab overrides them) ----
    def _next_slot_index(self) -> int:
        """Index of the staging slot the next single frame uses (one slot here)."""
        return 0

    def _staging_moved(self) -> None:
        """Do nothing here (hook): the streams are idle, a staging buffer is reallocated next."""

    def _h2d(self, slot: _Staging, host_ptr: int, nbytes: int) -> None:
        """Queue the H2D of ``nbytes`` at ``host_ptr`` into ``slot.dev_ptr``; record ``copied``."""
        self._mem.copy_htod_async(slot.dev_ptr, host_ptr, nbytes, self.stream_handle)
        self._mem.event_record(slot.copied, self.stream_handle)

    def _consumed(self, slot: _Staging) -> None:
        """Do nothing here (hook): the kernel reading ``slot.dev_ptr`` was just queued."""

    def _upload(self, source: SourceImage) -> Tuple[_Staging, int]:
        """Send one frame's bytes to a staging slot; return (slot, row pitch)."""
        pitch, nbytes = host_copy_plan(source)
        slot = self._take_slot(nbytes)
        flat = _flat_bytes(source, pitch, nbytes)
        slot.keep = flat   # page-locked frames: alive until the DMA is done
        self._h2d(slot, int(flat.ctypes.data), nbytes)
        return slot, pitch

    def _fused_variant(self, lb: LetterboxParams, src_ptr: int, dst_ptr: int
                       ) -> K.FusedVariant:
        """Return the bgr8 / rgb8 fused variant for this launch (the default where it fits)."""
        return K.choose_variant(self.dtype, lb.src_w, src_ptr, lb.in_w, dst_ptr, 'auto',
                                lb.src_w / lb.resized_w, self.kernels)

    def _launch_one(self, src_ptr: int, pitch: int, lb: LetterboxParams,
                    encoding: Encoding, dst_ptr: int) -> str:
        """Launch the fused kernel for one source in ``encoding``; return the variant name.

        bgr8 / rgb8 take the fused variant of ``_fused_variant``; every other encoding
        ``fused_fmt_*`` (the conversion inside the taps of the same single pass). The kernel,
        its launch configuration and packed arguments are cached per (pointers, geometry,
        encoding), so a camera's steady-state call only launches.
        """
        key = (src_ptr, pitch, lb, encoding.name, dst_ptr)
        prepared = self._prepared.get(key)
        if prepared is None:
            if len(self._prepared) >= 256:
                self._prepared.clear()
            if encoding.packed_bgr:
                chosen = self._fused_variant(lb, src_ptr, dst_ptr)
                name, kernel = chosen.name, chosen.kernel_name(self.dtype)
                geometry = K.launch_geometry(lb.in_w, lb.in_h, chosen.pixels_per_thread,
                                             rows_per_thread=chosen.rows_per_thread)
                args = K.fused_args(src_ptr, pitch, dst_ptr, lb, encoding.swap_rb)
            else:
                name = f'fmt-{encoding.name}'
                kernel = f'fused_fmt_{K.dtype_suffix(self.dtype)}'
                geometry = K.launch_geometry(lb.in_w, lb.in_h)
                args = K.fused_args(src_ptr, pitch, dst_ptr, lb, False, encoding.channels) + (
                    np.int32(encoding.kernel_format),)
            prepared = self._prepared[key] = (name, self._gpu.prepare(kernel, geometry), args)
        self._gpu.launch_prepared(prepared[1], self.stream_handle, prepared[2])
        return prepared[0]

    # ---- one image, a batch ----
    def _enqueue_one(self, source: SourceImage, dst: int) -> LetterboxParams:
        """Upload one source and launch the single-image kernel writing ``dst``."""
        in_h, in_w = self.input_hw
        lb = compute_letterbox(source.height, source.width, in_h, in_w)
        slot, pitch = self._upload(source)
        self._launch_one(slot.dev_ptr, pitch, lb, source.encoding, dst)
        self._consumed(slot)
        return lb

    def _enqueue_batch(self, sources: Sequence[SourceImage], dst: int, layout: str = 'NCHW'
                       ) -> List[LetterboxParams]:
        """Stage the sources into one pinned buffer, one H2D, ONE batch kernel into ``dst``.

        Image i goes to byte offset i * ``output_nbytes`` of ``dst``, in ``layout`` (NHWC: the
        ``fused_batch_nhwc_*`` kernel, a pixel's three values side by side).
        """
        slot = self._slots[0]
        keys = tuple((s.pixels.shape, s.pixels.strides, s.encoding.name) for s in sources)
        key = (dst, slot.dev_ptr, keys)   # the staging moves when it grows
        cached = self._batch.get('prepared')
        if cached is None or cached[0] != key:   # new geometry: plan, pack, upload the table
            cached = self._batch['prepared'] = (key,) + self._plan_batch(sources, dst)
        _, plans, letterboxes, total, geometry = cached
        slot = self._take_slot(total, 0)
        for source, (offset, pitch, nbytes) in zip(sources, plans):
            np.copyto(slot.host[offset:offset + nbytes], _flat_bytes(source, pitch, nbytes))
        self._h2d(slot, slot.host_ptr, total)
        in_h, in_w = self.input_hw
        kernel = 'fused_batch_nhwc_' if layout == 'NHWC' else 'fused_batch_'
        self._gpu.launch(kernel + K.dtype_suffix(self.dtype), geometry,
                         self.stream_handle, self._batch['table_dev'], np.int32(in_w),
                         np.int32(in_h))
        self._consumed(slot)
        return list(letterboxes)

    def _plan_batch(self, sources: Sequence[SourceImage], dst: int) -> tuple:
        """Lay out the staging buffer, pack and upload the descriptor table of a batch."""
        in_h, in_w = self.input_hw
        plans: List[Tuple[int, int, int]] = []
        total = 0
        for source in sources:
            pitch, nbytes = host_copy_plan(source)
            plans.append((total, pitch, nbytes))
            total += -(-(nbytes + _SLACK) // _ALIGN) * _ALIGN
        slot = self._slots[0]
        self._reserve(slot, total)
        table = np.zeros(len(sources), K.BATCH_DESC_DTYPE)
        letterboxes = []
        for i, (source, (offset, pitch, _)) in enumerate(zip(sources, plans)):
            lb = compute_letterbox(source.height, source.width, in_h, in_w)
            K.pack_batch_descriptor(table[i], slot.dev_ptr + offset, pitch,
                                    dst + i * self.output_nbytes, lb, source.encoding)
            letterboxes.append(lb)
        self._upload_table(table)
        geometry = K.launch_geometry(in_w, in_h, 1, len(sources))
        return plans, tuple(letterboxes), total, geometry

    def _upload_table(self, table: np.ndarray) -> None:
        """Send the batch descriptor table to the device unless it is unchanged."""
        cached = self._batch.get('table')
        if cached is not None and cached.shape == table.shape and np.array_equal(cached, table):
            return
        nbytes = table.nbytes
        if self._batch.get('table_capacity', 0) < nbytes:
            self.synchronize()
            if 'table_host_ptr' in self._batch:
                self._free_host(self._batch.pop('table_host_ptr'))
            if 'table_dev' in self._batch:
                self._free_device(self._batch.pop('table_dev'))
            capacity = -(-nbytes // _ALIGN) * _ALIGN
            self._batch['table_host_ptr'], self._batch['table_host'] = self._alloc_host(capacity)
            self._batch['table_dev'] = self._alloc_device(capacity)
            self._batch['table_capacity'] = capacity
            self._batch['table_event'] = self._new_event()
        else:  # the previous upload must be done before its pinned source is rewritten
            self._mem.event_synchronize(self._batch['table_event'])
        self._batch['table_host'][:nbytes] = table.view(np.uint8).reshape(-1)
        self._mem.copy_htod_async(self._batch['table_dev'], self._batch['table_host_ptr'],
                                  nbytes, self.stream_handle)
        self._mem.event_record(self._batch['table_event'], self.stream_handle)
        self._batch['table'] = table.copy()

    # ---- lifetime ----
    def _release_extra(self, attempt: Any) -> None:
        """Free what a subclass holds beyond the buffers, events and streams (lab)."""

    def close(self) -> None:
        """Wait for the streams, then free buffers, events and streams. Idempotent."""
        if self._closed:
            return
        errors: List[BaseException] = []

        def attempt(fn: Any, *args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - free the rest, re-raise the first below
                errors.append(exc)

        mem = self._mem
        if mem is not None:
            if getattr(self, '_thread', None) not in (None, threading.get_ident()):
                attempt(mem.activate)
            attempt(self.synchronize)
            self._release_extra(attempt)
            for ptr in list(self._device_ptrs):
                attempt(self._free_device, ptr)
            for ptr in list(self._host_arrays):
                attempt(self._free_host, ptr)
            for event in self._events:
                attempt(mem.event_destroy, event)
            self._events = []
            for stream in self._streams:
                if self._gpu is not None:
                    self._gpu.forget_stream(stream)
                attempt(mem.stream_destroy, stream)
            self._streams = []
            attempt(mem.close)
        self._closed = True
        if errors:
            LOG.warning('CudaPreprocessor.close: %d error(s); first: %s', len(errors), errors[0])
            raise errors[0]

    def __enter__(self) -> 'CudaPreprocessor':
        return self

    def __del__(self) -> None:  # a safety net only: call close() explicitly
        if not getattr(self, '_closed', True):
            LOG.warning('CudaPreprocessor was not closed; closing it in __del__')
            try:
                self.close()
            except Exception:  # noqa: BLE001 - interpreter shutdown may have torn CUDA down
                pass
