"""YOLOX decode, score threshold and top-k as PyTorch tensor math (GPU, inside a CUDA graph).

Contract of ``DecodeHead(input_hw, score_threshold, top_k, output_format, device)``:

- ``head(output)``: ``output`` (B, N, 5 + C) float16/float32 on the head's device, the YOLOX
  head of ``stages.postprocess`` (``raw``: columns 0-3 are p0..p3 decoded with the anchors of
  ``postprocess.make_anchors``; ``decoded``: columns 0-3 are already (cx, cy, w, h)).
  Returns ``(candidates, counts)``: ``candidates`` (B, K, 7) float32 with K = ``top_k``, the K
  best anchors by ``score = objectness * max class score`` in descending score order, each row
  (x1, y1, x2, y2, score, class id, anchor index) with the box in model-input pixels;
  ``counts`` (B,) int32, the number of anchors whose score reaches ``score_threshold`` (it may
  exceed K: the caller then falls back to the full output).
  Rows past ``counts`` (score below the threshold) carry score -1.
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


class DecodeHead:
    """Decode + threshold + top-k over a batch of YOLOX outputs (see the module contract)."""

    def __init__(self, input_hw: Tuple[int, int], score_threshold: float,
                 top_k: int = DEFAULT_TOP_K, output_format: str = 'raw',
                 device: Any = 'cpu') -> None:
        torch = self._torch = require('torch', 'the GPU decode', 'pip install torch')
        if output_format not in ('raw', 'decoded'):
            raise ValueError(f"output_format must be 'raw' or 'decoded', got {output_format!r}")
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
        masked = torch.where(passing, score, torch.full_like(score, -1.0))
        top, index = torch.topk(masked, self.top_k, dim=1, largest=True, sorted=True)
        picked = torch.gather(rows[..., :4], 1, index[..., None].expand(-1, -1, 4))
        if self.output_format == 'raw':
            s = self.strides[index]
            centre = (picked[..., 0:2] + self.grid[index]) * s
            size = torch.exp(torch.clamp(picked[..., 2:4], max=20.0)) * s
        else:
            centre, size = picked[..., 0:2], picked[..., 2:4]
        half = size / 2
        cand = torch.cat((centre - half, centre + half, top[..., None],
                          torch.gather(cls_id.squeeze(-1), 1, index)[..., None].float(),
                          self.anchor_index[index][..., None]), dim=-1)
        return cand, counts
