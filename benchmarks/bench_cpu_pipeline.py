"""CPU pipeline per stage: 1920x1280 bgr8 -> 960x960 and 960x608, on one core.

Measures, side by side in one run: OpenCV preprocessing (the CPU baseline the CUDA kernel is
compared with: the package's reference ``preprocess_cpu`` and the seed's three-step
resize + copyMakeBorder + blobFromImage), postprocess (decode + NMS) on a realistic raw output
(18900 anchors x 8 classes at 960x960), and, with ``--infer``, ONNX Runtime inference of a
model. Prints a table and writes benchmarks/results/cpu_pipeline.json.

    python benchmarks/bench_cpu_pipeline.py [--model yolox.onnx] [--iters 200]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine_info import machine_info  # noqa: E402
from tensorrt_yolox_py.stages.postprocess import make_anchors, Postprocessor  # noqa: E402
from tensorrt_yolox_py.image import SourceImage  # noqa: E402
from tensorrt_yolox_py.stages.preprocess import compute_letterbox, preprocess_cpu  # noqa: E402

RESULTS = Path(__file__).resolve().parent / 'results'


def time_ms(fn: Callable[[], object], iters: int, warmup: int = 5) -> Dict[str, float]:
    """Median / p90 / mean wall time of ``fn`` in ms."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    arr = np.asarray(samples)
    return {'median_ms': float(np.median(arr)), 'p90_ms': float(np.percentile(arr, 90)),
            'mean_ms': float(arr.mean()), 'iters': iters}


def seed_three_step(image: np.ndarray, in_hw) -> np.ndarray:
    """Run the seed's CPU chain: cv::resize, cv::copyMakeBorder, cv::dnn::blobFromImage."""
    import cv2

    lb = compute_letterbox(image.shape[0], image.shape[1], in_hw[0], in_hw[1])
    resized = cv2.resize(image, (lb.resized_w, lb.resized_h), interpolation=cv2.INTER_LINEAR)
    padded = cv2.copyMakeBorder(resized, 0, in_hw[0] - lb.resized_h, 0,
                                in_hw[1] - lb.resized_w, cv2.BORDER_CONSTANT,
                                value=(114, 114, 114))
    return cv2.dnn.blobFromImage(padded)


def realistic_raw_output(input_hw, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Make a raw head output like a trained model's: low scores, ~100 hot candidates."""
    n = make_anchors(tuple(input_hw))[0].shape[0]
    out = np.empty((1, n, 5 + num_classes), np.float32)
    out[0, :, 0:2] = rng.uniform(-0.2, 1.2, (n, 2))
    out[0, :, 2:4] = rng.normal(0.5, 0.6, (n, 2))
    out[0, :, 4] = rng.beta(0.3, 12, n)
    out[0, :, 5:] = rng.beta(0.5, 4, (n, num_classes))
    hot = rng.choice(n, 100, replace=False)
    out[0, hot, 4] = rng.uniform(0.6, 1.0, 100)
    out[0, hot, 5] = rng.uniform(0.7, 1.0, 100)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--model', help='ONNX model to time ONNX Runtime inference with (at its '
                        'own input size; default: none)')
    parser.add_argument('--infer-iters', type=int, default=10)
    parser.add_argument('--out', default=str(RESULTS / 'cpu_pipeline.json'))
    args = parser.parse_args(argv)

    import cv2

    cv2.setNumThreads(1)
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1280, 1920, 3), dtype=np.uint8)
    source = SourceImage.from_array(image)
    rows = []
    for in_hw in ((960, 960), (608, 960)):
        lb = compute_letterbox(1280, 1920, *in_hw)
        out = np.empty((1, 3) + in_hw, np.float32)
        rows.append(('preprocess_cpu (reference)', in_hw,
                     time_ms(lambda: preprocess_cpu(source, in_hw, out=out), args.iters)))
        rows.append(('seed 3-step OpenCV', in_hw,
                     time_ms(lambda: seed_three_step(image, in_hw), args.iters)))
        raw = realistic_raw_output(in_hw, 8, rng)
        post = Postprocessor(in_hw, 0.35, 0.7, 100, 'raw')
        rows.append((f'postprocess ({raw.shape[1]} anchors, 8 cls)', in_hw,
                     time_ms(lambda: post(raw, lb), args.iters)))
    if args.model:
        from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend

        with OnnxRuntimeBackend(args.model, num_threads=1) as backend:
            in_hw = backend.input_hw
            tensor, _ = preprocess_cpu(source, in_hw, dtype=backend.input_dtype)
            rows.append((f'preprocess_cpu ({Path(args.model).name} input)', in_hw,
                         time_ms(lambda: preprocess_cpu(source, in_hw), args.iters)))
            rows.append((f'onnxruntime infer, 1 thread ({Path(args.model).name})', in_hw,
                         time_ms(lambda: backend.infer(tensor), args.infer_iters, 1)))
            raw = backend.infer(tensor)
            lb = compute_letterbox(1280, 1920, *in_hw)
            post = Postprocessor(in_hw, 0.35, 0.7, 100, 'raw')
            rows.append((f'postprocess ({Path(args.model).name} output)', in_hw,
                         time_ms(lambda: post(raw, lb), args.iters)))
    result = {'benchmark': 'cpu_pipeline', 'source': '1920x1280 bgr8 (random)',
              'threads': 1, 'machine': machine_info(),
              'rows': [{'stage': name, 'input_hw': list(hw), **stats}
                       for name, hw, stats in rows]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + '\n')
    print(f"{'stage':44s} {'input':>9s} {'median ms':>10s} {'p90 ms':>8s}")
    for name, hw, stats in rows:
        print(f"{name:44s} {hw[1]:>4d}x{hw[0]:<4d} {stats['median_ms']:10.3f} "
              f"{stats['p90_ms']:8.3f}")
    print(f'machine: {result["machine"]["cpu"]} ({result["machine"]["cpu_count"]} cores), '
          f'1 thread; saved {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
