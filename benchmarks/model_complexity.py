"""Parameter count and GFLOPs of the YOLOX family per input size, against the seed's table.

Counted by ``tensorrt_yolox_py.model.complexity`` (forward hooks): GFLOPs = 2 * MACs / 1e9 of
every Conv2d / Linear (the YOLOX repository's convention, which reports thop MACs * 2), with
BatchNorm excluded (folded at deployment; the "with BN" column adds thop's 2 ops per BN output
element). Sizes are written W x H as in the seed (960x608 = 960 wide, 608 high). 8 classes.
Also reproduces the published YOLOX-S reference (640x640, 80 classes: 26.8 GFLOPs, 9.0 M
params) to validate the counter. Prints a table; writes benchmarks/results/model_complexity.json.

    python benchmarks/model_complexity.py
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine_info import machine_info  # noqa: E402
from tensorrt_yolox_py.model.complexity import count_complexity  # noqa: E402
from tensorrt_yolox_py.model.yolox import build_model, VARIANTS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / 'results'
#: Input sizes as (W, H), the seed's notation.
SIZES = ((960, 960), (960, 608), (1280, 960))
#: TIER IV 2023 talk, model table: GFLOPs per (variant, W, H).
SEED_GFLOPS = {('yolox-s-opt', 960, 608): 45.4, ('yolox-s+-opt', 960, 960): 102.9,
               ('yolox-s+-opt', 1280, 960): 136.2}
#: Published YOLOX-S (Megvii YOLOX README, 640x640, 80 classes).
YOLOX_S_REFERENCE = {'gflops': 26.8, 'mparams': 9.0}


def structure(name: str) -> Dict[str, int]:
    """Return the number of Conv2d and activation modules of variant ``name``."""
    import torch

    model = build_model(name, 8)
    acts = (torch.nn.SiLU, torch.nn.ReLU, torch.nn.ReLU6)
    return {'conv_layers': sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()),
            'activations': sum(isinstance(m, acts) for m in model.modules())}


def run(include_tiny: bool) -> Dict[str, object]:
    """Count every variant at every size; return the JSON record."""
    rows: List[Dict[str, object]] = []
    names = [n for n in VARIANTS if include_tiny or n != 'yolox-tiny-test']
    for name in names:
        model = build_model(name, 8)
        info = structure(name)
        for w, h in SIZES:
            c = count_complexity(model, (h, w))
            seed: Optional[float] = SEED_GFLOPS.get((name, w, h))
            row = {'variant': name, 'act': model.act, 'input_wh': [w, h], **c.as_dict(),
                   **info, 'seed_gflops': seed,
                   'diff_vs_seed_pct': (round(100.0 * (c.gflops - seed) / seed, 2)
                                        if seed else None)}
            rows.append(row)
    ref = count_complexity(build_model('yolox-s', 80), (640, 640))
    reference = {'variant': 'yolox-s', 'num_classes': 80, 'input_wh': [640, 640],
                 **ref.as_dict(), 'published_gflops': YOLOX_S_REFERENCE['gflops'],
                 'published_mparams': YOLOX_S_REFERENCE['mparams'],
                 'diff_vs_published_pct': round(
                     100.0 * (ref.gflops - YOLOX_S_REFERENCE['gflops'])
                     / YOLOX_S_REFERENCE['gflops'], 2)}
    return {'benchmark': 'model_complexity',
            'convention': 'GFLOPs = 2 * MACs / 1e9 over Conv2d and Linear (bias, activations, '
                          'pooling, upsampling, adds excluded); gflops_with_bn adds 2 ops per '
                          'BatchNorm output element (thop, as YOLOX get_model_info counts)',
            'num_classes': 8, 'machine': machine_info(('torch',)), 'rows': rows,
            'yolox_s_reference': reference}


def print_table(record: Dict[str, object]) -> None:
    """Print the rows as a markdown table."""
    print('| variant | act | input (WxH) | params (M) | GFLOPs | GFLOPs with BN | conv layers '
          '| seed GFLOPs | diff vs seed |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in record['rows']:
        seed = f"{r['seed_gflops']:.1f}" if r['seed_gflops'] else '-'
        diff = f"{r['diff_vs_seed_pct']:+.1f} %" if r['diff_vs_seed_pct'] is not None else '-'
        print(f"| {r['variant']} | {r['act']} | {r['input_wh'][0]}x{r['input_wh'][1]} | "
              f"{r['mparams']:.2f} | {r['gflops']:.1f} | {r['gflops_with_bn']:.1f} | "
              f"{r['conv_layers']} | {seed} | {diff} |")
    ref = record['yolox_s_reference']
    print(f"\nreference: YOLOX-S 640x640, 80 classes: {ref['mparams']:.2f} M params, "
          f"{ref['gflops']:.2f} GFLOPs ({ref['gflops_with_bn']:.2f} with BN) vs published "
          f"{ref['published_mparams']} M / {ref['published_gflops']} GFLOPs "
          f"({ref['diff_vs_published_pct']:+.2f} %)")


def main() -> int:
    """Count, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tiny', action='store_true', help='include yolox-tiny-test')
    parser.add_argument('--out', default=str(RESULTS / 'model_complexity.json'))
    args = parser.parse_args()
    record = run(args.tiny)
    print_table(record)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, 'w', encoding='utf-8') as f:
        json.dump(record, f, indent=2)
    print(f'\nwrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
