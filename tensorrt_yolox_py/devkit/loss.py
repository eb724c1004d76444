"""YOLOX training loss with SimOTA label assignment.

Inputs:

- ``head``: the training-mode output of ``YOLOX`` (``yolox.HeadOutput``): ``raw`` (B, N, 5 + C)
  with raw regression p0..p3, objectness logit and class logits; ``grids`` (N, 2) as (gx, gy);
  ``strides`` (N,). Predicted boxes decode as cx = (p0 + gx) * s, cy = (p1 + gy) * s,
  w = exp(p2) * s, h = exp(p3) * s, in model-input pixels.
- ``targets``: one entry per image, ``(boxes, labels)``: boxes (G, 4) float xyxy in model-input
  pixels (after the letterbox), labels (G,) int64 class ids in [0, C). G may be 0.

Assignment (SimOTA, as in YOLOX): candidate anchors of a ground truth are those whose centre
((g + 0.5) * s) lies within 1.5 strides of the box centre (the centre prior; a box whose
centre window holds no anchor gets its nearest anchor). Cost = BCE(sqrt(cls * obj), one-hot)
+ 3 * -log(IoU) (+ 1e6 outside the prior); each ground truth takes its dynamic k = max(1,
int(sum of its top-10 IoUs)) cheapest anchors; an anchor claimed twice goes to the cheaper
ground truth.

Loss = 5 * IoU loss (1 - IoU^2) on matched boxes + BCE(objectness, matched) over all anchors +
BCE(class, one-hot * IoU) on matched anchors (+ optional L1 on raw regression), each summed and
divided by the number of matched anchors (at least 1).
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from .._lazy import require

torch = require('torch', 'the YOLOX training loss', 'pip install torch')
F = torch.nn.functional

CENTER_RADIUS = 1.5
TOPK_CANDIDATES = 10


@dataclass
class Assignment:
    """SimOTA result for one image: foreground mask and the matched ground truth per anchor."""

    fg_mask: 'torch.Tensor'        # (N,) bool
    matched_gt: 'torch.Tensor'     # (num_fg,) int64 index into the image's ground truths
    matched_iou: 'torch.Tensor'    # (num_fg,) IoU of the prediction with its ground truth

    @property
    def num_fg(self) -> int:
        """Number of foreground anchors."""
        return int(self.matched_gt.numel())


def decode_boxes(raw: 'torch.Tensor', grids: 'torch.Tensor', strides: 'torch.Tensor'
                 ) -> 'torch.Tensor':
    """Decode raw regression (..., N, >=4) into (..., N, 4) boxes as (cx, cy, w, h)."""
    s = strides.unsqueeze(-1)
    xy = (raw[..., :2] + grids) * s
    wh = torch.exp(raw[..., 2:4].clamp(max=math.log(1e4))) * s
    return torch.cat([xy, wh], dim=-1)


def xyxy_to_cxcywh(boxes: 'torch.Tensor') -> 'torch.Tensor':
    """Convert (G, 4) xyxy boxes to (cx, cy, w, h)."""
    return torch.stack([(boxes[:, 0] + boxes[:, 2]) * 0.5, (boxes[:, 1] + boxes[:, 3]) * 0.5,
                        boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], dim=1)


def pairwise_iou_cxcywh(a: 'torch.Tensor', b: 'torch.Tensor') -> 'torch.Tensor':
    """Return the IoU matrix (len(a), len(b)) of boxes given as (cx, cy, w, h)."""
    a_tl, a_br = a[:, None, :2] - a[:, None, 2:] / 2, a[:, None, :2] + a[:, None, 2:] / 2
    b_tl, b_br = b[None, :, :2] - b[None, :, 2:] / 2, b[None, :, :2] + b[None, :, 2:] / 2
    wh = (torch.min(a_br, b_br) - torch.max(a_tl, b_tl)).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = a[:, None, 2] * a[:, None, 3]
    area_b = b[None, :, 2] * b[None, :, 3]
    return inter / (area_a + area_b - inter + 1e-9)


def iou_aligned_cxcywh(a: 'torch.Tensor', b: 'torch.Tensor') -> 'torch.Tensor':
    """Element-wise IoU of two (K, 4) (cx, cy, w, h) box sets."""
    tl = torch.max(a[:, :2] - a[:, 2:] / 2, b[:, :2] - b[:, 2:] / 2)
    br = torch.min(a[:, :2] + a[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2)
    wh = (br - tl).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter + 1e-9)


@torch.no_grad()
def simota_assign(pred_boxes: 'torch.Tensor', obj_logits: 'torch.Tensor',
                  cls_logits: 'torch.Tensor', grids: 'torch.Tensor', strides: 'torch.Tensor',
                  gt_boxes: 'torch.Tensor', gt_labels: 'torch.Tensor', num_classes: int
                  ) -> Assignment:
    """Assign anchors of one image to its ground truths (see the module docstring).

    ``pred_boxes`` (N, 4) cxcywh, ``obj_logits`` (N,), ``cls_logits`` (N, C), ``gt_boxes``
    (G, 4) cxcywh, ``gt_labels`` (G,). Computed in float32 without gradients.
    """
    n = pred_boxes.shape[0]
    device = pred_boxes.device
    g = gt_boxes.shape[0]
    if g == 0:
        return Assignment(torch.zeros(n, dtype=torch.bool, device=device),
                          torch.zeros(0, dtype=torch.long, device=device),
                          torch.zeros(0, device=device))
    pred_boxes, gt_boxes = pred_boxes.float(), gt_boxes.float()
    centers = (grids + 0.5) * strides[:, None]                          # (N, 2)
    radius = CENTER_RADIUS * strides                                    # (N,)
    delta = (centers[None] - gt_boxes[:, None, :2]).abs()              # (G, N, 2)
    in_center = (delta[..., 0] < radius[None]) & (delta[..., 1] < radius[None])
    empty = ~in_center.any(dim=1)
    if bool(empty.any()):
        dist = (centers[None] - gt_boxes[:, None, :2]).pow(2).sum(-1)   # (G, N)
        nearest = dist.argmin(dim=1)
        rows = torch.nonzero(empty).squeeze(1)
        in_center[rows, nearest[rows]] = True
    candidate = in_center.any(dim=0)                                    # (N,)
    cand_idx = torch.nonzero(candidate).squeeze(1)
    geometry = in_center[:, cand_idx]                                   # (G, M)
    ious = pairwise_iou_cxcywh(gt_boxes, pred_boxes[cand_idx])          # (G, M)
    iou_cost = -torch.log(ious + 1e-8)
    scores = (cls_logits[cand_idx].float().sigmoid()
              * obj_logits[cand_idx].float().sigmoid()[:, None]).sqrt()  # (M, C)
    onehot = F.one_hot(gt_labels.long(), num_classes).float()           # (G, C)
    probs = scores[None].expand(g, -1, -1).clamp(1e-6, 1 - 1e-6)
    cls_cost = F.binary_cross_entropy(probs, onehot[:, None].expand_as(probs),
                                      reduction='none').sum(-1)          # (G, M)
    cost = cls_cost + 3.0 * iou_cost + 1e6 * (~geometry).float()

    m = cand_idx.numel()
    matching = torch.zeros_like(cost, dtype=torch.bool)
    topk_ious, _ = torch.topk(ious, min(TOPK_CANDIDATES, m), dim=1)
    dynamic_ks = topk_ious.sum(1).int().clamp(min=1, max=m)                # (G,)
    _, pos = torch.topk(cost, int(dynamic_ks.max()), dim=1, largest=False)  # (G, kmax)
    take = torch.arange(pos.shape[1], device=device)[None] < dynamic_ks[:, None]
    matching.scatter_(1, pos, take)  # row g: its dynamic_ks[g] cheapest anchors
    multiple = matching.sum(0) > 1
    if bool(multiple.any()):
        best = cost[:, multiple].argmin(dim=0)
        matching[:, multiple] = False
        matching[best, torch.nonzero(multiple).squeeze(1)] = True
    fg_cand = matching.any(dim=0)                                      # (M,)
    matched_gt = matching[:, fg_cand].int().argmax(dim=0)
    matched_iou = (matching.float() * ious).sum(0)[fg_cand]
    fg_mask = torch.zeros(n, dtype=torch.bool, device=device)
    fg_mask[cand_idx[fg_cand]] = True
    return Assignment(fg_mask, matched_gt.long(), matched_iou)


class YoloxLoss:
    """Callable YOLOX loss: ``loss(head, targets) -> (total, components)``."""

    def __init__(self, num_classes: int, iou_weight: float = 5.0, use_l1: bool = False) -> None:
        self.num_classes = int(num_classes)
        self.iou_weight = float(iou_weight)
        self.use_l1 = bool(use_l1)

    def __call__(self, head, targets: Sequence[Tuple['torch.Tensor', 'torch.Tensor']]
                 ) -> Tuple['torch.Tensor', Dict[str, float]]:
        """Return the scalar loss and a dict of its detached components."""
        raw, grids, strides = head.raw, head.grids, head.strides
        if raw.shape[0] != len(targets):
            raise ValueError(f'{raw.shape[0]} predictions but {len(targets)} target entries')
        if raw.shape[2] != 5 + self.num_classes:
            raise ValueError(f'head has {raw.shape[2] - 5} classes, loss expects '
                             f'{self.num_classes}')
        raw = raw.float()
        boxes = decode_boxes(raw, grids, strides)                      # (B, N, 4)
        obj_targets = torch.zeros(raw.shape[:2], device=raw.device)
        fg_boxes: List['torch.Tensor'] = []
        reg_targets: List['torch.Tensor'] = []
        fg_cls: List['torch.Tensor'] = []
        cls_targets: List['torch.Tensor'] = []
        l1_preds: List['torch.Tensor'] = []
        l1_targets: List['torch.Tensor'] = []
        for b, (gt_xyxy, gt_labels) in enumerate(targets):
            gt_xyxy = gt_xyxy.to(raw.device, torch.float32).reshape(-1, 4)
            gt_labels = gt_labels.to(raw.device).long().reshape(-1)
            gt = xyxy_to_cxcywh(gt_xyxy)
            a = simota_assign(boxes[b].detach(), raw[b, :, 4].detach(),
                              raw[b, :, 5:].detach(), grids, strides, gt, gt_labels,
                              self.num_classes)
            if a.num_fg == 0:
                continue
            obj_targets[b, a.fg_mask] = 1.0
            fg_boxes.append(boxes[b][a.fg_mask])
            reg_targets.append(gt[a.matched_gt])
            fg_cls.append(raw[b, a.fg_mask, 5:])
            cls_targets.append(F.one_hot(gt_labels[a.matched_gt], self.num_classes).float()
                               * a.matched_iou[:, None])
            if self.use_l1:
                s = strides[a.fg_mask][:, None]
                g = gt[a.matched_gt]
                l1_targets.append(torch.cat([g[:, :2] / s - grids[a.fg_mask],
                                             torch.log(g[:, 2:] / s + 1e-8)], dim=1))
                l1_preds.append(raw[b, a.fg_mask, :4])
        num_fg = max(sum(t.shape[0] for t in reg_targets), 1)
        loss_obj = F.binary_cross_entropy_with_logits(raw[..., 4], obj_targets,
                                                      reduction='sum') / num_fg
        zero = raw.sum() * 0.0
        if reg_targets:
            pb, tb = torch.cat(fg_boxes), torch.cat(reg_targets)
            loss_iou = (1.0 - iou_aligned_cxcywh(pb, tb).pow(2)).sum() / num_fg
            loss_cls = F.binary_cross_entropy_with_logits(
                torch.cat(fg_cls), torch.cat(cls_targets), reduction='sum') / num_fg
        else:
            loss_iou = loss_cls = zero
        loss_l1 = (F.l1_loss(torch.cat(l1_preds), torch.cat(l1_targets), reduction='sum')
                   / num_fg if l1_preds else zero)
        total = self.iou_weight * loss_iou + loss_obj + loss_cls + loss_l1
        parts = {name: float(value.detach()) + 0.0  # + 0.0: no '-0.0' in logs
                 for name, value in (('loss', total), ('iou', loss_iou), ('obj', loss_obj),
                                     ('cls', loss_cls), ('l1', loss_l1))}
        parts['num_fg'] = float(num_fg) / len(targets)
        return total, parts
