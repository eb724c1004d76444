"""``yolox_train``: train a YOLOX variant on a COCO data set and export it to ONNX.

A thin console script over ``model.train`` (``Trainer``, ``TrainConfig``, ``load_coco``,
``split_items``); needs the optional PyTorch dependency.
"""

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from ..train import load_coco, split_items, TrainConfig, Trainer


def build_parser() -> argparse.ArgumentParser:
    """Return the ``yolox_train`` argument parser."""
    p = argparse.ArgumentParser(
        prog='yolox_train', description='Train a YOLOX variant on a COCO data set and export '
        'it to ONNX (input images [1,3,H,W] BGR 0-255, output [1,N,5+C]).')
    p.add_argument('--variant', default='yolox-s+-opt',
                   help='yolox-s, yolox-s-opt, yolox-s+-opt (alias yolox-splus-opt) or '
                        'yolox-tiny-test (default: %(default)s)')
    p.add_argument('--act', choices=('silu', 'relu', 'relu6'), default=None,
                   help="activation (default: the variant's; relu6 for yolox-s+-opt)")
    p.add_argument('--input-size', nargs=2, type=int, metavar=('H', 'W'), default=(960, 960),
                   help='training input height and width, multiples of 32')
    p.add_argument('--export-size', nargs=2, type=int, metavar=('H', 'W'), default=None,
                   help='ONNX input size (default: the training size)')
    p.add_argument('--epochs', type=int, default=30)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--lr', type=float, default=None,
                   help='peak learning rate (default: 1e-3 for adamw, 0.01*batch/64 for sgd)')
    p.add_argument('--optimizer', choices=('adamw', 'sgd'), default='adamw')
    p.add_argument('--weight-decay', type=float, default=None)
    p.add_argument('--warmup-epochs', type=float, default=1.0)
    p.add_argument('--data', required=True, help='COCO JSON of the training images')
    p.add_argument('--images', default=None,
                   help="folder of the training images (default: the JSON's folder)")
    p.add_argument('--val-data', default=None, help='COCO JSON of the validation images')
    p.add_argument('--val-images', default=None, help='folder of the validation images')
    p.add_argument('--val-fraction', type=float, default=0.0,
                   help='hold out this fraction of --data for validation when no --val-data')
    p.add_argument('--num-classes', type=int, default=None,
                   help='number of classes (default: the COCO categories)')
    p.add_argument('--out', default='runs/yolox', help='output folder')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    p.add_argument('--workers', type=int, default=4, help='DataLoader worker processes')
    p.add_argument('--cache', action='store_true',
                   help='letterbox every image once and keep it in memory (~1.8 MB/image at '
                        '960x960)')
    p.add_argument('--time-budget', type=float, default=None, metavar='SECONDS',
                   help='stop training after this many seconds (the cosine schedule is '
                        'compressed to fit), then validate and export')
    p.add_argument('--amp', choices=('auto', 'off', 'bf16', 'fp16'), default='auto')
    p.add_argument('--no-ema', action='store_true', help='do not keep an EMA of the weights')
    p.add_argument('--no-augment', action='store_true', help='no flip / HSV augmentation')
    p.add_argument('--no-aug-epochs', type=int, default=0,
                   help='train the last N epochs without augmentation')
    p.add_argument('--l1-epochs', type=int, default=0,
                   help='add the L1 regression loss in the last N epochs (as YOLOX)')
    p.add_argument('--eval-interval', type=int, default=1, help='validate every N epochs')
    p.add_argument('--init', default=None, help='start from this checkpoint (.pt)')
    p.add_argument('--max-images', type=int, default=None,
                   help='use only the first N training images (smoke tests)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-export', action='store_true', help='skip the final ONNX export')
    p.add_argument('--log-interval', type=int, default=50)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point ``yolox_train``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    items, names = load_coco(args.data, args.images)
    if args.max_images:
        items = items[:args.max_images]
    if args.val_data:
        val_items, val_names = load_coco(args.val_data, args.val_images)
        if val_names != names:
            raise SystemExit(f'class names differ: train {names} vs val {val_names}')
    else:
        items, val_items = split_items(items, args.val_fraction, args.seed)
    if args.num_classes is not None and args.num_classes != len(names):
        names = [f'class{i}' for i in range(args.num_classes)]
    cfg = TrainConfig(
        variant=args.variant, act=args.act, num_classes=args.num_classes,
        input_hw=tuple(args.input_size), export_hw=tuple(args.export_size)
        if args.export_size else None, epochs=args.epochs, batch=args.batch, lr=args.lr,
        optimizer=args.optimizer, weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs, ema=not args.no_ema, amp=args.amp,
        device=args.device, workers=args.workers, cache=args.cache,
        time_budget_s=args.time_budget, out=args.out, seed=args.seed,
        eval_interval=args.eval_interval, l1_epochs=args.l1_epochs,
        no_aug_epochs=args.no_aug_epochs, augment=not args.no_augment,
        export=not args.no_export, log_interval=args.log_interval, init=args.init)
    summary = Trainer(cfg, items, val_items, names).fit()
    best = summary.get('best_val') or {}
    print(f"trained {summary['model']['variant']} for {summary['steps']} steps in "
          f"{summary['train_seconds']} s on {summary['device']}; best epoch "
          f"{summary['best_epoch']}: mAP50 {best.get('mAP50', float('nan'))} mAP "
          f"{best.get('mAP', float('nan'))}")
    print(f"outputs in {args.out}: best.pt, last.pt, labels.txt, train_summary.json"
          + (f", {os.path.basename(summary['onnx'])}" if summary.get('onnx') else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
