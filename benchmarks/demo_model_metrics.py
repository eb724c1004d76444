"""Record the bundled demo model's metrics: held-out accuracy through the real pipeline.

    python benchmarks/demo_model_metrics.py [--frames 300] [--workers 2]

Evaluates ``tensorrt_yolox_py/model/data/yolox_demo.onnx`` with the ONNX Runtime CPU backend
through ``pipeline.Detector`` (letterbox 1920x1280 -> 960x640, decode, NMS) on the held-out
TEST split of generated scenes (seeds disjoint from the training and validation splits),
scores it with pycocotools, and writes ``tensorrt_yolox_py/model/data/yolox_demo.metrics.json``
with the training command and summary (``benchmarks/results/train_demo_h100.json``, recorded on
the H100 that trained it), model facts and the machine that measured the CPU numbers.
"""

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tensorrt_yolox_py.devkit.dataset import TEST_SEED, frame_seed, generate_frames  # noqa: E402
from tensorrt_yolox_py.devkit.evaluate_frames import evaluate_frames  # noqa: E402
from tensorrt_yolox_py.evaluation.report import latency_summary  # noqa: E402
from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH, make_config  # noqa: E402
from tensorrt_yolox_py.pipeline import Detector  # noqa: E402


def model_facts(path: Path) -> dict:
    """Return size, sha256, metadata, params and GFLOPs (when torch is available)."""
    import onnx

    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    params = sum(int(__import__('numpy').prod(i.dims)) for i in proto.graph.initializer)
    facts = {'file': path.name, 'bytes': path.stat().st_size,
             'sha256': hashlib.sha256(path.read_bytes()).hexdigest(), 'metadata': meta,
             'onnx_parameters': params}
    try:
        from tensorrt_yolox_py.model.complexity import count_complexity
        from tensorrt_yolox_py.model.yolox import build_model
        from tensorrt_yolox_py.devkit.tools.train_demo import register_width_variant

        name = register_width_variant('yolox-s+-opt', 0.25)
        hw = tuple(int(v) for v in meta['input_hw'].split(','))
        c = count_complexity(build_model(name), hw)
        facts.update(gflops=round(c.gflops, 2), torch_parameters=int(c.params))
    except ImportError:
        pass
    return facts


def main() -> int:
    """Evaluate and write the metrics JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--frames', type=int, default=300)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--out', default=str(DEFAULT_MODEL_PATH.with_suffix('.metrics.json')))
    args = ap.parse_args()
    seeds = [frame_seed(TEST_SEED, i) for i in range(args.frames)]
    frames = list(generate_frames(seeds, None, args.workers))
    config = make_config({'device': 'cpu', 'score_threshold': 0.01})
    t0 = time.time()
    with Detector.from_config(config) as det:
        result, timings = evaluate_frames(det.detect, frames, progress=True, desc='test')
    train = json.loads((ROOT / 'benchmarks/results/train_demo_h100.json').read_text())
    train.pop('history', None)
    out = {
        'model': model_facts(DEFAULT_MODEL_PATH),
        'name': 'YOLOX-S+-Opt at width 0.25 (depth 0.67, ReLU6, strided-conv stem, ELAN, '
                'no SPP), 8 Autoware classes, input 960x640',
        'training': {
            'command': train['command'],
            'entry': 'python -m tensorrt_yolox_py.devkit.tools.train_demo (yolox_train_demo); '
                     'the H100 run: bash benchmarks/train_demo_device.sh 7.3',
            'export': 'yolox_train_demo --out DIR --input-size 640 960 --export-only '
                      'weights.pt',
            'summary': train},
        'held_out_test': {
            'split': f'TEST seeds {seeds[0]}..{seeds[-1]} (disjoint from train/val)',
            'frames': len(frames),
            'frame_size': [int(frames[0].image.shape[0]), int(frames[0].image.shape[1])],
            'pipeline': 'pipeline.Detector, ONNX Runtime CPU, CPU letterbox, decode + '
                        'class-aware NMS 0.7, score threshold 0.01, pycocotools',
            'accuracy': result.to_dict(),
            'latency_ms': latency_summary(timings),
            'wall_s': round(time.time() - t0, 1),
            'machine': {'host': platform.node(), 'processor': platform.processor()
                        or platform.machine(), 'cpus': os.cpu_count(),
                        'load_average_at_end': os.getloadavg(),
                        'python': platform.python_version(),
                        'onnxruntime': __import__('onnxruntime').__version__},
            'date': time.strftime('%Y-%m-%d %H:%M:%S %z')},
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + '\n', encoding='utf-8')
    print(f'held-out TEST ({len(frames)} frames): mAP50 {result.mAP50:.4f} mAP {result.mAP:.4f}')
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
