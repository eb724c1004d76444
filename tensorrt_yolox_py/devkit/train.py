"""Train a YOLOX variant on a detection data set, then export it to ONNX.

The core of ``yolox_train`` (its command line is ``tools/train.py``).

Data contract:

- An item is ``(image, boxes, labels)``: ``image`` is a path (read with OpenCV, BGR) or an
  (H, W, 3) uint8 BGR array of any size; ``boxes`` (G, 4) float xyxy in that image's pixels;
  ``labels`` (G,) int class ids in [0, C). G may be 0.
- ``DetectionDataset`` applies the SAME letterbox as inference
  (``stages.preprocess.preprocess_cpu``), scales the boxes by the letterbox scale, then the
  light augmentation (horizontal flip, HSV jitter) on the resized region. It yields
  ``(tensor (3, H, W) float32 BGR 0-255, boxes (G, 4) float32 xyxy in model-input pixels,
  labels (G,) int64)``.
- ``load_coco(json, image_dir)`` reads a COCO detection file: category ids sorted ascending map
  to class ids 0..C-1, ``bbox`` [x, y, w, h] becomes xyxy, ``iscrowd`` annotations are skipped.

Training: AdamW (default) or SGD with per-iteration linear warm-up then cosine decay, no weight
decay on BatchNorm and bias parameters, mixed precision on CUDA (bf16 where supported, else fp16
with a gradient scaler), optional EMA of the weights, gradient clipping, validation mAP / mAP50
with pycocotools (boxes decoded by ``stages.postprocess.Postprocessor``), ``last.pt`` and
``best.pt`` checkpoints, and at the end an ONNX export of the best (EMA) weights plus a JSON
summary (``train_summary.json``) and a label file (``labels.txt``) in the output folder.
``--time-budget`` stops the loop after a wall-clock budget (the cosine schedule is compressed to
end with it), so a run fits a fixed slot; ``--cache`` keeps the letterboxed images in memory.
"""

import contextlib
import copy
import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._lazy import require
from ..image import SourceImage
from ..stages.preprocess import LetterboxParams, PAD_VALUE, preprocess_cpu
from .export import export_onnx, load_checkpoint
from .loss import YoloxLoss
from ..model.yolox import YOLOX, build_model, canonical_variant

torch = require('torch', 'YOLOX training', 'pip install "tensorrt_yolox_py[train]"')

LOG = logging.getLogger(__name__)
Item = Tuple[Union[str, os.PathLike, np.ndarray], np.ndarray, np.ndarray]


def read_image(image: Union[str, os.PathLike, np.ndarray]) -> np.ndarray:
    """Return an (H, W, 3) uint8 BGR image from a path or an array."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'image arrays must be (H, W, 3) uint8 BGR, got {image.shape} '
                             f'{image.dtype}')
        return image
    import cv2

    out = cv2.imread(os.fspath(image), cv2.IMREAD_COLOR)
    if out is None:
        raise FileNotFoundError(f'cannot read image {image}')
    return out


def hsv_jitter(image: np.ndarray, rng: np.random.Generator,
               gains: Tuple[float, float, float] = (0.015, 0.7, 0.4)) -> np.ndarray:
    """Randomly scale hue, saturation and value (YOLOv5/YOLOX style); return a new image."""
    import cv2

    r = rng.uniform(-1, 1, 3) * np.asarray(gains) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(0, 256, dtype=np.float32)
    lut_hue = ((x * r[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def letterbox_boxes(boxes: np.ndarray, lb: LetterboxParams, min_size: float = 1.0
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """Map source xyxy boxes into model-input pixels; return (boxes, keep mask)."""
    out = boxes.astype(np.float32).reshape(-1, 4) * np.float32(lb.scale)
    np.clip(out[:, 0::2], 0, lb.resized_w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, lb.resized_h, out=out[:, 1::2])
    keep = ((out[:, 2] - out[:, 0]) >= min_size) & ((out[:, 3] - out[:, 1]) >= min_size)
    return out, keep


class DetectionDataset(torch.utils.data.Dataset):
    """Items -> (letterboxed tensor, boxes in input pixels, labels); see the module contract.

    ``items`` is a sequence of items or a callable returning an iterable of items. Each image
    is letterboxed with ``preprocess_cpu`` first; the augmentation (flip, HSV) then acts on
    the resized region only (padding stays 114), which equals augmenting the source image
    because both operations commute with the bilinear resize, and costs far less. With
    ``cache=True`` the letterboxed uint8 regions are computed once (``build_cache``) and kept
    in memory (about 1.8 MB per image at 960x960).
    """

    def __init__(self, items: Union[Sequence[Item], Callable[[], Iterable[Item]]],
                 input_hw: Tuple[int, int], augment: bool = False, flip_prob: float = 0.5,
                 hsv_gains: Tuple[float, float, float] = (0.015, 0.7, 0.4),
                 min_box_size: float = 2.0) -> None:
        self.items = list(items() if callable(items) else items)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.augment = augment
        self.flip_prob = float(flip_prob)
        self.hsv_gains = tuple(float(g) for g in hsv_gains)
        self.min_box_size = float(min_box_size)
        self._cache: Optional[list] = None

    def __len__(self) -> int:
        return len(self.items)

    def letterboxed(self, index: int
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, LetterboxParams]:
        """Return (region uint8 (rh, rw, 3) BGR, boxes (G, 4) input px, labels, letterbox)."""
        if self._cache is not None:
            return self._cache[index]
        image, boxes, labels = self.items[index]
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if boxes.shape[0] != labels.shape[0]:
            raise ValueError(f'item {index}: {boxes.shape[0]} boxes but {labels.shape[0]} labels')
        tensor, lb = preprocess_cpu(SourceImage.from_array(read_image(image)), self.input_hw)
        # Exact: the letterbox of a uint8 image holds integer values.
        region = tensor[0, :, :lb.resized_h, :lb.resized_w].transpose(1, 2, 0).astype(np.uint8)
        boxes, keep = letterbox_boxes(boxes, lb, self.min_box_size)
        return region, boxes[keep], labels[keep], lb

    @classmethod
    def from_stream(cls, stream: Iterable[Item], input_hw: Tuple[int, int],
                    **kwargs: object) -> 'DetectionDataset':
        """Letterbox items as they come (e.g. from a scene generator), dropping the sources.

        Memory holds only the letterboxed regions (the cache is filled). The stored items keep
        the source boxes and labels (for validation metrics) with a placeholder instead of the
        image.
        """
        data = cls([], input_hw, **kwargs)
        cache: list = []
        stored: List[Item] = []
        for i, (image, boxes, labels) in enumerate(stream):
            data.items = [(image, boxes, labels)]
            cache.append(data.letterboxed(0))
            data.items = []
            stored.append((f'<stream item {i}>', np.asarray(boxes, np.float32).reshape(-1, 4),
                           np.asarray(labels, np.int64).reshape(-1)))
        data.items = stored
        data._cache = cache
        return data

    def build_cache(self, workers: int = 8) -> None:
        """Letterbox every image once (threads; OpenCV releases the GIL) and keep them."""
        from concurrent.futures import ThreadPoolExecutor

        self._cache = None
        with ThreadPoolExecutor(max(int(workers), 1)) as pool:
            cache = list(pool.map(self.letterboxed, range(len(self.items))))
        self._cache = cache

    def load(self, index: int, rng: Optional[np.random.Generator] = None
             ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, LetterboxParams]:
        """Return (tensor (1, 3, H, W), boxes (G, 4) input px, labels (G,), letterbox).

        ``rng`` given: apply the augmentation with it; None: the exact inference tensor.
        """
        region, boxes, labels, lb = self.letterboxed(index)
        if rng is not None:
            if rng.random() < self.flip_prob:
                region = region[:, ::-1]
                boxes = np.stack([lb.resized_w - boxes[:, 2], boxes[:, 1],
                                  lb.resized_w - boxes[:, 0], boxes[:, 3]], axis=1)
            if any(self.hsv_gains):
                region = hsv_jitter(np.ascontiguousarray(region), rng, self.hsv_gains)
        out = np.full((1, 3) + self.input_hw, PAD_VALUE, dtype=np.float32)
        out[0, :, :lb.resized_h, :lb.resized_w] = region.transpose(2, 0, 1)
        return out, boxes.astype(np.float32).reshape(-1, 4), labels, lb

    def __getitem__(self, index: int):
        """Return one (tensor (3, H, W), boxes, labels) training sample."""
        rng = None
        if self.augment:
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 31 - 1, (1,)).item()))
        tensor, boxes, labels, _ = self.load(index, rng)
        return (torch.from_numpy(tensor[0]), torch.from_numpy(boxes),
                torch.from_numpy(labels))


class _EvalView(torch.utils.data.Dataset):
    """Un-augmented view of a DetectionDataset yielding (tensor (3, H, W), letterbox)."""

    def __init__(self, data: DetectionDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        tensor, _, _, lb = self.data.load(index)
        return torch.from_numpy(tensor[0]), lb


def collate(batch: Sequence[tuple]):
    """Stack images; keep per-image targets as a list of (boxes, labels)."""
    images = torch.stack([b[0] for b in batch])
    return images, [(b[1], b[2]) for b in batch]


def _collate_eval(batch: Sequence[tuple]):
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def _worker_init(_worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(1)


def load_coco(json_path: Union[str, os.PathLike], image_dir: Optional[str] = None
              ) -> Tuple[List[Item], List[str]]:
    """Read a COCO detection file into items and class names (see the module contract)."""
    json_path = Path(json_path)
    with open(json_path, encoding='utf-8') as f:
        coco = json.load(f)
    for key in ('images', 'annotations', 'categories'):
        if key not in coco:
            raise ValueError(f"{json_path} is not a COCO detection file (no '{key}')")
    cats = sorted(coco['categories'], key=lambda c: c['id'])
    cat_to_class = {c['id']: i for i, c in enumerate(cats)}
    names = [str(c['name']) for c in cats]
    root = Path(image_dir) if image_dir else json_path.parent
    per_image: Dict[int, List[dict]] = {img['id']: [] for img in coco['images']}
    for ann in coco['annotations']:
        if ann.get('iscrowd', 0):
            continue
        per_image.setdefault(ann['image_id'], []).append(ann)
    items: List[Item] = []
    for img in coco['images']:
        anns = per_image.get(img['id'], [])
        boxes = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                           a['bbox'][1] + a['bbox'][3]] for a in anns],
                         dtype=np.float32).reshape(-1, 4)
        labels = np.array([cat_to_class[a['category_id']] for a in anns], dtype=np.int64)
        path = Path(img['file_name'])
        items.append((str(path if path.is_absolute() else root / path), boxes, labels))
    return items, names


class ModelEMA:
    """Exponential moving average of a model's weights (YOLOX's ramped decay)."""

    def __init__(self, model: YOLOX, decay: float = 0.9998, tau: float = 2000.0) -> None:
        self.ema = copy.deepcopy(model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.tau = float(tau)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: YOLOX) -> None:
        """Blend ``model``'s weights into the average."""
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        msd = model.state_dict()
        for key, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(msd[key].detach(), alpha=1 - d)
            else:
                value.copy_(msd[key])


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (all have CLI flags in ``main``)."""

    variant: str = 'yolox-s+-opt'
    act: Optional[str] = None
    num_classes: Optional[int] = None
    input_hw: Tuple[int, int] = (960, 960)
    export_hw: Optional[Tuple[int, int]] = None
    epochs: int = 30
    batch: int = 16
    lr: Optional[float] = None
    optimizer: str = 'adamw'
    weight_decay: Optional[float] = None
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.05
    ema: bool = True
    amp: str = 'auto'
    device: str = 'auto'
    workers: int = 4
    cache: bool = False
    time_budget_s: Optional[float] = None
    out: str = 'runs/yolox'
    seed: int = 0
    eval_interval: int = 1
    l1_epochs: int = 0
    no_aug_epochs: int = 0
    grad_clip: float = 10.0
    augment: bool = True
    export: bool = True
    log_interval: int = 50
    init: Optional[str] = None

    def resolved_lr(self) -> float:
        """Return ``lr`` or the optimizer's default for this batch size."""
        if self.lr is not None:
            return float(self.lr)
        return 0.01 * self.batch / 64 if self.optimizer == 'sgd' else 1e-3

    def resolved_weight_decay(self) -> float:
        """Return ``weight_decay`` or the optimizer's default."""
        if self.weight_decay is not None:
            return float(self.weight_decay)
        return 5e-4 if self.optimizer == 'sgd' else 0.05


def resolve_device(name: str) -> 'torch.device':
    """Return the torch device for 'auto', 'cpu', 'cuda' or 'cuda:N'."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f"device '{name}' requested but CUDA is not available")
    return device


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float,
          min_lr_ratio: float, time_fraction: float = 0.0) -> float:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to base * min ratio.

    The cosine's progress is the larger of the step fraction and ``time_fraction`` (the used
    part of a wall-clock budget), so a time-limited run still ends at the minimum rate.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max((step - warmup_steps) / span, float(time_fraction), 0.0), 1.0)
    min_lr = base_lr * min_lr_ratio
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: YOLOX, cfg: TrainConfig) -> 'torch.optim.Optimizer':
    """Build the optimizer with no weight decay on BatchNorm weights and biases."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            is_norm = isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
            (no_decay if is_norm or name == 'bias' else decay).append(param)
    groups = [{'params': decay, 'weight_decay': cfg.resolved_weight_decay()},
              {'params': no_decay, 'weight_decay': 0.0}]
    lr = cfg.resolved_lr()
    if cfg.optimizer == 'sgd':
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == 'adamw':
        return torch.optim.AdamW(groups, lr=lr, betas=(cfg.momentum, 0.999))
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got '{cfg.optimizer}'")


def coco_metrics(gt_items: Sequence[Item], detections: Sequence, class_names: Sequence[str]
                 ) -> Dict[str, object]:
    """Return mAP (0.5:0.95), mAP50 and per-class AP50 through ``evaluation.coco``.

    ``detections[i]`` is a ``stages.postprocess.Detections`` for ``gt_items[i]`` (boxes in
    source pixels). Only the items' boxes and labels are used (images are not read); the
    ground truth follows ``evaluation.coco``'s convention (category id = class id + 1).
    """
    from ..evaluation.coco import CocoEvaluator

    images, anns = [], []
    for i, (image, boxes, labels) in enumerate(gt_items):
        h, w = image.shape[:2] if isinstance(image, np.ndarray) else (0, 0)
        images.append({'id': i + 1, 'width': int(w), 'height': int(h)})
        for box, label in zip(np.asarray(boxes, np.float64).reshape(-1, 4),
                              np.asarray(labels).reshape(-1)):
            bw, bh = box[2] - box[0], box[3] - box[1]
            anns.append({'id': len(anns) + 1, 'image_id': i + 1, 'category_id': int(label) + 1,
                         'bbox': [float(box[0]), float(box[1]), float(bw), float(bh)],
                         'area': float(bw * bh), 'iscrowd': 0})
    evaluator = CocoEvaluator({'images': images, 'annotations': anns, 'categories': [
        {'id': k + 1, 'name': str(name)} for k, name in enumerate(class_names)]})
    for i, det in enumerate(detections[:len(images)]):
        evaluator.add(i + 1, det)
    result = evaluator.evaluate([img['id'] for img in images])
    return {'mAP': result.mAP, 'mAP50': result.mAP50, 'num_detections': result.num_detections,
            'num_ground_truths': len(anns), 'per_class_AP50': result.per_class_AP50}


class Trainer:
    """Owns the model, optimizer, EMA and data; ``fit()`` runs the whole schedule."""

    def __init__(self, cfg: TrainConfig, train_items: Union[Sequence[Item], DetectionDataset],
                 val_items: Union[Sequence[Item], DetectionDataset, None] = None,
                 class_names: Optional[Sequence[str]] = None) -> None:
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.class_names = list(class_names) if class_names else None
        num_classes = cfg.num_classes or (len(self.class_names) if self.class_names else None)
        if not num_classes:
            source = (train_items.items if isinstance(train_items, DetectionDataset)
                      else train_items)
            labels = [int(x) for _, _, lab in source for x in np.asarray(lab).reshape(-1)]
            num_classes = (max(labels) + 1) if labels else 1
        self.num_classes = int(num_classes)
        if not self.class_names:
            self.class_names = [f'class{i}' for i in range(self.num_classes)]
        if len(self.class_names) != self.num_classes:
            raise ValueError(f'{len(self.class_names)} class names for {self.num_classes} '
                             'classes')
        if cfg.init:
            self.model = load_checkpoint(cfg.init)
            if self.model.num_classes != self.num_classes:
                raise ValueError(f'--init checkpoint has {self.model.num_classes} classes, '
                                 f'data has {self.num_classes}')
        else:
            self.model = build_model(canonical_variant(cfg.variant), self.num_classes, cfg.act)
        self.model.to(self.device)
        if self.device.type == 'cuda':
            self.model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        self.train_set = self._dataset(train_items, cfg.augment)
        self.val_set = self._dataset(val_items or [], False)
        if cfg.cache:
            t0 = time.time()
            for data in (self.train_set, self.val_set):
                if data._cache is None:
                    data.build_cache(max(cfg.workers, 1))
            LOG.info('cached %d letterboxed images in %.1f s', len(self.train_set)
                     + len(self.val_set), time.time() - t0)
        self.loss_fn = YoloxLoss(self.num_classes)
        self.optimizer = make_optimizer(self.model, cfg)
        self.ema = ModelEMA(self.model) if cfg.ema else None
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.amp_dtype == torch.float16)
        self.step_count = 0
        self.history: List[Dict[str, object]] = []
        self.out = Path(cfg.out)
        self._loader: Optional['torch.utils.data.DataLoader'] = None

    def _dataset(self, items: Union[Sequence[Item], DetectionDataset], augment: bool
                 ) -> DetectionDataset:
        if isinstance(items, DetectionDataset):
            if items.input_hw != tuple(self.cfg.input_hw):
                raise ValueError(f'data set letterboxes to {items.input_hw}, training input '
                                 f'is {tuple(self.cfg.input_hw)}')
            items.augment = augment
            return items
        return DetectionDataset(items, self.cfg.input_hw, augment=augment)

    @property
    def val_items(self) -> List[Item]:
        """The validation items."""
        return self.val_set.items

    def _amp_dtype(self) -> Optional['torch.dtype']:
        mode = self.cfg.amp
        if mode not in ('auto', 'off', 'bf16', 'fp16'):
            raise ValueError(f"amp must be auto, off, bf16 or fp16, got '{mode}'")
        if self.device.type != 'cuda' or mode == 'off':
            return None
        if mode == 'fp16' or (mode == 'auto' and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16

    def autocast(self):
        """Return the mixed-precision context (a no-op without CUDA AMP)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def loader(self) -> 'torch.utils.data.DataLoader':
        """Return the shuffling training DataLoader (workers persist across epochs)."""
        if self._loader is None or self._loader.dataset.augment != self.train_set.augment:
            gen = torch.Generator()
            gen.manual_seed(self.cfg.seed)
            workers = int(self.cfg.workers)
            self._loader = torch.utils.data.DataLoader(
                self.train_set, batch_size=self.cfg.batch, shuffle=True,
                num_workers=workers, collate_fn=collate, drop_last=False,
                pin_memory=self.device.type == 'cuda', generator=gen,
                worker_init_fn=_worker_init if workers else None,
                persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
        return self._loader

    def train_step(self, images: 'torch.Tensor', targets: Sequence[tuple],
                   lr: Optional[float] = None) -> Dict[str, float]:
        """One optimisation step on a batch; return the loss components."""
        self.model.train()
        if lr is not None:
            for group in self.optimizer.param_groups:
                group['lr'] = lr
        images = images.to(self.device, non_blocking=True)
        if self.device.type == 'cuda':
            images = images.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            head = self.model(images)
        loss, parts = self.loss_fn(head, targets)
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            LOG.warning('non-finite loss %s at step %d: step skipped', parts, self.step_count)
            return parts
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step_count += 1
        return parts

    def eval_model(self) -> YOLOX:
        """Return the model used for validation and export (EMA when enabled)."""
        return self.ema.ema if self.ema is not None else self.model

    @torch.no_grad()
    def predict(self, items: Optional[Sequence[Item]] = None, score_threshold: float = 0.001,
                nms_threshold: float = 0.65, batch: Optional[int] = None) -> list:
        """Run the eval model on items (default: the validation set); return Detections.

        One ``stages.postprocess.Detections`` per item, in source-image pixels.
        """
        from ..stages.postprocess import Postprocessor

        data = self.val_set if items is None else DetectionDataset(items, self.cfg.input_hw)
        post = Postprocessor(self.cfg.input_hw, score_threshold, nms_threshold, 100, 'raw')
        model = self.eval_model().eval()
        workers = min(int(self.cfg.workers), 8)
        loader = torch.utils.data.DataLoader(
            _EvalView(data), batch_size=batch or self.cfg.batch, shuffle=False,
            num_workers=workers, collate_fn=_collate_eval,
            worker_init_fn=_worker_init if workers else None)
        results = []
        for tensor, lbs in loader:
            tensor = tensor.to(self.device, non_blocking=True)
            with self.autocast():
                out = model(tensor)
            out = out.float().cpu().numpy()
            results.extend(post(out[k:k + 1], lb) for k, lb in enumerate(lbs))
        return results

    def evaluate(self, items: Optional[Sequence[Item]] = None) -> Dict[str, object]:
        """Return pycocotools mAP / mAP50 of the eval model on ``items`` (default: val set)."""
        gt_items = self.val_items if items is None else list(items)
        if not gt_items:
            return {}
        return coco_metrics(gt_items, self.predict(items), self.class_names)

    def checkpoint(self, epoch: int, metrics: Dict[str, object], with_optimizer: bool
                   ) -> Dict[str, object]:
        """Return the checkpoint dict (see ``export.load_checkpoint``).

        With ``with_optimizer`` (``last.pt``, for ``--init``) it holds the raw weights, the EMA
        weights and the optimizer state; without (``best.pt``) only the weights used for
        evaluation and export (the EMA when enabled), which halves its size.
        """
        def cpu_state(module: YOLOX) -> Dict[str, 'torch.Tensor']:
            return {k: v.detach().float().cpu() if v.dtype.is_floating_point else v.cpu()
                    for k, v in module.state_dict().items()}

        ckpt: Dict[str, object] = {
            'config': self.model.config(),
            'model': cpu_state(self.model if with_optimizer else self.eval_model()),
            'ema': cpu_state(self.ema.ema) if self.ema and with_optimizer else None,
            'epoch': int(epoch), 'class_names': list(self.class_names),
            'metrics': json.loads(json.dumps(metrics)), 'input_hw': list(self.cfg.input_hw)}
        if with_optimizer:
            ckpt['optimizer'] = self.optimizer.state_dict()
        return ckpt

    def save(self, path: Path, epoch: int, metrics: Dict[str, object],
             with_optimizer: bool = False) -> Path:
        """Write a checkpoint atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + '.tmp')
        torch.save(self.checkpoint(epoch, metrics, with_optimizer), tmp)
        os.replace(tmp, path)
        return path

    def fit(self) -> Dict[str, object]:
        """Run the epochs (or until the time budget), validate, checkpoint, export.

        Returns the summary dict also written to ``train_summary.json``.
        """
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        steps_per_epoch = max(math.ceil(len(self.train_set) / cfg.batch), 1)
        total = steps_per_epoch * cfg.epochs
        warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
        base_lr = cfg.resolved_lr()
        budget = float(cfg.time_budget_s) if cfg.time_budget_s else None
        best_epoch, best_value = None, -1.0
        start = time.time()
        stopped_early = False
        LOG.info('training %s (%d classes, act %s) on %s: %d images, %d epochs x %d steps, '
                 'batch %d, %s lr %.2e, amp %s, ema %s, time budget %s s', self.model.variant,
                 self.num_classes, self.model.act, self.device, len(self.train_set),
                 cfg.epochs, steps_per_epoch, cfg.batch, cfg.optimizer, base_lr,
                 self.amp_dtype, cfg.ema, budget)
        for epoch in range(cfg.epochs):
            if cfg.no_aug_epochs and epoch >= cfg.epochs - cfg.no_aug_epochs:
                self.train_set.augment = False
            self.loss_fn.use_l1 = bool(cfg.l1_epochs) and epoch >= cfg.epochs - cfg.l1_epochs
            sums: Dict[str, float] = {}
            count = 0
            t0 = time.time()
            for images, targets in self.loader():
                frac = (time.time() - start) / budget if budget else 0.0
                lr = lr_at(self.step_count, total, warmup, base_lr, cfg.min_lr_ratio, frac)
                parts = self.train_step(images, targets, lr)
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value
                count += 1
                if cfg.log_interval and self.step_count % cfg.log_interval == 0:
                    LOG.info('epoch %d step %d/%d lr %.2e loss %.4f (iou %.3f obj %.3f cls '
                             '%.3f) fg/img %.1f', epoch + 1, self.step_count, total, lr,
                             parts['loss'], parts['iou'], parts['obj'], parts['cls'],
                             parts['num_fg'])
                if budget and time.time() - start >= budget:
                    stopped_early = True
                    break
            seconds = time.time() - t0
            record: Dict[str, object] = {k: v / max(count, 1) for k, v in sums.items()}
            record.update(epoch=epoch + 1, steps=count, seconds=round(seconds, 2),
                          images_per_s=round(count * cfg.batch / max(seconds, 1e-9), 1))
            last = stopped_early or epoch + 1 == cfg.epochs
            if len(self.val_set) and (last or (cfg.eval_interval
                                               and (epoch + 1) % cfg.eval_interval == 0)):
                metrics = self.evaluate()
                record['val'] = metrics
                if float(metrics.get('mAP50', 0.0)) > best_value:
                    best_value = float(metrics.get('mAP50', 0.0))
                    best_epoch = epoch + 1
                    self.save(self.out / 'best.pt', epoch + 1, metrics)
            self.history.append(record)
            val = record.get('val')
            LOG.info('epoch %d/%d: loss %.4f, %.1f img/s%s', epoch + 1, cfg.epochs,
                     record.get('loss', float('nan')), record['images_per_s'],
                     f", val mAP50 {val.get('mAP50', 0):.4f} mAP {val.get('mAP', 0):.4f}"
                     if val else '')
            self.save(self.out / 'last.pt', epoch + 1, record, with_optimizer=True)
            if stopped_early:
                LOG.info('time budget of %.0f s reached after epoch %d', budget, epoch + 1)
                break
        if best_epoch is None:
            best_epoch = len(self.history)
            self.save(self.out / 'best.pt', best_epoch,
                      self.history[-1] if self.history else {})
        summary = self.summary(time.time() - start, best_epoch, stopped_early)
        if cfg.export:
            summary['onnx'] = self.export_best()
        with open(self.out / 'labels.txt', 'w', encoding='utf-8') as f:
            f.write('\n'.join(self.class_names) + '\n')
        with open(self.out / 'train_summary.json', 'w', encoding='utf-8') as f:
            json.dump(summary, f, indent=2)
        return summary

    def export_best(self) -> str:
        """Export ``best.pt`` (EMA weights when present) to ``model.onnx``; return the path."""
        model = load_checkpoint(str(self.out / 'best.pt'))
        export_hw = tuple(self.cfg.export_hw or self.cfg.input_hw)
        return export_onnx(model, str(self.out / 'model.onnx'), export_hw,
                           extra_metadata={'labels': ','.join(self.class_names)})

    def summary(self, seconds: float, best_epoch: Optional[int], stopped_early: bool
                ) -> Dict[str, object]:
        """Return a JSON-friendly record of this run (config, history, machine)."""
        device_name = (torch.cuda.get_device_name(self.device) if self.device.type == 'cuda'
                       else platform.processor() or platform.machine())
        cfg = asdict(self.cfg)
        cfg['lr'] = self.cfg.resolved_lr()
        cfg['weight_decay'] = self.cfg.resolved_weight_decay()
        best = next((h for h in self.history if h['epoch'] == best_epoch), None)
        return {'config': cfg, 'model': self.model.config(), 'class_names': self.class_names,
                'train_images': len(self.train_set), 'val_images': len(self.val_set),
                'history': self.history, 'best_epoch': best_epoch,
                'best_val': best.get('val') if best else None, 'steps': self.step_count,
                'stopped_by_time_budget': stopped_early,
                'train_seconds': round(seconds, 1), 'device': device_name,
                'torch': torch.__version__, 'python': platform.python_version(),
                'date': time.strftime('%Y-%m-%d %H:%M:%S %z'), 'command': ' '.join(sys.argv)}


def split_items(items: Sequence[Item], val_fraction: float, seed: int
                ) -> Tuple[List[Item], List[Item]]:
    """Split items into (train, val) by a seeded permutation."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f'val fraction must be in [0, 1), got {val_fraction}')
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = int(round(len(items) * val_fraction))
    val = [items[i] for i in sorted(order[:n_val])]
    train = [items[i] for i in sorted(order[n_val:])]
    return train, val
