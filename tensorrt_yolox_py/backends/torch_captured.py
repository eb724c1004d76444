"""One model as one captured unit per batch size: static input, network, GPU decode, D2H.

Contract of ``CapturedModel(make_fn, input_chw, dtype, device, channels_last, decode,
cuda_graph)`` (torch, CUDA or CPU):

- ``make_fn(batch)`` returns the network for that batch: a callable (B, 3, H, W) -> (B, N,
  5 + C) (``torch_graph.StaticGraph``, optionally wrapped by ``torch.compile``, or an
  onnx2torch module).
- ``slot(batch)`` (created on first use, then reused) owns the batch's static input tensor
  ``slot.input`` ((B, 3, H, W) of ``dtype``, NHWC memory order when ``channels_last``:
  ``slot.input_ptr`` is where a preprocessing kernel writes, ``slot.layout`` 'nchw' / 'nhwc'
  says how), and on CUDA with ``cuda_graph`` a CUDA graph of network + decode captured after
  three warm-up runs on a side stream (``thread_local`` capture, one memory pool shared by the
  model's graphs: replays must not overlap, the caller serializes them).
- ``run(batch, stream, decoded)`` launches the batch's work on ``stream`` (the graph's replay,
  or the eager calls when capture is off or failed) and, with ``decoded``, enqueues the
  detection-sized device-to-host copy of (candidates, counts) into pinned host buffers; then
  waits for ``stream``. It returns the slot: ``raw`` (device, (B, N, 5 + C)), and with
  ``decoded`` ``host_candidates`` (B, K, 7) / ``host_counts`` (B,) numpy views (overwritten by
  the next run of the same batch size).
- A capture that fails is logged once with its reason (``fallback_reason``), and the model
  then runs eagerly; ``captured(batch)`` tells whether a batch size replays a graph.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

from .._lazy import require

LOGGER = logging.getLogger(__name__)
WARMUP_RUNS = 3


@dataclass
class Slot:
    """The static buffers (and graph) of one batch size."""

    batch: int
    input: Any
    layout: str
    fn: Callable
    graph: Any = None
    raw: Any = None
    candidates: Any = None
    counts: Any = None
    host_candidates: Any = None
    host_counts: Any = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def input_ptr(self) -> int:
        """Device address of the static input (where the preprocessing kernel writes)."""
        return int(self.input.data_ptr())


class CapturedModel:
    """Per-batch static buffers, optional CUDA graph, GPU decode (see the module contract)."""

    def __init__(self, make_fn: Callable[[int], Callable], input_chw: Tuple[int, int, int],
                 dtype: Any, device: Any, channels_last: bool = False,
                 decode: Optional[Callable] = None, cuda_graph: bool = True) -> None:
        self._torch = require('torch', 'the torch backend', 'pip install torch')
        torch = self._torch
        self.make_fn = make_fn
        self.input_chw = tuple(int(d) for d in input_chw)
        self.dtype = dtype
        self.device = torch.device(device)
        self.channels_last = bool(channels_last)
        self.decode = decode
        self.cuda_graph = bool(cuda_graph) and self.device.type == 'cuda'
        self.fallback_reason = ''
        self._slots: Dict[int, Slot] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.cuda_graph else None

    @property
    def layout(self) -> str:
        """'nhwc' when the static inputs are channels_last, else 'nchw'."""
        return 'nhwc' if self.channels_last else 'nchw'

    def captured(self, batch: int) -> bool:
        """Whether ``batch`` replays a CUDA graph (after ``slot(batch)``)."""
        slot = self._slots.get(int(batch))
        return bool(slot is not None and slot.graph is not None)

    def slot(self, batch: int) -> Slot:
        """Return the batch's slot, creating (and capturing) it on first use."""
        slot = self._slots.get(int(batch))
        if slot is None:
            slot = self._slots[int(batch)] = self._make_slot(int(batch))
        return slot

    def _make_slot(self, batch: int) -> Slot:
        torch = self._torch
        shape = (batch,) + self.input_chw
        static = torch.full(shape, 114.0, dtype=self.dtype, device=self.device)
        if self.channels_last:
            static = static.contiguous(memory_format=torch.channels_last)
        slot = Slot(batch, static, self.layout, self.make_fn(batch))
        if self.device.type == 'cuda' and self.decode is not None:
            k = int(getattr(self.decode, 'top_k'))
            slot.host_candidates = torch.empty((batch, k, 7), dtype=torch.float32,
                                               pin_memory=True)
            slot.host_counts = torch.empty((batch,), dtype=torch.int32, pin_memory=True)
        if self.cuda_graph and not self.fallback_reason:
            self._capture(slot)
        return slot

    def _body(self, slot: Slot) -> None:
        slot.raw = slot.fn(slot.input)
        if isinstance(slot.raw, (list, tuple)):
            slot.raw = slot.raw[0]
        if self.decode is not None:
            slot.candidates, slot.counts = self.decode(slot.raw)

    def _capture(self, slot: Slot) -> None:
        torch = self._torch
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self._body(slot)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.inference_mode(), torch.cuda.graph(
                    graph, pool=self._pool, stream=side, capture_error_mode='thread_local'):
                self._body(slot)
        except Exception as exc:  # noqa: BLE001 - any capture failure: run eagerly
            current.wait_stream(side)
            self.fallback_reason = f'{type(exc).__name__}: {str(exc).splitlines()[0]}'
            LOGGER.warning('torch backend: CUDA graph capture failed (%s); running this '
                           'model without CUDA graphs', self.fallback_reason)
            return
        current.wait_stream(side)
        side.synchronize()
        slot.graph = graph
        LOGGER.info('torch backend: captured batch %d as a CUDA graph', slot.batch)

    def run(self, batch: int, stream: Any = None, decoded: bool = True,
            copy_stream: Any = None) -> Slot:
        """Run the batch's work on ``stream`` and wait for it (see the module contract).

        ``copy_stream`` (a stream this object's owner keeps alive): where the device-to-host
        copy into the pinned buffers runs, after ``stream``'s work. torch's pinned-memory
        allocator records events on the streams a pinned buffer was copied on when the buffer
        is freed, so a caller's short-lived stream (a preprocessor's) must not be one of them.
        """
        torch = self._torch
        slot = self.slot(batch)
        if self.device.type != 'cuda':
            with torch.inference_mode():
                self._body(slot)
            if decoded and self.decode is not None:
                slot.host_candidates = slot.candidates
                slot.host_counts = slot.counts
            return slot
        stream = stream if stream is not None else torch.cuda.current_stream(self.device)
        copy_stream = copy_stream if copy_stream is not None else stream
        with torch.inference_mode(), torch.cuda.stream(stream):
            if slot.graph is not None:
                slot.graph.replay()
            else:
                self._body(slot)
        if decoded and self.decode is not None:
            if copy_stream is not stream:
                copy_stream.wait_stream(stream)
            with torch.cuda.stream(copy_stream):
                slot.host_candidates.copy_(slot.candidates, non_blocking=True)
                slot.host_counts.copy_(slot.counts, non_blocking=True)
        copy_stream.synchronize()
        if copy_stream is not stream:
            stream.synchronize()
        return slot
