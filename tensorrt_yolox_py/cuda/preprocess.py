"""CUDA preprocessing stage: the fused letterbox kernel and a GPU-resident path.

Contract: the one of ``stages/preprocess.py`` (identical geometry, pad 114, bilinear with OpenCV
INTER_LINEAR sampling, BGR planes, values 0-255), computed on the GPU by the kernels of
``cuda/kernels.py``; results match ``preprocess_cpu`` within 1.0 everywhere.

- ``CudaPreprocessor(input_hw, dtype, gpu_id, fused)(image, encoding)`` -> ``(tensor, lb)``:
  the CpuPreprocessor interface; ``tensor`` is a (1, 3, in_h, in_w) float32/float16 host array
  (pinned memory, reused by the next call). H2D, kernel and D2H run on the instance's stream.
- ``enqueue(image, encoding, dst_ptr=None) -> LetterboxParams``: the GPU-resident path for the
  TensorRT backend. A host image is copied into a pinned staging buffer, sent with an async H2D
  copy, and the kernel writes the (3, in_h, in_w) tensor into ``dst_ptr`` (e.g. the engine's
  input binding) or the instance's own device buffer ``device_ptr``; nothing waits on the host.
  Enqueue inference on ``stream_handle`` (an int, for ``execute_async_v3``) after it. An image
  already in device memory (``DeviceImage`` or any ``__cuda_array_interface__`` object of shape
  (H, W, 3) uint8) skips the H2D copy.
- ``enqueue_batch(images, encodings, dst_ptr=None)``: several cameras in one launch, writing a
  (N, 3, in_h, in_w) batch.
- One CUDA stream per instance (= per camera); an instance is not meant to be called from two
  threads at once. ``close()`` frees every CUDA resource explicitly (idempotent; also a
  context manager).
"""

import ctypes
import importlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import kernels as K
from .check import cuda_call, CudaError, CudaUnavailableError
from .._lazy import require
from ..errors import InputError
from ..stages.preprocess import (
    compute_letterbox, LetterboxParams, MAX_SOURCE_PIXELS, SUPPORTED_ENCODINGS, validate_image)

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
        return f'NVRTC not found ({type(exc).__name__}: {exc}); pip install nvidia-cuda-nvrtc'
    return None


def cuda_available(gpu_id: int = 0) -> bool:
    """Return True when a CUDA driver, GPU ``gpu_id`` and NVRTC are usable. Never raises."""
    return cuda_unavailable_reason(gpu_id) is None


@dataclass(frozen=True)
class DeviceImage:
    """An (height, width, 3) uint8 image already in device memory; rows ``pitch`` bytes apart."""

    ptr: int
    height: int
    width: int
    pitch: int = 0

    @property
    def row_pitch(self) -> int:
        """Bytes between row starts (3 * width when ``pitch`` is 0)."""
        return self.pitch or 3 * self.width


def as_device_image(obj: Any) -> DeviceImage:
    """Return ``obj`` as a DeviceImage (a DeviceImage or a ``__cuda_array_interface__`` object).

    Raises InputError for anything that is not an (H, W, 3) uint8 image with packed pixels.
    """
    if isinstance(obj, DeviceImage):
        image = obj
    else:
        cai = getattr(obj, '__cuda_array_interface__', None)
        if cai is None:
            raise InputError(f'not a device image: {type(obj).__name__}')
        shape = tuple(cai['shape'])
        if cai['typestr'] not in ('|u1', '<u1', '>u1') or len(shape) != 3 or shape[2] != 3:
            raise InputError(f"device image must be (H, W, 3) uint8, got {shape} "
                             f"{cai['typestr']}")
        strides = cai.get('strides')
        if strides is not None and tuple(strides[1:]) != (3, 1):
            raise InputError(f'device image pixels must be packed (strides (.., 3, 1)), got '
                             f'{strides}')
        pitch = int(strides[0]) if strides is not None else 3 * shape[1]
        image = DeviceImage(int(cai['data'][0]), int(shape[0]), int(shape[1]), pitch)
    if image.height < 1 or image.width < 1:
        raise InputError(f'device image is empty: {image.width}x{image.height}')
    if image.height * image.width > MAX_SOURCE_PIXELS:
        raise InputError(f'image {image.width}x{image.height} exceeds the largest accepted '
                         f'size ({MAX_SOURCE_PIXELS} pixels)')
    if image.row_pitch < 3 * image.width:
        raise InputError(f'row pitch {image.row_pitch} < 3 * width {3 * image.width}')
    if not image.ptr:
        raise InputError('device image pointer is null')
    return image


def host_copy_plan(image: np.ndarray) -> Tuple[int, int]:
    """Return ``(pitch, nbytes)`` of the staging copy of a validated (H, W, 3) uint8 image.

    Rows with packed pixels and a small padding (ROS ``step``) are copied as one block that
    keeps the padding (pitch = the row stride); anything else is compacted to pitch 3 * W.
    """
    h, w = image.shape[:2]
    row = 3 * w
    stride = image.strides[0]
    if image.strides[1:] == (3, 1) and (h == 1 or row <= stride <= row + min(_ALIGN, row // 2)):
        pitch = row if h == 1 else stride
        return pitch, (h - 1) * pitch + row
    return row, h * row


def _flat_bytes(image: np.ndarray, pitch: int, nbytes: int) -> np.ndarray:
    """Return the ``nbytes`` staged bytes of ``image``: a flat view, or a compact copy."""
    packed = image.strides[1:] == (3, 1)
    if packed and (image.shape[0] == 1 or pitch == image.strides[0]):
        return np.lib.stride_tricks.as_strided(image, shape=(nbytes,), strides=(1,),
                                               writeable=False)
    return np.ascontiguousarray(image).reshape(-1)


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


class CudaPreprocessor:
    """Letterbox preprocessing on a CUDA GPU; see the module docstring for the contract.

    ``fused`` selects the single fused kernel (default) or the seed's unfused 4-kernel chain.
    ``variant`` picks a fused kernel variant ('auto' = the default 'c1'; 'b1', 'w1', 'c1',
    'w1r2', 'w1r4', 's1'; 'b4'/'w4' for float32, 'b8'/'w8' for float16; see ``kernels.py``).
    ``use_graph`` replays H2D + kernel as a cached CUDA graph (one launch call).
    ``overlap_h2d`` copies on a second stream with two staging slots, so the next frame's H2D
    overlaps this frame's kernel and inference.
    """

    #: ``enqueue()`` writes the tensor to a device buffer (``device_ptr``) on ``stream_handle``.
    device_output = True

    name = 'cuda'

    def __init__(self, input_hw: Tuple[int, int], dtype: type = np.float32, gpu_id: int = 0,
                 fused: bool = True, variant: str = 'auto', use_graph: bool = False,
                 overlap_h2d: bool = False) -> None:
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        if min(self.input_hw) < 1:
            raise InputError(f'input size must be positive, got {self.input_hw}')
        self.dtype = np.dtype(dtype)
        K.dtype_suffix(self.dtype)  # raises ValueError for dtypes other than float32/16
        known = ['auto'] + [v.name for v in K.FUSED_VARIANTS[self.dtype.name]]
        if variant not in known:
            raise ValueError(f"unknown fused variant '{variant}' for {self.dtype} "
                             f"(known: {', '.join(known)})")
        self.gpu_id = int(gpu_id)
        self.fused = bool(fused)
        self.variant = variant
        self.use_graph = bool(use_graph)
        self.overlap_h2d = bool(overlap_h2d)
        if self.use_graph and self.overlap_h2d:
            raise ValueError('use_graph and overlap_h2d cannot be combined')
        self._closed = True
        reason = cuda_unavailable_reason(self.gpu_id)
        if reason is not None:
            raise CudaUnavailableError(f'CUDA preprocessing is unavailable: {reason}')
        self._core = require('cuda.core', 'CUDA preprocessing', K.INSTALL_HINT)
        self._drv = require('cuda.bindings.driver', 'CUDA preprocessing', K.INSTALL_HINT)
        self._device_ptrs: List[int] = []
        self._host_ptrs: List[int] = []
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
            self._thread = threading.get_ident()
            self.arch = f'sm_{self.device.arch}'
            self._module = K.compile_kernels(self.arch)
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
            self._unfused_bufs: Optional[Tuple[int, int, int]] = None
            self._batch: Dict[str, Any] = {}
        except BaseException:
            self.close()
            raise
        LOG.debug('CudaPreprocessor on %s (%s): %s, %s, fused=%s', self.device.name, self.arch,
                  self.input_hw, self.dtype, self.fused)

    # ---- resources ----
    def _alloc_device(self, nbytes: int) -> int:
        ptr = int(cuda_call(self._drv.cuMemAlloc(int(nbytes)), 'cuMemAlloc'))
        self._device_ptrs.append(ptr)
        return ptr

    def _alloc_host(self, nbytes: int) -> Tuple[int, np.ndarray]:
        ptr = int(cuda_call(self._drv.cuMemHostAlloc(int(nbytes), 0), 'cuMemHostAlloc'))
        self._host_ptrs.append(ptr)
        array = np.ctypeslib.as_array((ctypes.c_uint8 * int(nbytes)).from_address(ptr))
        return ptr, array

    def _free_device(self, ptr: int) -> None:
        if ptr in self._device_ptrs:
            self._device_ptrs.remove(ptr)
            cuda_call(self._drv.cuMemFree(ptr), 'cuMemFree')

    def _free_host(self, ptr: int) -> None:
        if ptr in self._host_ptrs:
            self._host_ptrs.remove(ptr)
            cuda_call(self._drv.cuMemFreeHost(ptr), 'cuMemFreeHost')

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

    def _launch(self, name: str, geometry: tuple, *args: Any) -> None:
        self._core.launch(self.stream, self._config(geometry), self._kernel(name), *args)

    # ---- kernels ----
    def launch_fused(self, src_ptr: int, pitch: int, lb: LetterboxParams, swap_rb: bool,
                     dst_ptr: int, variant: Optional[str] = None) -> str:
        """Launch one fused kernel on ``stream``; return the variant name used.

        The kernel, its launch configuration and packed arguments are cached per
        (pointers, geometry, variant), so a camera's steady-state call only launches.
        """
        key = (src_ptr, pitch, lb, swap_rb, dst_ptr, variant)
        prepared = self._prepared.get(key)
        if prepared is None:
            chosen = K.choose_variant(self.dtype, lb.src_w, src_ptr, lb.in_w, dst_ptr,
                                      variant or self.variant, lb.src_w / lb.resized_w)
            geometry = K.launch_geometry(lb.in_w, lb.in_h, chosen.pixels_per_thread,
                                         rows_per_thread=chosen.rows_per_thread)
            if len(self._prepared) >= 256:
                self._prepared.clear()
            prepared = self._prepared[key] = (
                chosen.name, self._config(geometry), self._kernel(chosen.kernel_name(self.dtype)),
                K.fused_args(src_ptr, pitch, dst_ptr, lb, swap_rb))
        self._core.launch(self.stream, prepared[1], prepared[2], *prepared[3])
        return prepared[0]

    def launch_unfused(self, src_ptr: int, pitch: int, lb: LetterboxParams, swap_rb: bool,
                       dst_ptr: int) -> None:
        """Launch the seed's 4-kernel chain (resize, letterbox, NHWC->NCHW, to-float)."""
        in_h, in_w = self.input_hw
        if self._unfused_bufs is None:
            n = 3 * in_h * in_w
            self._unfused_bufs = (self._alloc_device(n), self._alloc_device(n),
                                  self._alloc_device(n))
        resized, canvas, chw = self._unfused_bufs
        sx, sy = K.axis_factors(lb)
        i32 = np.int32
        rw, rh = lb.resized_w, lb.resized_h
        self._launch('unfused_resize_u8', K.launch_geometry(rw, rh),
                     int(src_ptr), i32(lb.src_w), i32(lb.src_h), i32(pitch), resized,
                     i32(rw), i32(rh), sx, sy)
        self._launch('unfused_letterbox_u8', K.launch_geometry(in_w, in_h),
                     resized, i32(rw), i32(rh), canvas, i32(in_w), i32(in_h))
        self._launch('unfused_nhwc2nchw_u8', K.launch_geometry(in_w, in_h),
                     canvas, chw, i32(in_w), i32(in_h), i32(1 if swap_rb else 0))
        n = 3 * in_h * in_w
        suffix = 'f32' if self.dtype == np.float32 else 'f16'
        self._launch(f'unfused_to_float_{suffix}', K.linear_geometry(n),
                     chw, int(dst_ptr), i32(n))

    def _launch_preprocess(self, src_ptr: int, pitch: int, lb: LetterboxParams,
                           swap_rb: bool, dst_ptr: int) -> None:
        if self.fused:
            self.launch_fused(src_ptr, pitch, lb, swap_rb, dst_ptr)
        else:
            self.launch_unfused(src_ptr, pitch, lb, swap_rb, dst_ptr)

    # ---- staging ----
    def _stage(self, image: np.ndarray) -> Tuple[_Staging, int, int]:
        """Copy a host image into the next pinned slot; return (slot, pitch, nbytes)."""
        drv = self._drv
        pitch, nbytes = host_copy_plan(image)
        slot = self._slots[self._next_slot]
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        self._reserve(slot, nbytes)
        if slot.used:  # the previous H2D out of this pinned buffer must have finished
            cuda_call(drv.cuEventSynchronize(slot.copied), 'cuEventSynchronize')
        np.copyto(slot.host[:nbytes], _flat_bytes(image, pitch, nbytes))
        slot.used = True
        return slot, pitch, nbytes

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
    def enqueue(self, image: Any, encoding: str = 'bgr8',
                dst_ptr: Optional[int] = None) -> LetterboxParams:
        """Enqueue preprocessing of ``image`` on ``stream``; return its LetterboxParams.

        ``image``: a host (H, W, 3) uint8 array, a DeviceImage, or a ``__cuda_array_interface__``
        object. The (3, in_h, in_w) result goes to ``dst_ptr`` (a device pointer, e.g. the
        engine's input binding) or to ``device_ptr``. Returns without waiting for the GPU.
        """
        self._ensure_open()
        if encoding not in SUPPORTED_ENCODINGS:
            raise InputError(f"unsupported encoding '{encoding}' "
                             f"(supported: {', '.join(SUPPORTED_ENCODINGS)})")
        dst = self.device_ptr if dst_ptr is None else int(dst_ptr)
        swap_rb = encoding == 'rgb8'
        in_h, in_w = self.input_hw
        if isinstance(image, np.ndarray):
            validate_image(image, encoding)
            lb = compute_letterbox(image.shape[0], image.shape[1], in_h, in_w)
            slot, pitch, nbytes = self._stage(image)
            if self.use_graph:
                key = ('host', self._slots.index(slot), lb, pitch, nbytes, swap_rb, dst)
                self._replay(key, lambda: (self._copy_h2d(slot, nbytes, record=False),
                                           self._launch_preprocess(slot.dev_ptr, pitch, lb,
                                                                   swap_rb, dst)))
                cuda_call(self._drv.cuEventRecord(slot.copied, self.stream.handle),
                          'cuEventRecord')
                return lb
            self._copy_h2d(slot, nbytes)
            self._launch_preprocess(slot.dev_ptr, pitch, lb, swap_rb, dst)
            if self.overlap_h2d:
                cuda_call(self._drv.cuEventRecord(slot.consumed, self.stream.handle),
                          'cuEventRecord')
            return lb
        dev = as_device_image(image)
        lb = compute_letterbox(dev.height, dev.width, in_h, in_w)
        if self.use_graph:
            key = ('device', dev, lb, swap_rb, dst)
            self._replay(key, lambda: self._launch_preprocess(dev.ptr, dev.row_pitch, lb,
                                                              swap_rb, dst))
        else:
            self._launch_preprocess(dev.ptr, dev.row_pitch, lb, swap_rb, dst)
        return lb

    def __call__(self, image: Any, encoding: str = 'bgr8'
                 ) -> Tuple[np.ndarray, LetterboxParams]:
        """Preprocess one image to a host (1, 3, in_h, in_w) array (reused by the next call)."""
        lb = self.enqueue(image, encoding)
        drv = self._drv
        cuda_call(drv.cuMemcpyDtoHAsync(self._host_out_ptr, self.device_ptr,
                                        self.output_nbytes, self.stream.handle),
                  'cuMemcpyDtoHAsync')
        self.synchronize()
        return self._host_out, lb

    def enqueue_batch(self, images: Sequence[Any], encodings: Union[str, Sequence[str]] = 'bgr8',
                      dst_ptr: Optional[int] = None) -> List[LetterboxParams]:
        """Preprocess several images (cameras) with ONE fused launch into an (N, 3, H, W) batch.

        Host images are staged into one pinned buffer and sent with one H2D copy. ``dst_ptr``
        (or ``batch_device_ptr(N)``) receives image i at byte offset i * ``output_nbytes``.
        """
        self._ensure_open()
        n = len(images)
        if n < 1:
            raise InputError('enqueue_batch needs at least one image')
        if isinstance(encodings, str):
            encodings = [encodings] * n
        if len(encodings) != n:
            raise InputError(f'{n} images but {len(encodings)} encodings')
        for encoding in encodings:
            if encoding not in SUPPORTED_ENCODINGS:
                raise InputError(f"unsupported encoding '{encoding}'")
        in_h, in_w = self.input_hw
        dst = self.batch_device_ptr(n) if dst_ptr is None else int(dst_ptr)
        keys = []
        for image, encoding in zip(images, encodings):
            if isinstance(image, np.ndarray):
                validate_image(image)
                keys.append(('host', image.shape, image.strides, encoding))
            else:
                keys.append(('device', as_device_image(image), encoding))
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
                src_ptr, h, w = slot.dev_ptr + offset, image.shape[0], image.shape[1]
            else:
                dev = key[1]
                src_ptr, pitch, h, w = dev.ptr, dev.row_pitch, dev.height, dev.width
            lb = compute_letterbox(h, w, in_h, in_w)
            K.pack_batch_descriptor(table[i], src_ptr, pitch, dst + i * self.output_nbytes,
                                    lb, key[-1] == 'rgb8')
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
