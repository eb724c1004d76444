"""Command line of ``onnx_model.dynamic_batch``: give a YOLOX ONNX model a dynamic batch.

``python -m tensorrt_yolox_py.tools.dynamic_batch IN.onnx OUT.onnx [--check N]``
"""

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from ..onnx_model.dynamic_batch import check_dynamic_batch, dynamic_batch_bytes, LOG


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry: convert IN to a dynamic-batch OUT, optionally checking it."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('input')
    parser.add_argument('output')
    parser.add_argument('--check', type=int, default=0, metavar='N',
                        help='compare batch N with N single runs in ONNX Runtime')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    data = dynamic_batch_bytes(args.input)
    Path(args.output).write_bytes(data)
    if args.check > 0:
        diff = check_dynamic_batch(data, args.check)
        LOG.info('batch %d vs %d single runs: max abs difference %.3g', args.check,
                 args.check, diff)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
