"""YOLOX decode, score threshold and top-k as PyTorch tensor math (GPU, inside a CUDA graph).

Contract of ``DecodeHead(input_hw, score_threshold, top_k, output_format, device, select)``:

- ``head(output)``: ``output`` (B, N, 5 + C) float16/float32 on the head's device, the YOLOX
  head of ``stages.postprocess`` (``raw``: columns 0-3 are p0..p3 decoded with the anchors of
  ``postprocess.make_anchors``; ``decoded``: columns 0-3 are already (cx, cy, w, h)).
  Returns ``(candidates, counts)``: ``candidates`` (B, K, 7) float32 with K = ``top_k``, each
  row (x1, y1, x2, y2, score, class id, anchor index) with the box in model-input pixels,
  ``score = objectness * max class score``; ``counts`` (B,) int32, the number of anchors whose
  score reaches ``score_threshold`` (it may exceed K: the caller then falls back to the full
  output). When ``counts[b]`` <= K, the first ``counts[b]`` rows of image b are exactly its
  passing anchors; the rows after them carry score -1 (every column -1 with ``compact``).
- ``select``: how the passing anchors are gathered. ``topk`` (default, the one measured and
  tested on a GPU): ``torch.topk`` of the masked scores, rows in descending score order;
  ``compact``: a prefix sum over the pass mask scatters them to their rank, so the rows are in
  anchor order (no sort). Both keep the same set (CPU tests); ``benchmarks/bench_gpu_captured.py``
  times both (``_topk`` modes), which decides the default once it has run on a GPU.
- The arithmetic is the CPU postprocess's, in float32 on float32 inputs (score = obj * cls of
  the FIRST arg-max class, ``exp(min(p, 20))``, centre +- size / 2), so with the candidates
  re-sorted by anchor index (``postprocess.Postprocessor.from_candidates`` does) the kept set
  is the CPU postprocess's. Only static shapes: capturable, compilable, no host reads.
- ``candidate_bytes(batch)``: the size of one device-to-host copy of the result.
"""

from typing import Any, Tuple

import numpy as np

from .._lazy import require
from ..stages.postprocess import make_anchors, STRIDES

#: Default number of candidates kept per image before NMS (more passing anchors: full copy).
DEFAULT_TOP_K = 1024
CANDIDATE_COLUMNS = 7
SELECT_METHODS = ('compact', 'topk')


class DecodeHead:
    """Decode + threshold + top-k over a batch of YOLOX outputs (see the module contract)."""

    def __init__(self, input_hw: Tuple[int, int], score_threshold: float,
                 top_k: int = DEFAULT_TOP_K, output_format: str = 'raw',
                 device: Any = 'cpu', select: str = 'topk') -> None:
        torch = self._torch = require('torch', 'the GPU decode', 'pip install torch')
        if output_format not in ('raw', 'decoded'):
            raise ValueError(f"output_format must be 'raw' or 'decoded', got {output_format!r}")
        if select not in SELECT_METHODS:
            raise ValueError(f'select must be one of {SELECT_METHODS}, got {select!r}')
        self.select = select
        grid, strides = make_anchors((int(input_hw[0]), int(input_hw[1])), STRIDES)
        self.num_anchors = int(grid.shape[0])
        self.top_k = max(1, min(int(top_k), self.num_anchors))
        self.score_threshold = float(score_threshold)
        self.output_format = output_format
        self.grid = torch.from_numpy(np.array(grid)).to(device)
        self.strides = torch.from_numpy(np.array(strides)).to(device)[:, None]
        self.anchor_index = torch.arange(self.num_anchors, dtype=torch.float32, device=device)

    def candidate_bytes(self, batch: int) -> int:
        """Bytes of the (B, K, 7) float32 candidates plus the (B,) int32 counts."""
        return int(batch) * (self.top_k * CANDIDATE_COLUMNS * 4 + 4)

    def __call__(self, output: Any) -> Tuple[Any, Any]:
        """Return (candidates (B, K, 7) float32, counts (B,) int32); see the module contract."""
        torch = self._torch
        rows = output.float()
        obj = rows[..., 4]
        cls = rows[..., 5:]
        cls_id = torch.argmax(cls, dim=-1, keepdim=True)      # the first maximal class
        score = obj * torch.gather(cls, -1, cls_id).squeeze(-1)
        passing = score >= self.score_threshold
        counts = passing.sum(dim=1, dtype=torch.int32)
        if self.select == 'compact':
            return self._compact(rows, score, cls_id, passing), counts
        masked = torch.where(passing, score, torch.full_like(score, -1.0))
        top, index = torch.topk(masked, self.top_k, dim=1, largest=True, sorted=True)
        picked = torch.gather(rows[..., :4], 1, index[..., None].expand(-1, -1, 4))
        x1y1, x2y2 = self._corners(picked, index)
        cand = torch.cat((x1y1, x2y2, top[..., None],
                          torch.gather(cls_id.squeeze(-1), 1, index)[..., None].float(),
                          self.anchor_index[index][..., None]), dim=-1)
        return cand, counts

    def _corners(self, boxes: Any, index: Any = None) -> Tuple[Any, Any]:
        """(x1, y1), (x2, y2) of ``boxes`` (..., 4); ``index``: their anchors (None: all)."""
        torch = self._torch
        if self.output_format == 'raw':
            grid = self.grid if index is None else self.grid[index]
            s = self.strides if index is None else self.strides[index]
            centre = (boxes[..., 0:2] + grid) * s
            size = torch.exp(torch.clamp(boxes[..., 2:4], max=20.0)) * s
        else:
            centre, size = boxes[..., 0:2], boxes[..., 2:4]
        half = size / 2
        return centre - half, centre + half

    def _compact(self, rows: Any, score: Any, cls_id: Any, passing: Any) -> Any:
        """Scatter every passing anchor's row to its rank among them (anchor order)."""
        torch = self._torch
        batch, k = rows.shape[0], self.top_k
        x1y1, x2y2 = self._corners(rows[..., :4])
        full = torch.cat((x1y1, x2y2, score[..., None], cls_id.float(),
                          self.anchor_index.expand(batch, -1)[..., None]), dim=-1)
        rank = torch.cumsum(passing, dim=1) - 1
        # the rank of a passing anchor, K (a spare row, dropped) for everything else
        dest = torch.where(passing & (rank < k), rank, torch.full_like(rank, k))
        out = torch.full((batch, k + 1, CANDIDATE_COLUMNS), -1.0, dtype=torch.float32,
                         device=rows.device)
        out.scatter_(1, dest[..., None].expand(-1, -1, CANDIDATE_COLUMNS), full)
        return out[:, :k]
