"""Compare the activation ranges each calibration method chose (why a method loses accuracy).

    python benchmarks/calibration_ranges.py [--work FOLDER]

Reads the calibration caches that ``calibration_study.py`` left in its ``--work`` folder
(``int8_<method>_<images>.calibration.json``, ONNX Runtime's ``TensorsData`` format) and, per
method, compares every tensor's range with the MinMax range from the same images: the median
ratio of range widths, how many tensors lose more than half of their range (values clipped),
how many ranges straddle zero (a uint8 range that wastes levels on negative values a ReLU6
output never has), and the ranges of the head's objectness / class logits. Writes
``benchmarks/results/calibration_ranges.json`` and prints a table.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tensorrt_yolox_py import trust  # noqa: E402


def load(path: Path) -> Dict[str, Tuple[float, float]]:
    """Return {tensor: (low, high)} from an ONNX Runtime calibration cache."""
    from onnxruntime.quantization.calibrate import load_tensors_data

    data = load_tensors_data(path)
    return {name: (float(np.asarray(v.range_value[0]).min()),
                   float(np.asarray(v.range_value[1]).max())) for name, v in data.data.items()}


def compare(ranges: Dict[str, Tuple[float, float]], ref: Dict[str, Tuple[float, float]]
            ) -> Dict[str, object]:
    """Summarise ``ranges`` against the MinMax reference ``ref``."""
    ratios, clipped, negative_waste = [], 0, 0
    heads = {}
    cut: Dict[str, float] = {}
    for name, (lo, hi) in ranges.items():
        rlo, rhi = ref[name]
        width = max(hi, 0.0) - min(lo, 0.0)
        ref_width = max(rhi, 0.0) - min(rlo, 0.0)
        if ref_width > 0:
            ratios.append(width / ref_width)
            if hi < 0.5 * rhi:
                clipped += 1
            if rhi > 0:
                cut[name] = hi / rhi
        if rlo >= 0 and lo < -1e-6:
            negative_waste += 1
        if re.search(r'(obj|cls)_preds\.\d/Conv_output', name):
            heads[name] = [round(lo, 3), round(hi, 3), round(rlo, 3), round(rhi, 3)]
    return {'tensors': len(ranges), 'median_width_vs_minmax': float(np.median(ratios)),
            'tensors_high_below_half_of_minmax': clipped,
            'nonnegative_tensors_given_negative_range': negative_waste,
            'most_clipped[high / minmax high]': {k: round(v, 3) for k, v in sorted(
                cut.items(), key=lambda kv: kv[1])[:10]},
            'head_logit_ranges[lo, hi, minmax_lo, minmax_hi]': heads}


def main() -> int:
    """Compare every cache with the MinMax cache of the same image count."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--work', default='~/.cache/tensorrt_yolox_py/calibration_study',
                    help="calibration_study.py's work folder (its default)")
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results' /
                                         'calibration_ranges.json'))
    args = ap.parse_args()
    try:
        work = trust.check_folder(args.work, 'study work folder', create=False)
    except (trust.UntrustedPathError, FileNotFoundError, OSError) as exc:
        raise SystemExit(f'calibration_ranges: {exc}') from None
    result: Dict[str, Dict[str, object]] = {}
    for cache in sorted(work.glob('int8_*_*.calibration.json')):
        match = re.match(r'int8_(.+)_(\d+)\.calibration$', cache.stem)
        if not match:
            continue
        method, n = match.group(1), match.group(2)
        ref = work / f'int8_MinMax_{n}.calibration.json'
        result.setdefault(n, {})[method] = compare(load(cache), load(ref))
    out = {'date': time.strftime('%Y-%m-%d %H:%M:%S %z'), 'work': str(work),
           'by_images': result}
    trust.write_atomic(Path(args.out), (json.dumps(out, indent=2) + '\n').encode(),
                       digest=False)
    print(f"{'images':>6} {'method':<22}{'width/MinMax':>13}{'clipped>50%':>12}"
          f"{'neg. waste':>11}")
    for n, methods in result.items():
        for method, summary in methods.items():
            print(f"{n:>6} {method:<22}{summary['median_width_vs_minmax']:>13.3f}"
                  f"{summary['tensors_high_below_half_of_minmax']:>12}"
                  f"{summary['nonnegative_tensors_given_negative_range']:>11}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
