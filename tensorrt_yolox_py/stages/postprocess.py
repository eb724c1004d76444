"""Postprocessing stage: YOLOX decode, score threshold, class-aware NMS, map back to the image.

Contract:

- Input ``output``: the model output, (1, N, 5 + C) or (N, 5 + C) float32/float16, one row per
  anchor, anchors ordered stride 8, 16, 32 and row-major (y, x) inside each stride, as YOLOX
  exports them. Columns 4 (objectness) and 5: (class scores) are already sigmoid-ed.

  * ``raw`` form (YOLOX head, ``decode_in_inference=False``): columns 0-3 are p0..p3 with
    ``x = (p0 + gx) * s``, ``y = (p1 + gy) * s``, ``w = exp(p2) * s``, ``h = exp(p3) * s``
    (centre and size in model-input pixels).
  * ``decoded`` form: columns 0-3 are already (cx, cy, w, h) in model-input pixels.
  * ``auto`` decides once, from the first output, and logs its choice: raw offsets p0/p1 stay
    near [-1, 2] while decoded centres average half the input size. A forced ``raw`` or
    ``decoded`` is checked once with the same test and warns when the output looks otherwise.

- ``score = objectness * max class score``; the class is the arg-max class.
- Output ``Detections``: ``boxes`` float32 (K, 4) as (x1, y1, x2, y2) in SOURCE-image pixels
  (divided by the letterbox scale, clipped to [0, W] x [0, H]), ``scores`` float32 (K,),
  ``class_ids`` int32 (K,), sorted by descending score, K <= max_detections. Always arrays
  (possibly empty), never None.
- NMS convention (one, everywhere): greedy by descending score; a box is suppressed when its IoU
  with an already kept box of the SAME class is strictly greater than the threshold.
"""

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from .preprocess import LetterboxParams

LOGGER = logging.getLogger(__name__)
STRIDES: Tuple[int, ...] = (8, 16, 32)
#: Mean of column 0 above which ``auto`` treats an output as already decoded.
DECODED_MEAN_X_THRESHOLD = 4.0


@dataclass(frozen=True)
class Detections:
    """Detections in source-image pixels: boxes (K,4) xyxy, scores (K,), class_ids (K,)."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    @staticmethod
    def empty() -> 'Detections':
        """Return zero detections (arrays of length 0 with the contract's dtypes)."""
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32),
                          np.zeros((0,), np.int32))

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@lru_cache(maxsize=16)
def make_anchors(input_hw: Tuple[int, int], strides: Tuple[int, ...] = STRIDES
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Return (grid (N, 2) float32 of (gx, gy), stride (N,) float32) for an input size.

    N = sum over strides of (H // s) * (W // s); 18900 for 960x960. Cached; do not modify.
    """
    grids = []
    anchor_strides = []
    for stride in strides:
        gh, gw = input_hw[0] // stride, input_hw[1] // stride
        ys, xs = np.meshgrid(np.arange(gh, dtype=np.float32),
                             np.arange(gw, dtype=np.float32), indexing='ij')
        grids.append(np.stack((xs.ravel(), ys.ravel()), axis=1))
        anchor_strides.append(np.full(gh * gw, stride, dtype=np.float32))
    grid = np.concatenate(grids)
    stride_arr = np.concatenate(anchor_strides)
    grid.flags.writeable = False
    stride_arr.flags.writeable = False
    return grid, stride_arr


def decode_raw(rows: np.ndarray, grid: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """Decode raw head rows (M, >=4) with their anchors into (M, 4) xyxy input pixels."""
    s = strides[:, None]
    centre = (rows[:, 0:2] + grid) * s
    size = np.exp(np.minimum(rows[:, 2:4], 20.0)) * s
    return np.concatenate((centre - size / 2, centre + size / 2), axis=1)


def cxcywh_to_xyxy(rows: np.ndarray) -> np.ndarray:
    """Convert (M, >=4) rows of (cx, cy, w, h) into (M, 4) (x1, y1, x2, y2)."""
    half = rows[:, 2:4] / 2
    return np.concatenate((rows[:, 0:2] - half, rows[:, 0:2] + half), axis=1)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Return the IoU of one xyxy box (4,) with many (M, 4); zero-area unions give 0."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    widths = np.clip(boxes[:, 2] - boxes[:, 0], 0, None)
    areas = widths * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter, dtype=np.float64),
                     where=union > 0)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the (M, K) IoU matrix of xyxy boxes a (M, 4) and b (K, 4)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


#: Above this many boxes, NMS walks box by box instead of building the K x K IoU matrix.
NMS_MATRIX_LIMIT = 2048


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
        max_keep: Optional[int] = None) -> np.ndarray:
    """Greedy NMS; return kept indices (int64) in descending score order.

    A box is suppressed when its IoU with a kept box is strictly greater than iou_threshold.
    Ties in score keep the lower index first (stable sort). Up to NMS_MATRIX_LIMIT boxes, the
    IoU matrix is computed at once and the greedy pass only visits boxes that overlap another.
    """
    order = np.argsort(-scores, kind='stable')
    sorted_boxes = boxes[order].astype(np.float64, copy=False)
    count = order.size
    if count <= NMS_MATRIX_LIMIT:
        over = np.triu(pairwise_iou(sorted_boxes, sorted_boxes) > iou_threshold, k=1)
        keep = np.ones(count, dtype=bool)
        for i in np.flatnonzero(over.any(axis=1)):
            if keep[i]:
                keep &= ~over[i]
        kept = order[keep]
    else:
        kept_list = []
        remaining = np.arange(count)
        while remaining.size:
            best = remaining[0]
            kept_list.append(best)
            if max_keep is not None and len(kept_list) >= max_keep:
                break
            rest = remaining[1:]
            ious = box_iou(sorted_boxes[best], sorted_boxes[rest])
            remaining = rest[ious <= iou_threshold]
        kept = order[np.asarray(kept_list, dtype=np.int64)]
    if max_keep is not None:
        kept = kept[:max_keep]
    return kept.astype(np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                iou_threshold: float, max_keep: Optional[int] = None) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other.

    Offsets each class's boxes by a distinct amount larger than any coordinate, then runs
    ``nms`` once (the torchvision ``batched_nms`` trick).
    """
    if boxes.shape[0] == 0:
        return np.zeros((0,), np.int64)
    boxes64 = boxes.astype(np.float64)
    span = float(np.abs(boxes64).max()) * 2 + 1.0
    offsets = class_ids.astype(np.float64)[:, None] * span
    return nms(boxes64 + offsets, scores, iou_threshold, max_keep)


class Postprocessor:
    """Turn a model output into Detections in source-image pixels (see module contract)."""

    def __init__(self, input_hw: Tuple[int, int], score_threshold: float = 0.35,
                 nms_threshold: float = 0.7, max_detections: int = 100,
                 output_format: str = 'auto', strides: Sequence[int] = STRIDES) -> None:
        if output_format not in ('auto', 'raw', 'decoded'):
            raise ValueError(f"output_format must be auto, raw or decoded, got {output_format}")
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detections = int(max_detections)
        self.output_format = output_format
        self._format_checked = False
        self.strides = tuple(int(s) for s in strides)
        self.grid, self.anchor_strides = make_anchors(self.input_hw, self.strides)

    @property
    def num_anchors(self) -> int:
        """Number of anchors N expected in the model output."""
        return int(self.grid.shape[0])

    def resolve_format(self, rows: np.ndarray) -> str:
        """Return 'raw' or 'decoded' for this output, deciding once when format is 'auto'.

        A forced format is checked once against the same test, with a warning when the
        output looks like the other form (e.g. ``decoded`` forced on a raw-head model gives
        boxes piled up at the image's top-left corner).
        """
        if self.output_format == 'auto':
            mean_x = float(np.mean(rows[:, 0], dtype=np.float64))
            self.output_format = 'decoded' if mean_x > DECODED_MEAN_X_THRESHOLD else 'raw'
            LOGGER.info("model output detected as '%s' (mean of column 0 = %.2f)",
                        self.output_format, mean_x)
        elif not self._format_checked:
            self._format_checked = True
            mean_x = float(np.mean(rows[:, 0], dtype=np.float64))
            looks = 'decoded' if mean_x > DECODED_MEAN_X_THRESHOLD else 'raw'
            if looks != self.output_format:
                LOGGER.warning(
                    "output_format is '%s' but the model output looks '%s' (mean of column 0 "
                    "= %.2f; raw offsets stay near [-1, 2], decoded centres average half the "
                    "input size): detections will be wrong unless output_format is '%s' or "
                    "'auto'", self.output_format, looks, mean_x, looks)
        return self.output_format

    def __call__(self, output: np.ndarray, letterbox: LetterboxParams) -> Detections:
        """Decode, threshold, NMS and map ``output`` back through ``letterbox``."""
        rows = output[0] if output.ndim == 3 else output
        if rows.ndim != 2 or rows.shape[1] < 6:
            raise InputError(f'model output must be (1, N, 5+C), got {output.shape}')
        fmt = self.resolve_format(rows)
        if fmt == 'raw' and rows.shape[0] != self.num_anchors:
            raise InputError(f'raw output has {rows.shape[0]} anchors, expected '
                             f'{self.num_anchors} for input {self.input_hw}')
        # score = obj * cls <= obj, so anchors whose objectness is below the threshold can be
        # dropped before touching the class columns (most anchors, in practice).
        candidates = np.flatnonzero(rows[:, 4] >= self.score_threshold)
        cand_rows = rows[candidates].astype(np.float32)
        class_ids = np.argmax(cand_rows[:, 5:], axis=1)
        scores = cand_rows[:, 4] * cand_rows[np.arange(candidates.size), 5 + class_ids]
        passing = scores >= self.score_threshold
        if not passing.any():
            return Detections.empty()
        candidates, cand_rows = candidates[passing], cand_rows[passing]
        scores, class_ids = scores[passing], class_ids[passing]
        if fmt == 'raw':
            boxes = decode_raw(cand_rows, self.grid[candidates],
                               self.anchor_strides[candidates])
        else:
            boxes = cxcywh_to_xyxy(cand_rows)
        return self._finish(boxes, scores.astype(np.float32), class_ids.astype(np.int32),
                            letterbox)

    def from_candidates(self, candidates: np.ndarray, count: int,
                        letterbox: LetterboxParams) -> Detections:
        """NMS and letterbox mapping of decoded candidates (``backends.torch_decode``).

        ``candidates`` (K, 7) rows (x1, y1, x2, y2, score, class, anchor) of one image with
        ``count`` anchors passing the threshold (``count`` <= K; more is the caller's full
        output fallback). The rows are put back in anchor order, so NMS sees what ``__call__``
        would give it.
        """
        count = int(count)
        if count > candidates.shape[0]:
            raise InputError(f'{count} passing anchors but only {candidates.shape[0]} '
                             'candidates: postprocess the full output instead')
        if count == 0:
            return Detections.empty()
        rows = candidates[:count]
        rows = rows[np.argsort(rows[:, 6], kind='stable')]
        return self._finish(np.ascontiguousarray(rows[:, :4], dtype=np.float32),
                            rows[:, 4].astype(np.float32), rows[:, 5].astype(np.int32),
                            letterbox)

    def _finish(self, boxes: np.ndarray, cand_scores: np.ndarray, cand_classes: np.ndarray,
                letterbox: LetterboxParams) -> Detections:
        """Class-aware NMS, then boxes from model-input to source-image pixels."""
        keep = batched_nms(boxes, cand_scores, cand_classes, self.nms_threshold,
                           self.max_detections)
        boxes = boxes[keep] / np.float32(letterbox.scale)
        np.clip(boxes[:, 0::2], 0, letterbox.src_w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, letterbox.src_h, out=boxes[:, 1::2])
        return Detections(boxes.astype(np.float32), cand_scores[keep], cand_classes[keep])
