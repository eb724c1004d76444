"""Console script ``yolox_export``: export a YOLOX checkpoint (or random weights) to ONNX.

A thin wrapper over ``tensorrt_yolox_py.devkit.export``; see that module for the contract of
the written file (input ``images`` [1,3,H,W] float32 BGR 0-255, output ``output`` [1,N,5+C]).
"""

import argparse
import logging
import sys
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
    """Return the ``yolox_export`` argument parser."""
    p = argparse.ArgumentParser(
        prog='yolox_export',
        description='Export a YOLOX model to ONNX (opset 17, simplified, raw head output).')
    p.add_argument('--variant', default='yolox-s+-opt',
                   help='yolox-s, yolox-s-opt, yolox-s+-opt or yolox-tiny-test (ignored with '
                        '--checkpoint; default: %(default)s)')
    p.add_argument('--act', choices=('silu', 'relu', 'relu6'), default=None,
                   help="activation (default: the variant's)")
    p.add_argument('--num-classes', type=int, default=8)
    p.add_argument('--input-size', nargs=2, type=int, metavar=('H', 'W'), default=(960, 960),
                   help='model input height and width, multiples of 32')
    p.add_argument('--checkpoint', default=None,
                   help='trained checkpoint (.pt from yolox_train); without it the weights '
                        'are random (seeded), for contract and speed tests only')
    p.add_argument('--out', required=True, help='output .onnx path')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--no-simplify', action='store_true', help='skip onnx-simplifier')
    p.add_argument('--seed', type=int, default=0, help='seed of the random weights')
    p.add_argument('--check', action='store_true',
                   help='compare ONNX Runtime with PyTorch on a random input and print the '
                        'max abs difference')
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point ``yolox_export``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    from .. import export

    path = export.export_variant(args.variant, args.out, tuple(args.input_size),
                                 num_classes=args.num_classes, act=args.act,
                                 checkpoint=args.checkpoint, opset=args.opset,
                                 simplify=not args.no_simplify, seed=args.seed)
    print(f'wrote {path}')
    if args.check:
        import numpy as np

        if args.checkpoint:
            model = export.load_checkpoint(args.checkpoint)
        else:
            export.torch.manual_seed(args.seed)
            model = export.build_model(args.variant, args.num_classes, args.act)
        rng = np.random.default_rng(args.seed)
        image = rng.uniform(0, 255, (1, 3) + tuple(args.input_size)).astype(np.float32)
        diff = export.compare_with_onnxruntime(model, path, [image])
        print(f"ONNX Runtime vs PyTorch: max |diff| regression {diff['max_abs_diff_reg']:.3g}, "
              f"scores {diff['max_abs_diff_scores']:.3g}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
