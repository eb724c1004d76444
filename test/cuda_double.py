"""A CPU stand-in for the CUDA layer of ``CudaPreprocessor`` (memory, events, kernel launches).

The way test/trt_double stands in for TensorRT: the production class runs unchanged, over

- ``PreprocessMemory``: ``trt_double.host_memory.HostMemory`` plus what the preprocessor calls
  beyond the TensorRT interface (``activate``, raw-pointer ``copy_htod_async``, events). "Device"
  buffers are NumPy arrays at their real addresses; every copy, launch and event is validated
  (inside one live allocation, on a live stream, a live event) and journaled in ``calls``.
  ``shared=`` makes it see (and allocate into) another HostMemory's device memory and streams,
  so the TensorRT double reads what the preprocessor wrote.
- ``deferred=True`` makes it a lazy GPU: copies and launches are queued per stream and run
  only when a host wait needs them (``event_synchronize``, ``synchronize``, a copy to the
  host), each after the events its stream waited on (``stream_wait_event``) and as late as
  that allows. A copy reads its source bytes when it runs, as a DMA does, so pinned memory
  rewritten before its copy is waited for, a copy into a buffer a queued kernel still reads,
  or a kernel not ordered after its copy gives wrong pixels. ``calls`` then also journals
  ``('wait', stream)`` and ``('event_sync',)``.
- ``KernelDouble``: the ``kernels.LoadedKernels`` interface. A launch of ``fused_*`` /
  ``fused_fmt_*`` / ``fused_batch_*`` reads the source bytes from "device" memory at the given
  pointer and pitch (the batch kernel: from the packed ``BATCH_DESC_DTYPE`` table in device
  memory), rebuilds the image, letterboxes it with the CPU reference and writes the planar
  tensor at the destination pointer. It is no more permissive than the kernels: the word-load
  variants ('c1', 'w1', batch ``use_words``) need a 4-byte aligned source (and pitch), W >= 2;
  the launch geometry must cover the canvas; the packed letterbox must be the contract's.

What this checks is the orchestration (staging pitches, offsets, descriptor tables, output
buffers, streams and events, resources freed), not the kernels' arithmetic, which the GPU tests
hold to the CPU reference on a real GPU.
"""

import ctypes
import itertools
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tensorrt_yolox_py.cuda import kernels as K
from tensorrt_yolox_py.image import ENCODINGS, SourceImage
from tensorrt_yolox_py.stages.preprocess import compute_letterbox, preprocess_cpu
from trt_double.host_memory import HostMemory

_BY_FORMAT = {e.kernel_format: e for e in ENCODINGS.values()}


class PreprocessMemory(HostMemory):
    """HostMemory plus activation, raw host-to-device copies and events (see module doc)."""

    def __init__(self, shared: Optional[HostMemory] = None, deferred: bool = False) -> None:
        super().__init__()
        if shared is not None:       # one device address space and stream set with it
            self.device, self.streams, self.calls = shared.device, shared.streams, shared.calls
        self._ids = itertools.count(0x9000)
        self.events: set = set()
        self.activations = 0
        self.deferred = deferred
        self._queues: Dict[int, List[Callable[[], None]]] = {}   # stream -> queued work
        self._done: Dict[int, int] = {}                           # stream -> ops run
        self._marks: Dict[int, Tuple[int, int]] = {}              # event -> (stream, op count)

    def activate(self) -> None:
        self.activations += 1

    def copy_htod_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        self._stream(stream)
        self._region(dst, nbytes)
        self.calls.append(('htod', stream))
        self.enqueue(stream, lambda: ctypes.memmove(dst, src, nbytes))

    def event_create(self) -> int:
        event = next(self._ids)
        self.events.add(event)
        return event

    def event_record(self, event: int, stream: int) -> None:
        self._event(event)
        self._stream(stream)
        self.calls.append(('record', stream))
        self._marks[event] = (stream, len(self._queues.get(stream, [])))

    def event_synchronize(self, event: int) -> None:
        self._event(event)
        if self.deferred:
            self.calls.append(('event_sync',))
        self._reach(event)

    def stream_wait_event(self, stream: int, event: int) -> None:
        self._event(event)
        self._stream(stream)
        if self.deferred:
            self.calls.append(('wait', stream))
        mark = self._marks.get(event)   # the event's last record (none: already complete)
        if mark is not None:
            self.enqueue(stream, lambda: self._run(*mark))

    def synchronize(self, stream: int) -> None:
        super().synchronize(stream)
        self.drain(stream)

    def drain(self, stream: int) -> None:
        """Run everything queued on ``stream`` (and what it waits for), journaling nothing."""
        self._run(stream, len(self._queues.get(stream, [])))

    # -- the lazy GPU (deferred=True); otherwise work runs when queued
    def enqueue(self, stream: int, work: Callable[[], None]) -> None:
        """Queue ``work`` on ``stream`` (run at once unless deferred)."""
        if not self.deferred:
            work()
            return
        self._queues.setdefault(stream, []).append(work)

    def flush(self) -> None:
        """Run everything queued (a device-wide synchronisation)."""
        for stream in list(self._queues):
            self._run(stream, len(self._queues[stream]))

    def _reach(self, event: int) -> None:
        mark = self._marks.get(event)
        if mark is not None:
            self._run(*mark)

    def _run(self, stream: int, upto: int) -> None:
        queue = self._queues.get(stream, [])
        while self._done.get(stream, 0) < upto:
            index = self._done.get(stream, 0)
            self._done[stream] = index + 1
            queue[index]()

    def event_destroy(self, event: int) -> None:
        self._event(event)
        self.events.discard(event)

    def own_live(self) -> int:
        """Allocations, streams and events this layer still holds."""
        return len(self.pinned) + len(self.events) + len(
            [s for s in self.streams if s >= 0x9000])

    def _event(self, event: int) -> None:
        if event not in self.events:
            raise ValueError(f'unknown or destroyed event {event!r}')


class KernelDouble:
    """The ``kernels.LoadedKernels`` interface over ``PreprocessMemory`` (see module doc)."""

    def __init__(self, kernel_set: K.KernelSet, memory: PreprocessMemory) -> None:
        self.kernel_set = kernel_set
        self.memory = memory
        self.arch = 'sm_87'
        self.device_name = 'CPU double'
        self.launches: list = []

    def activate(self) -> None:
        self.memory.activate()

    def stream(self, handle: int) -> int:
        self.memory._stream(handle)
        return handle

    def forget_stream(self, handle: int) -> None:
        pass

    def kernel(self, name: str) -> str:
        if name not in self.kernel_set.kernel_names:
            raise ValueError(f'no kernel {name} in {self.kernel_set.name}')
        return name

    def prepare(self, name: str, geometry: K.Geometry) -> Tuple[K.Geometry, str]:
        grid, block = geometry
        if len(grid) != 3 or len(block) != 3 or min(grid + block) < 1:
            raise ValueError(f'bad launch geometry {geometry}')
        return geometry, self.kernel(name)

    def launch(self, name: str, geometry: K.Geometry, stream: int, *args: Any) -> None:
        self.launch_prepared(self.prepare(name, geometry), stream, args)

    def launch_prepared(self, prepared: Tuple[K.Geometry, str], stream: int,
                        args: Sequence[Any]) -> None:
        geometry, name = prepared
        self.memory._stream(stream)
        self.launches.append((name, stream))
        args = tuple(args)
        self.memory.enqueue(stream, lambda: self._execute(geometry, name, args))

    def _execute(self, geometry: K.Geometry, name: str, args: Sequence[Any]) -> None:
        dtype = np.float16 if name.endswith('_f16') else np.float32
        if name.startswith('fused_batch_'):
            self._batch(geometry, args, dtype, nhwc=name.startswith('fused_batch_nhwc_'))
            return
        if not name.startswith('fused_'):
            raise ValueError(f'the double does not run {name}')
        src, w, h, pitch, dst, in_w, in_h, rw, rh, sx, sy, swap = args[:12]
        if name.startswith('fused_fmt_'):
            encoding = _BY_FORMAT[int(args[12])]
        else:
            encoding = ENCODINGS['rgb8' if int(swap) else 'bgr8']
            words = name.split('_')[1][0] in 'cw'
            if words and (int(src) % 4 or int(w) < 2):
                raise ValueError(f'{name} reads 32-bit words: needs a 4-byte aligned source '
                                 f'and W >= 2, got {int(src):#x}, W {int(w)}')
        need = K.launch_geometry(int(in_w), int(in_h))[0]
        if any(g < n for g, n in zip(geometry[0][:2], need[:2])):
            raise ValueError(f'grid {geometry[0]} does not cover {int(in_w)}x{int(in_h)}')
        self._render(int(src), int(w), int(h), int(pitch), encoding, int(dst), int(in_h),
                     int(in_w), int(rw), int(rh), float(sx), float(sy), dtype)

    def _batch(self, geometry: K.Geometry, args: Sequence[Any], dtype: type,
               nhwc: bool = False) -> None:
        table, in_w, in_h = int(args[0]), int(args[1]), int(args[2])
        count = geometry[0][2]
        size = K.BATCH_DESC_DTYPE.itemsize
        records = np.frombuffer(self.memory.read(table, count * size), K.BATCH_DESC_DTYPE)
        for rec in records:
            encoding = _BY_FORMAT[int(rec['fmt'])]
            if bool(rec['swap_rb']) != encoding.swap_rb:
                raise ValueError(f'descriptor swap_rb {rec["swap_rb"]} for {encoding.name}')
            if rec['use_words'] and (int(rec['src']) % 4 or int(rec['pitch']) % 4
                                     or not encoding.packed_bgr or int(rec['src_w']) < 2):
                raise ValueError('word loads on an unaligned or non-BGR source')
            self._render(int(rec['src']), int(rec['src_w']), int(rec['src_h']),
                         int(rec['pitch']), encoding, int(rec['dst']), in_h, in_w,
                         int(rec['rw']), int(rec['rh']), float(rec['sx']), float(rec['sy']),
                         dtype, nhwc)

    def _render(self, src: int, w: int, h: int, pitch: int, encoding: Any, dst: int,
                in_h: int, in_w: int, rw: int, rh: int, sx: float, sy: float,
                dtype: type, nhwc: bool = False) -> None:
        lb = compute_letterbox(h, w, in_h, in_w)
        if (lb.resized_w, lb.resized_h) != (rw, rh) or \
                (np.float32(sx), np.float32(sy)) != K.axis_factors(lb):
            raise ValueError(f'packed letterbox {rw}x{rh} / {sx}, {sy} is not the contract\'s '
                             f'{lb.resized_w}x{lb.resized_h} for {w}x{h} -> {in_w}x{in_h}')
        nbytes = (h - 1) * pitch + w * encoding.channels
        data = self.memory.read(src, nbytes) + bytes(h * pitch - nbytes)
        source = SourceImage.from_buffer(h, w, encoding.name, pitch, data)
        out, _ = preprocess_cpu(source, (in_h, in_w), dtype)
        if nhwc:                       # fused_batch_nhwc_*: a pixel's three values together
            out = np.ascontiguousarray(out.transpose(0, 2, 3, 1))
        self.memory.write(dst, out.tobytes())
