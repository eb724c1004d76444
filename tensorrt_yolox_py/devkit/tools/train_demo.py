"""Train the bundled demo model on generated scenes within a wall-clock budget.

A thin wrapper over ``model.train.Trainer`` (model, loss, optimizer, EMA, AMP, validation and
checkpoint format are the Trainer's) that feeds it from the scene generator instead of a COCO
folder, because the bundled model is trained on a GPU machine that has no data set on disk:

- worker processes render training frames (``data.dataset``, resized to the model input) while
  the GPU trains; every frame goes into a GPU-resident uint8 store, and each batch is drawn
  uniformly from the frames rendered so far (the pool grows to ``--train-frames``);
- augmentation on the GPU: horizontal flip, brightness / contrast / per-channel gain;
- the learning rate follows a warm-up + cosine schedule over the TIME budget (``--minutes``),
  not over epochs, so a run ends on time with the learning rate annealed;
- at the end: pycocotools mAP / mAP50 of the EMA weights on a held-out split (disjoint seeds),
  ``weights.pt`` (the EMA state dict, fp32) and ``train_summary.json`` in ``--out``; ONNX
  export with ``--export`` (needs onnx + onnxsim; the GPU machine lacks onnxsim, so the bundled
  model is exported afterwards with ``yolox_train_demo --export-only``).

``--width`` below the variant's 0.5 registers a narrower copy of the variant (same depth,
activation, stem, blocks and head design) under the name ``<variant>-w<width>``; the bundled
demo is ``yolox-s+-opt-w0.25`` (YOLOX-S+-Opt at width 0.25), because the full-width S+ (14.8 M
parameters, 57 MiB fp32) does not fit the package's size budget.
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..._lazy import require
from ..dataset import TRAIN_SEED, VAL_SEED, Frame, frame_seed, generate_frames
from ..scene import SceneConfig
from ..sprites import CLASS_NAMES

LOG = logging.getLogger(__name__)


def register_width_variant(variant: str, width: float) -> str:
    """Return the name of ``variant`` at ``width``, registering it in the model registry."""
    yolox = require('tensorrt_yolox_py.model.yolox', 'the demo model training',
                    'pip install torch')
    base = yolox.canonical_variant(variant)
    spec = yolox.VARIANTS[base]
    if abs(spec.width - width) < 1e-9:
        return base
    name = f'{base}-w{width:g}'
    if name not in yolox.VARIANTS:
        yolox.VARIANTS[name] = dataclasses.replace(
            spec, width=float(width), description=f'{spec.description}; width {width:g}')
    return name


def variant_from_weights(path: str) -> Dict[str, object]:
    """Return the model config stored beside ``weights.pt`` (registering its width variant)."""
    torch = require('torch', 'loading demo weights', 'pip install torch')
    blob = torch.load(path, map_location='cpu', weights_only=True)
    cfg = blob['config']
    register_width_variant(str(cfg['base_variant']), float(cfg['width']))
    return blob


class FramePool:
    """Frames rendered by worker processes in the background, stored on the training device."""

    def __init__(self, seeds: Sequence[int], input_hw: Tuple[int, int], workers: int,
                 device: str, config: SceneConfig) -> None:
        torch = require('torch', 'the demo model training', 'pip install torch')
        self.torch = torch
        self.capacity = len(seeds)
        h, w = input_hw
        self.images = torch.empty((self.capacity, h, w, 3), dtype=torch.uint8, device=device)
        self.targets: List[Tuple[np.ndarray, np.ndarray]] = []
        self.count = 0
        self.error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._fill, args=(seeds, input_hw, workers, config), daemon=True)
        self._thread.start()

    def _fill(self, seeds: Sequence[int], input_hw: Tuple[int, int], workers: int,
              config: SceneConfig) -> None:
        try:
            for frame in generate_frames(seeds, input_hw, workers, config, chunksize=2,
                                         start_method='spawn'):
                tensor = self.torch.from_numpy(frame.image)
                self.images[self.count].copy_(tensor, non_blocking=False)
                with self._lock:
                    self.targets.append((frame.boxes, frame.labels))
                    self.count += 1
        except BaseException as exc:  # noqa: B902 - re-raised in the training thread
            self.error = exc

    def wait_for(self, n: int, timeout: float) -> int:
        """Block until ``n`` frames exist (or the pool is full / failed); return the count."""
        end = time.time() + timeout
        while self.count < min(n, self.capacity) and time.time() < end:
            if self.error is not None:
                raise RuntimeError(f'frame generation failed: {self.error!r}')
            time.sleep(0.05)
        return self.count

    def batch(self, size: int, rng: np.random.Generator):
        """Return (uint8 images (B, H, W, 3) on the device, targets) drawn uniformly."""
        if self.error is not None:
            raise RuntimeError(f'frame generation failed: {self.error!r}')
        with self._lock:
            n = self.count
            idx = rng.integers(0, n, size)
            targets = [self.targets[i] for i in idx]
        index = self.torch.as_tensor(idx, device=self.images.device)
        return self.images.index_select(0, index), targets


def augment(images, targets, rng: np.random.Generator, strength: float = 1.0):
    """Flip and photometric jitter on the device; return float (B, 3, H, W) and targets."""
    torch = require('torch', 'the demo model training', 'pip install torch')
    b, h, w, _ = images.shape
    x = images.permute(0, 3, 1, 2).float()
    flip = rng.random(b) < 0.5
    out_targets = []
    for i in range(b):
        boxes, labels = targets[i]
        boxes = boxes.copy()
        if flip[i]:
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        out_targets.append((torch.from_numpy(boxes), torch.from_numpy(labels)))
    if flip.any():
        sel = torch.as_tensor(np.flatnonzero(flip), device=x.device)
        x[sel] = x[sel].flip(-1)
    if strength > 0:
        dev = x.device
        contrast = torch.as_tensor(rng.uniform(1 - 0.3 * strength, 1 + 0.3 * strength, b),
                                   dtype=torch.float32, device=dev).view(b, 1, 1, 1)
        bright = torch.as_tensor(rng.uniform(-25 * strength, 25 * strength, b),
                                 dtype=torch.float32, device=dev).view(b, 1, 1, 1)
        gains = torch.as_tensor(rng.uniform(1 - 0.1 * strength, 1 + 0.1 * strength, (b, 3)),
                                dtype=torch.float32, device=dev).view(b, 3, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean + bright) * gains
        x = x.clamp_(0, 255)
    return x, out_targets


def lr_at_time(progress: float, base_lr: float, warmup: float, min_ratio: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction of the budget, then cosine decay."""
    if progress < warmup:
        return base_lr * max(progress / warmup, 0.01)
    p = min((progress - warmup) / max(1 - warmup, 1e-9), 1.0)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def save_weights(trainer, path: Path, extra: Dict[str, object]) -> None:
    """Write the EMA (or plain) weights and the model config atomically."""
    torch = require('torch', 'the demo model training', 'pip install torch')
    model = trainer.eval_model()
    blob = {'config': dict(model.config(), **extra),
            'model': {k: v.detach().float().cpu() if v.dtype.is_floating_point else v.cpu()
                      for k, v in model.state_dict().items()}}
    tmp = path.with_suffix('.tmp')
    torch.save(blob, tmp)
    os.replace(tmp, path)


def export_weights(weights: str, out_path: str, input_hw: Tuple[int, int]) -> str:
    """Export ``weights.pt`` to ONNX (simplified, the package's model contract)."""
    blob = variant_from_weights(weights)
    yolox = require('tensorrt_yolox_py.model.yolox', 'ONNX export', 'pip install torch')
    export = require('tensorrt_yolox_py.devkit.export', 'ONNX export', 'pip install torch')
    cfg = blob['config']
    model = yolox.build_model(str(cfg['variant']), int(cfg['num_classes']), str(cfg['act']))
    model.load_state_dict(blob['model'])
    return export.export_onnx(model, out_path, input_hw,
                              extra_metadata={'labels': ','.join(CLASS_NAMES),
                                              'trained_on': 'tensorrt_yolox_py generated '
                                                            'scenes'})


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    p = argparse.ArgumentParser(
        prog='yolox_train_demo', description='Train the demo YOLOX model on generated driving '
        'scenes within a time budget (see the module docstring).')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--variant', default='yolox-s+-opt')
    p.add_argument('--width', type=float, default=0.25, help='width multiplier')
    p.add_argument('--input-size', nargs=2, type=int, default=(640, 960), metavar=('H', 'W'))
    p.add_argument('--scene-size', nargs=2, type=int, default=(1280, 1920),
                   metavar=('H', 'W'), help='generator frame size (resized to the input)')
    p.add_argument('--minutes', type=float, default=7.0, help='training time budget')
    p.add_argument('--max-steps', type=int, default=0, help='stop after N steps (0: time)')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--warmup', type=float, default=0.05, help='fraction of the budget')
    p.add_argument('--train-frames', type=int, default=12000, help='frames to render')
    p.add_argument('--start-frames', type=int, default=1000,
                   help='frames rendered before the first step')
    p.add_argument('--val-frames', type=int, default=300)
    p.add_argument('--workers', type=int, default=0, help='render processes (0: cores - 2)')
    p.add_argument('--device', default='auto')
    p.add_argument('--amp', default='auto', choices=('auto', 'off', 'bf16', 'fp16'))
    p.add_argument('--log-every', type=float, default=20.0, help='seconds between log lines')
    p.add_argument('--save-every', type=float, default=90.0, help='seconds between saves')
    p.add_argument('--export', action='store_true', help='export ONNX at the end')
    p.add_argument('--export-only', default=None, metavar='WEIGHTS',
                   help='only export this weights.pt to <out>/model.onnx and exit')
    p.add_argument('--seed', type=int, default=0)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point ``yolox_train_demo``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    input_hw = (int(args.input_size[0]), int(args.input_size[1]))
    if args.export_only:
        path = export_weights(args.export_only, str(out / 'model.onnx'), input_hw)
        print(f'exported {path}')
        return 0
    t_start = time.time()
    torch = require('torch', 'the demo model training', 'pip install torch')
    train_mod = require('tensorrt_yolox_py.devkit.train', 'the demo model training',
                        'pip install torch')
    variant = register_width_variant(args.variant, args.width)
    workers = args.workers or max((os.cpu_count() or 2) - 2, 1)
    config = SceneConfig(width=int(args.scene_size[1]), height=int(args.scene_size[0]))
    LOG.info('rendering %d validation frames with %d workers', args.val_frames, workers)
    val: List[Frame] = list(generate_frames(
        [frame_seed(VAL_SEED, i) for i in range(args.val_frames)], input_hw, workers, config))
    val_items = [(f.image, f.boxes, f.labels) for f in val]
    cfg = train_mod.TrainConfig(
        variant=variant, num_classes=len(CLASS_NAMES), input_hw=input_hw, batch=args.batch,
        lr=args.lr, device=args.device, amp=args.amp, out=str(out), seed=args.seed,
        workers=0, export=False)
    trainer = train_mod.Trainer(cfg, val_items[:1], val_items, list(CLASS_NAMES))
    device = trainer.device
    pool = FramePool([frame_seed(TRAIN_SEED, i) for i in range(args.train_frames)], input_hw,
                     workers, str(device), config)
    pool.wait_for(args.start_frames, timeout=600)
    LOG.info('%d frames ready after %.1f s; training %s (%d params) on %s for %.1f min',
             pool.count, time.time() - t_start, variant,
             sum(p.numel() for p in trainer.model.parameters()), device, args.minutes)
    rng = np.random.default_rng(args.seed)
    budget = args.minutes * 60.0
    t0 = time.time()
    last_log = last_save = t0
    history: List[Dict[str, object]] = []
    sums: Dict[str, float] = {}
    count = images_seen = step = 0
    extra = {'base_variant': args.variant, 'width': args.width, 'input_hw': list(input_hw)}
    while True:
        elapsed = time.time() - t0
        progress = elapsed / budget
        if progress >= 1.0 or (args.max_steps and step >= args.max_steps):
            break
        lr = lr_at_time(progress, args.lr, args.warmup, 0.05)
        images, targets = pool.batch(args.batch, rng)
        x, targets = augment(images, targets, rng)
        parts = trainer.train_step(x, targets, lr)
        step += 1
        images_seen += args.batch
        for key, value in parts.items():
            sums[key] = sums.get(key, 0.0) + float(value)
        count += 1
        now = time.time()
        if now - last_log >= args.log_every:
            rec = {k: v / count for k, v in sums.items()}
            rec.update(step=step, seconds=round(now - t0, 1), lr=lr, frames=pool.count,
                       images_per_s=round(images_seen / (now - t0), 1))
            history.append(rec)
            LOG.info('step %d t %.0fs lr %.2e loss %.3f (iou %.3f obj %.3f cls %.3f) '
                     '%.0f img/s, %d frames', step, now - t0, lr, rec.get('loss', 0),
                     rec.get('iou', 0), rec.get('obj', 0), rec.get('cls', 0),
                     rec['images_per_s'], pool.count)
            sums, count, last_log = {}, 0, now
        if now - last_save >= args.save_every:
            save_weights(trainer, out / 'weights.pt', extra)
            last_save = now
    train_seconds = time.time() - t0
    save_weights(trainer, out / 'weights.pt', extra)
    LOG.info('trained %d steps (%d images) in %.0f s; evaluating on %d held-out frames', step,
             images_seen, train_seconds, len(val_items))
    metrics = trainer.evaluate()
    LOG.info('held-out mAP50 %.4f mAP %.4f', metrics.get('mAP50', 0), metrics.get('mAP', 0))
    summary = {
        'command': 'yolox_train_demo ' + ' '.join(sys.argv[1:] if argv is None else argv),
        'variant': variant, 'base_variant': args.variant, 'width': args.width,
        'act': trainer.model.act, 'params': sum(p.numel() for p in trainer.model.parameters()),
        'input_hw': list(input_hw), 'scene_size': list(args.scene_size), 'steps': step,
        'batch': args.batch, 'images_seen': images_seen, 'frames_rendered': pool.count,
        'train_seconds': round(train_seconds, 1),
        'total_seconds': round(time.time() - t_start, 1),
        'val_split': {'seed_base': frame_seed(VAL_SEED, 0), 'frames': len(val_items)},
        'val_metrics_torch': metrics, 'history': history,
        'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else
        platform.processor() or platform.machine(),
        'torch': torch.__version__, 'python': platform.python_version(),
        'date': time.strftime('%Y-%m-%d %H:%M:%S %z'),
    }
    with open(out / 'train_summary.json', 'w', encoding='utf-8') as f:
        json.dump(summary, f, indent=2)
    if args.export:
        summary['onnx'] = export_weights(str(out / 'weights.pt'), str(out / 'model.onnx'),
                                         input_hw)
    print(f"trained {variant} for {step} steps in {train_seconds:.0f} s on {summary['device']}:"
          f" held-out mAP50 {metrics.get('mAP50', float('nan')):.4f} "
          f"mAP {metrics.get('mAP', float('nan')):.4f}; outputs in {out}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
