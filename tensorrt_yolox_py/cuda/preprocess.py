"""CUDA preprocessing stage: the fused letterbox kernel and a GPU-resident path.

Contract: the one of ``stages/preprocess.py`` (identical geometry, pad 114, bilinear with OpenCV
INTER_LINEAR sampling, BGR planes, values 0-255, every encoding of ``image.ENCODINGS``
converted inside the one fused kernel), computed on the GPU by the kernels of
``cuda/kernels.py``; results match ``preprocess_cpu`` within 1.0 everywhere.

- ``CudaPreprocessor(input_hw, dtype, gpu_id)(image, encoding)`` -> ``(tensor, lb)``:
  the CpuPreprocessor interface; ``tensor`` is a (1, 3, in_h, in_w) float32/float16 host array
  (pinned memory, reused by the next call). H2D, kernel and D2H run on the instance's stream.
- ``enqueue(image, encoding=None, dst_ptr=None) -> LetterboxParams``: the GPU-resident path.
  ``image`` is a ``SourceImage`` (or an array + encoding); its bytes go to the GPU by
  ``host_copy``: 'direct' (the default) = one H2D straight from the frame's own memory (from
  page-locked memory a true async DMA, the frame kept alive until it is done; from pageable
  memory the driver stages it and returns once the frame is read, the fastest measured,
  benchmarks/results/host_path_*.md); 'single' = one memcpy into pinned staging then one H2D;
  'pipelined' = chunks, each sent while the next is copied; 'parallel' = the chunks copied by
  ``copy_threads`` threads, each sent as soon as it is there. Then the kernel writes the
  (3, in_h, in_w) tensor into ``dst_ptr`` (e.g. the engine's input binding) or the instance's
  own device buffer ``device_ptr``; nothing waits on the host. Enqueue inference on
  ``stream_handle`` (an int, for ``execute_async_v3``) after it. An image already in device
  memory (``DeviceImage`` or any ``__cuda_array_interface__`` object of shape (H, W, C) uint8)
  skips the H2D copy.
- ``enqueue_batch(images, encodings, dst_ptr=None)``: several cameras in one launch, writing a
  (N, 3, in_h, in_w) batch.
- ``kernels``: the ``KernelSet`` compiled (the runtime one; benchmarks pass their variants).
- One CUDA stream per instance (= per camera); an instance is not meant to be called from two
  threads at once. ``close()`` frees every CUDA resource explicitly (idempotent; also a
  context manager).
"""

import importlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import kernels as K
from .check import cuda_call, CudaError, CudaUnavailableError
from .driver import bindings_major, driver_cuda_version, mismatch_reason
from .memory import CudaMemory
from .._lazy import require
from ..errors import InputError
from ..image import as_source, encoding_of, Encoding, MAX_SOURCE_PIXELS, SourceImage
from ..stages.preprocess import compute_letterbox, LetterboxParams

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


@dataclass(frozen=True)
class DeviceImage:
    """An (height, width) image in ``encoding`` already in device memory; rows ``pitch`` apart."""

    ptr: int
    height: int
    width: int
    pitch: int = 0
    encoding: str = 'bgr8'

    @property
    def row_pitch(self) -> int:
        """Bytes between row starts (a packed row when ``pitch`` is 0)."""
        return self.pitch or encoding_of(self.encoding).channels * self.width


def as_device_image(obj: Any, encoding: Optional[str] = None) -> DeviceImage:
    """Return ``obj`` as a DeviceImage (a DeviceImage or a ``__cuda_array_interface__`` object).

    Raises InputError for anything that is not an (H, W, C) uint8 image with packed pixels, C
    the channels of ``encoding`` (default: the DeviceImage's own, else bgr8).
    """
    if isinstance(obj, DeviceImage):
        image = obj if encoding is None else DeviceImage(obj.ptr, obj.height, obj.width,
                                                         obj.pitch, encoding)
    else:
        cai = getattr(obj, '__cuda_array_interface__', None)
        if cai is None:
            raise InputError(f'not a device image: {type(obj).__name__}')
        enc = encoding_of(encoding or 'bgr8')
        shape = tuple(cai['shape'])
        if len(shape) == 2 and enc.channels == 1:
            shape = shape + (1,)
        if cai['typestr'] not in ('|u1', '<u1', '>u1') or len(shape) != 3 or \
                shape[2] != enc.channels:
            raise InputError(f"{enc.name} device image must be (H, W, {enc.channels}) uint8, "
                             f"got {tuple(cai['shape'])} {cai['typestr']}")
        strides = cai.get('strides')
        if strides is not None and len(strides) == 3 and \
                tuple(strides[1:]) != (enc.channels, 1):
            raise InputError(f'device image pixels must be packed (strides (.., '
                             f'{enc.channels}, 1)), got {strides}')
        pitch = int(strides[0]) if strides is not None else enc.channels * shape[1]
        image = DeviceImage(int(cai['data'][0]), int(shape[0]), int(shape[1]), pitch, enc.name)
    enc = encoding_of(image.encoding)
    if image.height < 1 or image.width < 1:
        raise InputError(f'device image is empty: {image.width}x{image.height}')
    if image.height * image.width > MAX_SOURCE_PIXELS:
        raise InputError(f'image {image.width}x{image.height} exceeds the largest accepted '
                         f'size ({MAX_SOURCE_PIXELS} pixels)')
    if image.width % enc.pixel_align:
        raise InputError(f'{enc.name} needs an even width, got {image.width}')
    if image.row_pitch < enc.channels * image.width:
        raise InputError(f'row pitch {image.row_pitch} < {enc.channels} * width '
                         f'{enc.channels * image.width}')
    if not image.ptr:
        raise InputError('device image pointer is null')
    return image


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


#: Host staging strategies (see the module contract); 'auto' = 'direct', or 'single' with
#: use_graph (a captured graph replays one H2D out of a fixed pinned buffer).
HOST_COPY_MODES = ('auto', 'direct', 'single', 'pipelined', 'parallel')
#: Bytes per chunk of the 'pipelined' / 'parallel' staging (whole rows are not required).
CHUNK_BYTES = 1 << 20


class _Staging:
    """A pinned host buffer and a device buffer of the same capacity, plus their events."""

    def __init__(self) -> None:
        self.capacity = 0
        self.host_ptr = 0
        self.host: Optional[np.ndarray] = None
        self.dev_ptr = 0
        self.copied = None      # event: the H2D out of ``host`` is done
        self.consumed = None    # event: the kernel reading ``dev_ptr`` is done
        self.used = False
        self.keep: Any = None   # the frame a 'direct' H2D reads, until ``copied``


class CudaPreprocessor:
    """Letterbox preprocessing on a CUDA GPU; see the module docstring for the contract.

    ``variant`` picks the bgr8 / rgb8 fused kernel variant ('auto' = the default 'c1'; 'w1',
    'b1'; a benchmark ``kernels`` set adds its own, see ``kernels.py``).
    ``use_graph`` replays H2D + kernel as a cached CUDA graph (one launch call).
    ``overlap_h2d`` copies on a second stream with two staging slots, so the next frame's H2D
    overlaps this frame's kernel and inference.
    ``host_copy`` / ``copy_threads``: how a host image reaches the pinned staging buffer
    (``HOST_COPY_MODES``, see the module contract).
    """

    #: ``enqueue()`` writes the tensor to a device buffer (``device_ptr``) on ``stream_handle``.
    device_output = True

    name = 'cuda'

    def __init__(self, input_hw: Tuple[int, int], dtype: type = np.float32, gpu_id: int = 0,
                 variant: str = 'auto', use_graph: bool = False, overlap_h2d: bool = False,
                 kernels: K.KernelSet = K.RUNTIME_KERNELS, host_copy: str = 'auto',
                 copy_threads: int = 4) -> None:
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        if min(self.input_hw) < 1:
            raise InputError(f'input size must be positive, got {self.input_hw}')
        self.dtype = np.dtype(dtype)
        K.dtype_suffix(self.dtype)  # raises ValueError for dtypes other than float32/16
        self.kernels = kernels
        known = ['auto'] + list(kernels.variant_names(self.dtype))
        if variant not in known:
            raise ValueError(f"unknown fused variant '{variant}' for {self.dtype} "
                             f"(known: {', '.join(known)})")
        if host_copy not in HOST_COPY_MODES:
            raise ValueError(f"host_copy must be one of {', '.join(HOST_COPY_MODES)}, got "
                             f'{host_copy!r}')
        self.gpu_id = int(gpu_id)
        self.variant = variant
        self.use_graph = bool(use_graph)
        self.overlap_h2d = bool(overlap_h2d)
        if host_copy == 'auto':
            host_copy = 'single' if use_graph else 'direct'
        self.host_copy = host_copy
        self.copy_threads = max(1, int(copy_threads))
        self._pool: Any = None
        if self.use_graph and self.overlap_h2d:
            raise ValueError('use_graph and overlap_h2d cannot be combined')
        if self.use_graph and host_copy != 'single':
            raise ValueError("use_graph needs host_copy 'single' (one H2D per frame)")
        self._closed = True
        reason = cuda_unavailable_reason(self.gpu_id)
        if reason is not None:
            raise CudaUnavailableError(f'CUDA preprocessing is unavailable: {reason}')
        self._core = require('cuda.core', 'CUDA preprocessing', K.INSTALL_HINT)
        self._drv = require('cuda.bindings.driver', 'CUDA preprocessing', K.INSTALL_HINT)
        self._device_ptrs: List[int] = []
        self._host_ptrs: List[int] = []
        self._host_arrays: Dict[int, np.ndarray] = {}
        self._events: List[Any] = []
        self._graphs: Dict[tuple, Tuple[Any, Any]] = {}
        self._streams: List[Any] = []
        self._kernels: Dict[str, Any] = {}
        self._configs: Dict[tuple, Any] = {}
        self._prepared: Dict[tuple, tuple] = {}
        self._closed = False
        try:
            self.device = self._core.Device(self.gpu_id)
            self.device.set_current()
            self._mem = CudaMemory(self.gpu_id)     # the one memory layer (cuda.memory)
            self._thread = threading.get_ident()
            self.arch = f'sm_{self.device.arch}'
            self._module = kernels.compile(self.arch)
            options = self._core.StreamOptions(nonblocking=True)
            self.stream = self.device.create_stream(options=options)
            self._streams.append(self.stream)
            self.stream_handle = int(self.stream.handle)
            if self.overlap_h2d:
                self._copy_stream = self.device.create_stream(options=options)
                self._streams.append(self._copy_stream)
            else:
                self._copy_stream = self.stream
            in_h, in_w = self.input_hw
            self.output_nbytes = 3 * in_h * in_w * self.dtype.itemsize
            self.device_ptr = self._alloc_device(self.output_nbytes)
            host_ptr, host = self._alloc_host(self.output_nbytes)
            self._host_out = host.view(self.dtype).reshape(1, 3, in_h, in_w)
            self._host_out_ptr = host_ptr
            self._slots = [_Staging() for _ in range(2 if self.overlap_h2d else 1)]
            for slot in self._slots:
                slot.copied = self._new_event()
                slot.consumed = self._new_event()
            self._next_slot = 0
            self._batch: Dict[str, Any] = {}
        except BaseException:
            self.close()
            raise
        LOG.debug('CudaPreprocessor on %s (%s): %s, %s, kernels %s, host copy %s',
                  self.device.name, self.arch, self.input_hw, self.dtype, kernels.name,
                  host_copy)

    # ---- resources ----
    def alloc_device(self, nbytes: int) -> int:
        """Allocate device memory owned by this instance (freed by ``close``)."""
        self._ensure_open()
        return self._alloc_device(nbytes)

    def _alloc_device(self, nbytes: int) -> int:
        ptr = int(self._mem.malloc(int(nbytes)))
        self._device_ptrs.append(ptr)
        return ptr

    def _alloc_host(self, nbytes: int) -> Tuple[int, np.ndarray]:
        array = self._mem.pinned_empty((int(nbytes),), np.uint8)
        ptr = int(array.ctypes.data)
        self._host_ptrs.append(ptr)
        self._host_arrays[ptr] = array
        return ptr, array

    def _free_device(self, ptr: int) -> None:
        if ptr in self._device_ptrs:
            self._device_ptrs.remove(ptr)
            self._mem.free(ptr)

    def _free_host(self, ptr: int) -> None:
        if ptr in self._host_ptrs:
            self._host_ptrs.remove(ptr)
            self._mem.free_pinned(self._host_arrays.pop(ptr))

    def _new_event(self) -> Any:
        flags = self._drv.CUevent_flags.CU_EVENT_DISABLE_TIMING
        event = cuda_call(self._drv.cuEventCreate(flags), 'cuEventCreate')
        self._events.append(event)
        return event

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError('CudaPreprocessor is closed')
        if threading.get_ident() != self._thread:
            self.device.set_current()
            self._thread = threading.get_ident()

    def _reserve(self, slot: _Staging, nbytes: int) -> None:
        """Grow ``slot`` to hold ``nbytes`` (waits for the stream before freeing old memory)."""
        if slot.capacity >= nbytes:
            return
        self.synchronize()
        self._drop_graphs()
        if slot.capacity:
            self._free_host(slot.host_ptr)
            self._free_device(slot.dev_ptr)
        capacity = -(-(nbytes + _SLACK) // _ALIGN) * _ALIGN
        slot.host_ptr, slot.host = self._alloc_host(capacity)
        slot.dev_ptr = self._alloc_device(capacity)
        slot.capacity = capacity

    def _kernel(self, name: str) -> Any:
        kernel = self._kernels.get(name)
        if kernel is None:
            kernel = self._kernels[name] = self._module.get_kernel(name)
        return kernel

    def _config(self, geometry: tuple) -> Any:
        config = self._configs.get(geometry)
        if config is None:
            grid, block = geometry
            config = self._configs[geometry] = self._core.LaunchConfig(grid=grid, block=block)
        return config

    def launch(self, name: str, geometry: tuple, *args: Any) -> None:
        """Launch kernel ``name`` of this instance's kernel set on ``stream``."""
        self._core.launch(self.stream, self._config(geometry), self._kernel(name), *args)

    _launch = launch

    # ---- kernels ----
    def launch_fused(self, src_ptr: int, pitch: int, lb: LetterboxParams, swap_rb: bool,
                     dst_ptr: int, variant: Optional[str] = None) -> str:
        """Launch one bgr8 / rgb8 fused kernel on ``stream``; return the variant name used.

        The kernel, its launch configuration and packed arguments are cached per
        (pointers, geometry, variant), so a camera's steady-state call only launches.
        """
        key = (src_ptr, pitch, lb, swap_rb, dst_ptr, variant)
        prepared = self._prepared.get(key)
        if prepared is None:
            chosen = K.choose_variant(self.dtype, lb.src_w, src_ptr, lb.in_w, dst_ptr,
                                      variant or self.variant, lb.src_w / lb.resized_w,
                                      self.kernels)
            geometry = K.launch_geometry(lb.in_w, lb.in_h, chosen.pixels_per_thread,
                                         rows_per_thread=chosen.rows_per_thread)
            if len(self._prepared) >= 256:
                self._prepared.clear()
            prepared = self._prepared[key] = (
                chosen.name, self._config(geometry), self._kernel(chosen.kernel_name(self.dtype)),
                K.fused_args(src_ptr, pitch, dst_ptr, lb, swap_rb))
        self._core.launch(self.stream, prepared[1], prepared[2], *prepared[3])
        return prepared[0]

    def launch_encoding(self, src_ptr: int, pitch: int, lb: LetterboxParams,
                        encoding: Encoding, dst_ptr: int) -> str:
        """Launch the fused kernel for a source in ``encoding``; return the variant name.

        bgr8 / rgb8 take ``launch_fused``; every other encoding ``fused_fmt_*`` (the conversion
        inside the taps of the same single pass).
        """
        if encoding.packed_bgr:
            return self.launch_fused(src_ptr, pitch, lb, encoding.swap_rb, dst_ptr)
        key = ('fmt', src_ptr, pitch, lb, encoding.name, dst_ptr)
        prepared = self._prepared.get(key)
        if prepared is None:
            if len(self._prepared) >= 256:
                self._prepared.clear()
            args = K.fused_args(src_ptr, pitch, dst_ptr, lb, False, encoding.channels)
            prepared = self._prepared[key] = (
                f'fmt-{encoding.name}', self._config(K.launch_geometry(lb.in_w, lb.in_h)),
                self._kernel(f'fused_fmt_{K.dtype_suffix(self.dtype)}'),
                args + (np.int32(encoding.kernel_format),))
        self._core.launch(self.stream, prepared[1], prepared[2], *prepared[3])
        return prepared[0]

    # ---- staging ----
    def _stage(self, image: SourceImage) -> Tuple[_Staging, int, int, bool]:
        """Copy a host image into the next pinned slot; return (slot, pitch, nbytes, sent).

        ``sent``: the chunked modes have already queued the H2D copies (on the copy stream).
        """
        drv = self._drv
        pitch, nbytes = host_copy_plan(image)
        slot = self._slots[self._next_slot]
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        self._reserve(slot, nbytes)
        if slot.used:  # the previous H2D out of this pinned buffer must have finished
            cuda_call(drv.cuEventSynchronize(slot.copied), 'cuEventSynchronize')
        flat = _flat_bytes(image, pitch, nbytes)
        slot.used = True
        slot.keep = None
        if self.host_copy == 'direct':
            slot.keep = flat         # page-locked frames: alive until the DMA is done
            self._send(slot, int(flat.ctypes.data), nbytes)
            return slot, pitch, nbytes, True
        if self.host_copy == 'single' or nbytes <= CHUNK_BYTES:
            np.copyto(slot.host[:nbytes], flat)
            return slot, pitch, nbytes, False
        self._copy_chunked(slot, flat, nbytes)
        return slot, pitch, nbytes, True

    def _send(self, slot: _Staging, host_ptr: int, nbytes: int) -> None:
        """Queue one H2D of ``nbytes`` at ``host_ptr`` into the slot's device buffer."""
        drv = self._drv
        stream = self._copy_stream.handle
        if self.overlap_h2d:  # don't overwrite the device slot while a kernel still reads it
            cuda_call(drv.cuStreamWaitEvent(stream, slot.consumed, 0), 'cuStreamWaitEvent')
        cuda_call(drv.cuMemcpyHtoDAsync(slot.dev_ptr, host_ptr, nbytes, stream),
                  'cuMemcpyHtoDAsync')
        cuda_call(drv.cuEventRecord(slot.copied, stream), 'cuEventRecord')
        if self.overlap_h2d:
            cuda_call(drv.cuStreamWaitEvent(self.stream.handle, slot.copied, 0),
                      'cuStreamWaitEvent')

    def _copy_chunked(self, slot: _Staging, flat: np.ndarray, nbytes: int) -> None:
        """Stage ``flat`` in chunks, queueing each chunk's H2D as soon as it is in pinned memory.

        'pipelined': this thread copies chunk k + 1 while the DMA engine sends chunk k.
        'parallel': ``copy_threads`` threads copy the chunks (NumPy releases the GIL for large
        copies); the H2D of each is queued, in order, as soon as it is done.
        """
        drv = self._drv
        stream = self._copy_stream.handle
        if self.overlap_h2d:  # don't overwrite the device slot while a kernel still reads it
            cuda_call(drv.cuStreamWaitEvent(stream, slot.consumed, 0), 'cuStreamWaitEvent')
        bounds = [(o, min(o + CHUNK_BYTES, nbytes)) for o in range(0, nbytes, CHUNK_BYTES)]

        def copy(bound: Tuple[int, int]) -> Tuple[int, int]:
            np.copyto(slot.host[bound[0]:bound[1]], flat[bound[0]:bound[1]])
            return bound

        if self.host_copy == 'parallel':
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.copy_threads,
                                                thread_name_prefix='yolox-h2d-copy')
            done = self._pool.map(copy, bounds)
        else:
            done = map(copy, bounds)
        for lo, hi in done:
            cuda_call(drv.cuMemcpyHtoDAsync(slot.dev_ptr + lo, slot.host_ptr + lo, hi - lo,
                                            stream), 'cuMemcpyHtoDAsync')
        cuda_call(drv.cuEventRecord(slot.copied, stream), 'cuEventRecord')
        if self.overlap_h2d:
            cuda_call(drv.cuStreamWaitEvent(self.stream.handle, slot.copied, 0),
                      'cuStreamWaitEvent')

    def _copy_h2d(self, slot: _Staging, nbytes: int, record: bool = True) -> None:
        drv = self._drv
        stream = self._copy_stream.handle
        if self.overlap_h2d:  # don't overwrite the device slot while a kernel still reads it
            cuda_call(drv.cuStreamWaitEvent(stream, slot.consumed, 0), 'cuStreamWaitEvent')
        cuda_call(drv.cuMemcpyHtoDAsync(slot.dev_ptr, slot.host_ptr, nbytes, stream),
                  'cuMemcpyHtoDAsync')
        if record:  # (not inside a graph capture: the caller records after the replay)
            cuda_call(drv.cuEventRecord(slot.copied, stream), 'cuEventRecord')
        if self.overlap_h2d:
            cuda_call(drv.cuStreamWaitEvent(self.stream.handle, slot.copied, 0),
                      'cuStreamWaitEvent')

    # ---- public API ----
    def enqueue(self, image: Any, encoding: Optional[str] = None,
                dst_ptr: Optional[int] = None) -> LetterboxParams:
        """Enqueue preprocessing of ``image`` on ``stream``; return its LetterboxParams.

        ``image``: a SourceImage, a host (H, W, C) uint8 array (with ``encoding``, default
        bgr8), a DeviceImage, or a ``__cuda_array_interface__`` object. The (3, in_h, in_w)
        result goes to ``dst_ptr`` (a device pointer, e.g. the engine's input binding) or to
        ``device_ptr``. Returns without waiting for the GPU.
        """
        self._ensure_open()
        dst = self.device_ptr if dst_ptr is None else int(dst_ptr)
        in_h, in_w = self.input_hw
        if isinstance(image, (np.ndarray, SourceImage)):
            source = as_source(image, encoding)
            enc = source.encoding
            lb = compute_letterbox(source.height, source.width, in_h, in_w)
            slot, pitch, nbytes, sent = self._stage(source)
            if self.use_graph:
                key = ('host', self._slots.index(slot), lb, pitch, nbytes, enc.name, dst)
                self._replay(key, lambda: (self._copy_h2d(slot, nbytes, record=False),
                                           self.launch_encoding(slot.dev_ptr, pitch, lb, enc,
                                                                dst)))
                cuda_call(self._drv.cuEventRecord(slot.copied, self.stream.handle),
                          'cuEventRecord')
                return lb
            if not sent:
                self._copy_h2d(slot, nbytes)
            self.launch_encoding(slot.dev_ptr, pitch, lb, enc, dst)
            if self.overlap_h2d:
                cuda_call(self._drv.cuEventRecord(slot.consumed, self.stream.handle),
                          'cuEventRecord')
            return lb
        dev = as_device_image(image, encoding)
        enc = encoding_of(dev.encoding)
        lb = compute_letterbox(dev.height, dev.width, in_h, in_w)
        if self.use_graph:
            key = ('device', dev, lb, dst)
            self._replay(key, lambda: self.launch_encoding(dev.ptr, dev.row_pitch, lb, enc,
                                                           dst))
        else:
            self.launch_encoding(dev.ptr, dev.row_pitch, lb, enc, dst)
        return lb

    def __call__(self, image: Any, encoding: Optional[str] = None
                 ) -> Tuple[np.ndarray, LetterboxParams]:
        """Preprocess one image to a host (1, 3, in_h, in_w) array (reused by the next call)."""
        lb = self.enqueue(image, encoding)
        drv = self._drv
        cuda_call(drv.cuMemcpyDtoHAsync(self._host_out_ptr, self.device_ptr,
                                        self.output_nbytes, self.stream.handle),
                  'cuMemcpyDtoHAsync')
        self.synchronize()
        return self._host_out, lb

    def enqueue_batch(self, images: Sequence[Any],
                      encodings: Union[None, str, Sequence[Optional[str]]] = None,
                      dst_ptr: Optional[int] = None) -> List[LetterboxParams]:
        """Preprocess several images (cameras) with ONE fused launch into an (N, 3, H, W) batch.

        Host images are staged into one pinned buffer and sent with one H2D copy. ``dst_ptr``
        (or ``batch_device_ptr(N)``) receives image i at byte offset i * ``output_nbytes``.
        """
        self._ensure_open()
        n = len(images)
        if n < 1:
            raise InputError('enqueue_batch needs at least one image')
        if encodings is None or isinstance(encodings, str):
            encodings = [encodings] * n
        if len(encodings) != n:
            raise InputError(f'{n} images but {len(encodings)} encodings')
        in_h, in_w = self.input_hw
        dst = self.batch_device_ptr(n) if dst_ptr is None else int(dst_ptr)
        keys = []
        sources: List[Any] = []
        for image, encoding in zip(images, encodings):
            if isinstance(image, (np.ndarray, SourceImage)):
                source = as_source(image, encoding)
                sources.append(source)
                keys.append(('host', source.pixels.shape, source.pixels.strides,
                             source.encoding.name))
            else:
                dev = as_device_image(image, encoding)
                sources.append(dev)
                keys.append(('device', dev, dev.encoding))
        images = sources
        key = (dst, self._slots[0].dev_ptr, tuple(keys))  # staging moves when it grows
        cached = self._batch.get('prepared')
        if cached is None or cached[0] != key:  # new geometry: plan, pack and upload the table
            cached = self._batch['prepared'] = (key,) + self._plan_batch(images, keys, dst)
        _, plans, lbs, total, geometry = cached
        slot = self._slots[0]
        if total:
            if slot.used:  # the previous H2D out of the pinned buffer must have finished
                cuda_call(self._drv.cuEventSynchronize(slot.copied), 'cuEventSynchronize')
            for image, plan in zip(images, plans):
                if plan is not None:
                    offset, pitch, nbytes = plan
                    np.copyto(slot.host[offset:offset + nbytes],
                              _flat_bytes(image, pitch, nbytes))
            slot.used = True
            self._copy_h2d(slot, total)
        suffix = 'f32' if self.dtype == np.float32 else 'f16'
        in_h, in_w = self.input_hw
        self._launch(f'fused_batch_{suffix}', geometry,
                     self._batch['table_dev'], np.int32(in_w), np.int32(in_h))
        if self.overlap_h2d and total:
            cuda_call(self._drv.cuEventRecord(slot.consumed, self.stream.handle),
                      'cuEventRecord')
        return list(lbs)

    def _plan_batch(self, images: Sequence[Any], keys: List[tuple], dst: int) -> tuple:
        """Lay out the staging buffer, pack and upload the descriptor table of a batch."""
        in_h, in_w = self.input_hw
        plans: List[Optional[Tuple[int, int, int]]] = []
        total = 0
        for image, key in zip(images, keys):
            if key[0] == 'host':
                pitch, nbytes = host_copy_plan(image)
                plans.append((total, pitch, nbytes))
                total += -(-(nbytes + _SLACK) // _ALIGN) * _ALIGN
            else:
                plans.append(None)
        slot = self._slots[0]
        if total:
            self._reserve(slot, total)
        table = np.zeros(len(images), K.BATCH_DESC_DTYPE)
        lbs = []
        for i, (image, key, plan) in enumerate(zip(images, keys, plans)):
            if plan is not None:
                offset, pitch, _ = plan
                src_ptr, h, w = slot.dev_ptr + offset, image.height, image.width
            else:
                dev = key[1]
                src_ptr, pitch, h, w = dev.ptr, dev.row_pitch, dev.height, dev.width
            lb = compute_letterbox(h, w, in_h, in_w)
            K.pack_batch_descriptor(table[i], src_ptr, pitch, dst + i * self.output_nbytes,
                                    lb, encoding_of(key[-1]))
            lbs.append(lb)
        self._upload_table(table)
        geometry = K.launch_geometry(in_w, in_h, 1, len(images))
        return plans, tuple(lbs), total, geometry

    def _upload_table(self, table: np.ndarray) -> None:
        """Send the batch descriptor table to the device unless it is unchanged."""
        drv = self._drv
        cached = self._batch.get('table')
        if cached is not None and cached.shape == table.shape and np.array_equal(cached, table):
            return
        nbytes = table.nbytes
        if self._batch.get('table_capacity', 0) < nbytes:
            self.synchronize()
            for key, free in (('table_host_ptr', self._free_host),
                              ('table_dev', self._free_device)):
                if key in self._batch:
                    free(self._batch.pop(key))
            capacity = -(-nbytes // _ALIGN) * _ALIGN
            self._batch['table_host_ptr'], self._batch['table_host'] = self._alloc_host(capacity)
            self._batch['table_dev'] = self._alloc_device(capacity)
            self._batch['table_capacity'] = capacity
            self._batch['table_event'] = self._new_event()
        else:  # the previous upload must be done before its pinned source is rewritten
            cuda_call(drv.cuEventSynchronize(self._batch['table_event']), 'cuEventSynchronize')
        self._batch['table_host'][:nbytes] = table.view(np.uint8).reshape(-1)
        cuda_call(drv.cuMemcpyHtoDAsync(self._batch['table_dev'], self._batch['table_host_ptr'],
                                        nbytes, self.stream.handle), 'cuMemcpyHtoDAsync')
        cuda_call(drv.cuEventRecord(self._batch['table_event'], self.stream.handle),
                  'cuEventRecord')
        self._batch['table'] = table.copy()

    def batch_device_ptr(self, n: int) -> int:
        """Return the device buffer for an (n, 3, in_h, in_w) batch (grown on demand)."""
        self._ensure_open()
        if self._batch.get('out_n', 0) < n:
            self.synchronize()
            if 'out' in self._batch:
                self._free_device(self._batch.pop('out'))
            self._batch['out'] = self._alloc_device(n * self.output_nbytes)
            self._batch['out_n'] = n
        return self._batch['out']

    def download(self, dst_ptr: Optional[int] = None, n: int = 1) -> np.ndarray:
        """Copy n (3, in_h, in_w) tensors at ``dst_ptr`` (default: device_ptr) to a new array.

        Waits for the stream. For tests and debugging; the pipeline uses ``__call__``.
        """
        self._ensure_open()
        src = self.device_ptr if dst_ptr is None else int(dst_ptr)
        out = np.empty((n, 3) + self.input_hw, self.dtype)
        self.synchronize()
        cuda_call(self._drv.cuMemcpyDtoH(out.ctypes.data, src, out.nbytes), 'cuMemcpyDtoH')
        return out

    # ---- graphs ----
    def _replay(self, key: tuple, record: Any) -> None:
        """Launch the cached CUDA graph for ``key``, capturing ``record()`` on first use."""
        drv = self._drv
        entry = self._graphs.get(key)
        if entry is None:
            stream = self.stream.handle
            mode = drv.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
            cuda_call(drv.cuStreamBeginCapture(stream, mode), 'cuStreamBeginCapture')
            try:
                record()
            finally:
                graph = cuda_call(drv.cuStreamEndCapture(stream), 'cuStreamEndCapture')
            try:
                exec_ = cuda_call(drv.cuGraphInstantiate(graph, 0), 'cuGraphInstantiate')
            except CudaError:
                cuda_call(drv.cuGraphDestroy(graph), 'cuGraphDestroy')
                raise
            entry = self._graphs[key] = (graph, exec_)
        cuda_call(drv.cuGraphLaunch(entry[1], self.stream.handle), 'cuGraphLaunch')

    def _drop_graphs(self) -> None:
        drv = self._drv
        graphs, self._graphs = self._graphs, {}
        for graph, exec_ in graphs.values():
            cuda_call(drv.cuGraphExecDestroy(exec_), 'cuGraphExecDestroy')
            cuda_call(drv.cuGraphDestroy(graph), 'cuGraphDestroy')

    # ---- lifetime ----
    def synchronize(self) -> None:
        """Wait until everything enqueued on the instance's streams has finished."""
        if self._closed:
            return
        for stream in self._streams:
            cuda_call(self._drv.cuStreamSynchronize(stream.handle), 'cuStreamSynchronize')

    @property
    def closed(self) -> bool:
        """Whether close() has run."""
        return self._closed

    def close(self) -> None:
        """Wait for the streams, then free graphs, buffers, events and streams. Idempotent."""
        if self._closed:
            return
        errors: List[BaseException] = []

        def attempt(fn: Any, *args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - free the rest, re-raise the first below
                errors.append(exc)

        pool = getattr(self, '_pool', None)
        if pool is not None:
            pool.shutdown(wait=True)
            self._pool = None
        drv = getattr(self, '_drv', None)
        if drv is not None:
            if getattr(self, '_thread', None) not in (None, threading.get_ident()):
                attempt(self.device.set_current)
            attempt(self.synchronize)
            if self._graphs:
                attempt(self._drop_graphs)
            for ptr in list(self._device_ptrs):
                attempt(self._free_device, ptr)
            for ptr in list(self._host_ptrs):
                attempt(self._free_host, ptr)
            if getattr(self, '_mem', None) is not None:
                attempt(self._mem.close)
            for event in self._events:
                attempt(lambda e: cuda_call(drv.cuEventDestroy(e), 'cuEventDestroy'), event)
            self._events = []
            for stream in getattr(self, '_streams', []):
                attempt(stream.close)
            self._streams = []
        self._closed = True
        if errors:
            LOG.warning('CudaPreprocessor.close: %d error(s); first: %s', len(errors), errors[0])
            raise errors[0]

    def __enter__(self) -> 'CudaPreprocessor':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # a safety net only: call close() explicitly
        if not getattr(self, '_closed', True):
            LOG.warning('CudaPreprocessor was not closed; closing it in __del__')
            try:
                self.close()
            except Exception:  # noqa: BLE001 - interpreter shutdown may have torn CUDA down
                pass
