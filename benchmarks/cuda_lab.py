"""The preprocessing lab: ``LabPreprocessor``, the runtime CudaPreprocessor plus its experiments.

Benchmarks and GPU tests only; the package never imports this module. Everything the runtime
class (``tensorrt_yolox_py/cuda/preprocess.py``) does not need lives here, over its hooks:

- ``LabPreprocessor(input_hw, dtype, gpu_id, variant='auto', use_graph=False,
  overlap_h2d=False, kernels=RUNTIME_KERNELS, host_copy='auto', copy_threads=4)``:
  ``variant`` picks the bgr8 / rgb8 fused kernel variant ('auto' = the runtime default 'c1';
  'w1', 'b1'; ``benchmarks.cuda_variants.BENCH_KERNELS`` adds its own). ``use_graph`` replays
  H2D + kernel as a cached CUDA graph (one launch call). ``overlap_h2d`` copies on a second
  stream with two staging slots, so the next frame's H2D overlaps this frame's kernel and
  inference. ``host_copy`` (``HOST_COPY_MODES``): 'direct' (the runtime's: one H2D straight
  from the frame), 'single' (one memcpy into pinned staging, one H2D), 'pipelined' (1 MiB
  chunks, each sent while the next is copied), 'parallel' (the chunks copied by
  ``copy_threads`` threads, each sent as soon as it is there); 'auto' = 'direct', or 'single'
  with ``use_graph``.
- ``enqueue(image, encoding=None, dst_ptr=None) -> LetterboxParams``: one image (a
  SourceImage, a host array with its encoding, a ``DeviceImage`` or any
  ``__cuda_array_interface__`` (H, W, C) uint8 object, which skips the H2D) into ``dst_ptr``
  or ``device_ptr``, without waiting. ``enqueue_batch(images, encodings, dst_ptr=None)``:
  the batch kernel, device images allowed, into ``dst_ptr`` or ``batch_device_ptr(n)``.
- ``download(dst_ptr=None, n=1)`` copies tensors back (waits); ``alloc_device(nbytes)``,
  ``launch(name, geometry, *args)``, ``launch_fused(..., variant)``, ``launch_encoding(...)``
  for the kernel benchmarks; ``device``, ``stream`` (cuda.core objects) for the timing code.
"""

import importlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tensorrt_yolox_py.cuda import kernels as K
from tensorrt_yolox_py.cuda.check import cuda_call, CudaError
from tensorrt_yolox_py.cuda.preprocess import (_ALIGN, _flat_bytes, _SLACK, _Staging,
                                               CudaPreprocessor, host_copy_plan)
from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.image import (as_source, Encoding, encoding_of, MAX_SOURCE_PIXELS,
                                     SourceImage)
from tensorrt_yolox_py.stages.preprocess import compute_letterbox, LetterboxParams

LOG = logging.getLogger(__name__)
#: Host staging strategies (see the module docstring).
HOST_COPY_MODES = ('auto', 'direct', 'single', 'pipelined', 'parallel')
#: Bytes per chunk of the 'pipelined' / 'parallel' staging (whole rows are not required).
CHUNK_BYTES = 1 << 20


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


class LabPreprocessor(CudaPreprocessor):
    """CudaPreprocessor with the benchmark options; see the module docstring."""

    def __init__(self, input_hw: Tuple[int, int], dtype: type = np.float32, gpu_id: int = 0,
                 variant: str = 'auto', use_graph: bool = False, overlap_h2d: bool = False,
                 kernels: K.KernelSet = K.RUNTIME_KERNELS, host_copy: str = 'auto',
                 copy_threads: int = 4) -> None:
        known = ['auto'] + [v.name for v in kernels.variants.get(np.dtype(dtype).name, ())]
        if variant not in known:
            raise ValueError(f"unknown fused variant '{variant}' for {np.dtype(dtype)} "
                             f"(known: {', '.join(known)})")
        if host_copy not in HOST_COPY_MODES:
            raise ValueError(f"host_copy must be one of {', '.join(HOST_COPY_MODES)}, got "
                             f'{host_copy!r}')
        if use_graph and overlap_h2d:
            raise ValueError('use_graph and overlap_h2d cannot be combined')
        if host_copy == 'auto':
            host_copy = 'single' if use_graph else 'direct'
        if use_graph and host_copy != 'single':
            raise ValueError("use_graph needs host_copy 'single' (one H2D per frame)")
        self.variant = variant
        self.use_graph = bool(use_graph)
        self.overlap_h2d = bool(overlap_h2d)
        self.host_copy = host_copy
        self.copy_threads = max(1, int(copy_threads))
        self._pool: Optional[ThreadPoolExecutor] = None
        self._graphs: Dict[tuple, Tuple[Any, Any]] = {}
        self._next_slot = 0
        super().__init__(input_hw, dtype, gpu_id, kernels, staging_slots=1)  # + 1: overlap_h2d
        try:
            self._drv = importlib.import_module('cuda.bindings.driver')
            self._copy_stream = self._new_stream() if self.overlap_h2d else self.stream_handle
            if self.overlap_h2d:
                self._slots.append(self._new_slot())
        except BaseException:
            self.close()
            raise

    # ---- what the benchmarks read ----
    @property
    def device(self) -> Any:
        """The cuda.core Device."""
        return self._gpu.device

    @property
    def stream(self) -> Any:
        """The instance's stream as a cuda.core Stream."""
        return self._gpu.stream(self.stream_handle)

    @property
    def _core(self) -> Any:
        return self._gpu.core

    def _kernel(self, name: str) -> Any:
        return self._gpu.kernel(name)

    @property
    def device_ptr(self) -> int:
        """The instance's one-image output buffer."""
        return self._output(1)

    def alloc_device(self, nbytes: int) -> int:
        """Allocate device memory owned by this instance (freed by ``close``)."""
        self._ensure_open()
        return self._alloc_device(nbytes)

    def batch_device_ptr(self, n: int) -> int:
        """Return the device buffer for an (n, 3, in_h, in_w) batch (grown on demand)."""
        self._ensure_open()
        return self._output(n)

    def launch(self, name: str, geometry: tuple, *args: Any) -> None:
        """Launch kernel ``name`` of this instance's kernel set on its stream."""
        self._gpu.launch(name, geometry, self.stream_handle, *args)

    def launch_fused(self, src_ptr: int, pitch: int, lb: LetterboxParams, swap_rb: bool,
                     dst_ptr: int, variant: Optional[str] = None) -> str:
        """Launch one bgr8 / rgb8 fused kernel (``variant`` or the instance's); return its name."""
        encoding = encoding_of('rgb8' if swap_rb else 'bgr8')
        if variant is None:
            return self._launch_one(src_ptr, pitch, lb, encoding, dst_ptr)
        saved, self.variant = self.variant, variant
        try:
            key = (src_ptr, pitch, lb, encoding.name, dst_ptr)
            self._prepared.pop(key, None)
            used = self._launch_one(src_ptr, pitch, lb, encoding, dst_ptr)
            self._prepared.pop(key, None)
            return used
        finally:
            self.variant = saved

    def launch_encoding(self, src_ptr: int, pitch: int, lb: LetterboxParams,
                        encoding: Encoding, dst_ptr: int) -> str:
        """Launch the fused kernel for a source in ``encoding``; return the variant name."""
        return self._launch_one(src_ptr, pitch, lb, encoding, dst_ptr)

    def download(self, dst_ptr: Optional[int] = None, n: int = 1) -> np.ndarray:
        """Copy n (3, in_h, in_w) tensors at ``dst_ptr`` (default: device_ptr) to a new array."""
        self._ensure_open()
        src = self.device_ptr if dst_ptr is None else int(dst_ptr)
        out = np.empty((n, 3) + self.input_hw, self.dtype)
        self.synchronize()
        cuda_call(self._drv.cuMemcpyDtoH(out.ctypes.data, src, out.nbytes), 'cuMemcpyDtoH')
        return out

    # ---- hooks of the runtime class ----
    def _fused_variant(self, lb: LetterboxParams, src_ptr: int, dst_ptr: int
                       ) -> K.FusedVariant:
        return K.choose_variant(self.dtype, lb.src_w, src_ptr, lb.in_w, dst_ptr, self.variant,
                                lb.src_w / lb.resized_w, self.kernels)

    def _staging_moved(self) -> None:
        self._drop_graphs()

    def _next_slot_index(self) -> int:
        index = self._next_slot
        self._next_slot = (self._next_slot + 1) % len(self._slots)
        return index

    def _h2d(self, slot: _Staging, host_ptr: int, nbytes: int, record: bool = True) -> None:
        """Queue the H2D of one block (see ``_h2d_chunks``)."""
        self._h2d_chunks(slot, [(host_ptr, 0, nbytes)], record)

    def _h2d_chunks(self, slot: _Staging, chunks: Any, record: bool = True) -> None:
        """Queue H2D copies of ``(host_ptr, offset, nbytes)`` chunks into ``slot.dev_ptr``.

        On the copy stream when ``overlap_h2d``, with the two overlap waits (the one place):
        the copy waits until the kernel that read the slot last is done, and the kernel
        stream waits for the copy.
        """
        mem, stream = self._mem, self._copy_stream
        if self.overlap_h2d:  # don't overwrite the device slot while a kernel still reads it
            mem.stream_wait_event(stream, slot.consumed)
        for host_ptr, offset, nbytes in chunks:
            mem.copy_htod_async(slot.dev_ptr + offset, host_ptr, nbytes, stream)
        if record:  # (not inside a graph capture: the caller records after the replay)
            mem.event_record(slot.copied, stream)
        if self.overlap_h2d:
            mem.stream_wait_event(self.stream_handle, slot.copied)

    def _upload(self, source: SourceImage) -> Tuple[_Staging, int]:
        if self.host_copy == 'direct':
            return super()._upload(source)
        pitch, nbytes = host_copy_plan(source)
        slot = self._take_slot(nbytes)
        flat = _flat_bytes(source, pitch, nbytes)
        if self.host_copy == 'single' or nbytes <= CHUNK_BYTES:
            np.copyto(slot.host[:nbytes], flat)
            self._h2d(slot, slot.host_ptr, nbytes)
        else:
            self._copy_chunked(slot, flat, nbytes)
        return slot, pitch

    def _copy_chunked(self, slot: _Staging, flat: np.ndarray, nbytes: int) -> None:
        """Stage ``flat`` in chunks, queueing each chunk's H2D as soon as it is in pinned memory.

        'pipelined': this thread copies chunk k + 1 while the DMA engine sends chunk k.
        'parallel': ``copy_threads`` threads copy the chunks (NumPy releases the GIL for large
        copies); the H2D of each is queued, in order, as soon as it is done.
        """
        bounds = [(o, min(o + CHUNK_BYTES, nbytes)) for o in range(0, nbytes, CHUNK_BYTES)]

        def copy(bound: Tuple[int, int]) -> Tuple[int, int]:
            np.copyto(slot.host[bound[0]:bound[1]], flat[bound[0]:bound[1]])
            return bound

        if self.host_copy == 'parallel':
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.copy_threads,
                                                thread_name_prefix='yolox-h2d-copy')
            done = self._pool.map(copy, bounds)
        else:
            done = map(copy, bounds)
        self._h2d_chunks(slot, ((slot.host_ptr + lo, lo, hi - lo) for lo, hi in done))

    def _enqueue_one(self, source: SourceImage, dst: int) -> LetterboxParams:
        if not self.use_graph:
            return super()._enqueue_one(source, dst)
        in_h, in_w = self.input_hw
        lb = compute_letterbox(source.height, source.width, in_h, in_w)
        pitch, nbytes = host_copy_plan(source)
        slot = self._take_slot(nbytes)
        np.copyto(slot.host[:nbytes], _flat_bytes(source, pitch, nbytes))
        key = ('host', self._slots.index(slot), lb, pitch, nbytes, source.encoding.name, dst)
        self._replay(key, lambda: (
            self._h2d(slot, slot.host_ptr, nbytes, record=False),
            self._launch_one(slot.dev_ptr, pitch, lb, source.encoding, dst)))
        self._mem.event_record(slot.copied, self.stream_handle)
        self._consumed(slot)   # a staged batch's H2D into this slot waits for the replay
        return lb

    # ---- enqueue: host or device images ----
    def enqueue(self, image: Any, encoding: Optional[str] = None,
                dst_ptr: Optional[int] = None) -> LetterboxParams:
        """Enqueue one image into ``dst_ptr`` (or ``device_ptr``); see the module docstring."""
        self._ensure_open()
        dst = self.device_ptr if dst_ptr is None else int(dst_ptr)
        if isinstance(image, (np.ndarray, SourceImage)):
            return self._enqueue_one(as_source(image, encoding), dst)
        dev = as_device_image(image, encoding)
        enc = encoding_of(dev.encoding)
        in_h, in_w = self.input_hw
        lb = compute_letterbox(dev.height, dev.width, in_h, in_w)
        if self.use_graph:
            self._replay(('device', dev, lb, dst),
                         lambda: self._launch_one(dev.ptr, dev.row_pitch, lb, enc, dst))
        else:
            self._launch_one(dev.ptr, dev.row_pitch, lb, enc, dst)
        return lb

    def __call__(self, image: Any, encoding: Optional[str] = None
                 ) -> Tuple[np.ndarray, LetterboxParams]:
        """Preprocess one image to a new host (1, 3, in_h, in_w) array (waits)."""
        lb = self.enqueue(image, encoding)
        return self.download(), lb

    def enqueue_batch(self, images: Sequence[Any],
                      encodings: Union[None, str, Sequence[Optional[str]]] = None,
                      dst_ptr: Optional[int] = None) -> List[LetterboxParams]:
        """Several images (host or device) with ONE batch launch into an (N, 3, H, W) batch."""
        self._ensure_open()
        n = len(images)
        if n < 1:
            raise InputError('enqueue_batch needs at least one image')
        if encodings is None or isinstance(encodings, str):
            encodings = [encodings] * n
        if len(encodings) != n:
            raise InputError(f'{n} images but {len(encodings)} encodings')
        dst = self.batch_device_ptr(n) if dst_ptr is None else int(dst_ptr)
        items: List[Any] = []
        for image, encoding in zip(images, encodings):
            if isinstance(image, (np.ndarray, SourceImage)):
                items.append(as_source(image, encoding))
            else:
                items.append(as_device_image(image, encoding))
        if all(isinstance(item, SourceImage) for item in items):
            return self._enqueue_batch(items, dst)
        return self._enqueue_mixed(items, dst)

    def _enqueue_mixed(self, items: List[Any], dst: int) -> List[LetterboxParams]:
        """Run a batch with device images: host ones staged as the runtime does, devices read."""
        in_h, in_w = self.input_hw
        plans: List[Optional[Tuple[int, int, int]]] = []
        total = 0
        for item in items:
            if isinstance(item, SourceImage):
                pitch, nbytes = host_copy_plan(item)
                plans.append((total, pitch, nbytes))
                total += -(-(nbytes + _SLACK) // _ALIGN) * _ALIGN
            else:
                plans.append(None)
        slot = self._slots[0]
        if total:
            self._reserve(slot, total)
            if slot.used:
                self._mem.event_synchronize(slot.copied)
        table = np.zeros(len(items), K.BATCH_DESC_DTYPE)
        letterboxes = []
        for i, (item, plan) in enumerate(zip(items, plans)):
            if plan is not None:
                offset, pitch, nbytes = plan
                np.copyto(slot.host[offset:offset + nbytes], _flat_bytes(item, pitch, nbytes))
                src, h, w, enc = slot.dev_ptr + offset, item.height, item.width, item.encoding
            else:
                src, pitch, h, w = item.ptr, item.row_pitch, item.height, item.width
                enc = encoding_of(item.encoding)
            lb = compute_letterbox(h, w, in_h, in_w)
            K.pack_batch_descriptor(table[i], src, pitch, dst + i * self.output_nbytes, lb, enc)
            letterboxes.append(lb)
        self._batch.pop('prepared', None)    # the runtime's cached plan does not hold here
        self._upload_table(table)
        if total:
            slot.used = True
            self._h2d(slot, slot.host_ptr, total)
        self._gpu.launch(f'fused_batch_{K.dtype_suffix(self.dtype)}',
                         K.launch_geometry(in_w, in_h, 1, len(items)), self.stream_handle,
                         self._batch['table_dev'], np.int32(in_w), np.int32(in_h))
        if total:
            self._consumed(slot)
        return letterboxes

    # ---- graphs ----
    def _replay(self, key: tuple, record: Any) -> None:
        """Launch the cached CUDA graph for ``key``, capturing ``record()`` on first use."""
        drv = self._drv
        entry = self._graphs.get(key)
        if entry is None:
            stream = self.stream_handle
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
        cuda_call(drv.cuGraphLaunch(entry[1], self.stream_handle), 'cuGraphLaunch')

    def _drop_graphs(self) -> None:
        drv = getattr(self, '_drv', None)
        graphs, self._graphs = self._graphs, {}
        for graph, exec_ in graphs.values():
            cuda_call(drv.cuGraphExecDestroy(exec_), 'cuGraphExecDestroy')
            cuda_call(drv.cuGraphDestroy(graph), 'cuGraphDestroy')

    def _release_extra(self, attempt: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._graphs:
            attempt(self._drop_graphs)

    def __enter__(self) -> 'LabPreprocessor':
        return self
