#!/usr/bin/env python3
r"""The checklist to run FIRST on real TensorRT hardware (Jetson Orin, or a dGPU with TensorRT).

No real TensorRT engine has been built or run by this project: its TensorRT code was developed
against a test double held to the real Python API of TensorRT 8.6.1, 10.3, 10.13, 10.16 and
11.4 (names and signatures; behaviour is the double's). This script is the first real test,
for any of those versions. It:

1. reports the environment: TensorRT version, GPU and compute capability, DLA cores (and
   whether this TensorRT release drives a DLA at all), fast FP16 / INT8, whether networks are
   strongly typed (TensorRT 11: precision from the ONNX types, INT8 as a Q/DQ model);
2. for each configuration (default: gpu-fp32, gpu-fp16, gpu-int8, and dla0-int8 / dla1-fp16
   where the platform has DLA cores) builds the engine through the package's engine cache
   (timing the build), checks that a second start loads it from the cache, opens it with the
   ``TensorRTBackend`` and runs the test images;
3. compares with the ONNX Runtime backend (CPU, float32) on the same preprocessed tensors: the
   largest score difference on the raw output and the agreement of the final detections
   (same class, IoU >= 0.5); also runs the GPU-resident path (CUDA preprocessing bound as the
   engine input) where the CUDA preprocessor is available, and times inference;
4. reads the engine inspector (DETAILED JSON) of each engine: layers per device and precision,
   and keeps the first raw layers in the JSON so the inspector parsing rules (DLA subgraphs,
   precision from the tensor formats) can be confirmed on real engines;
5. prints a table and a verdict per configuration (PASS / FAIL against the thresholds below),
   and writes everything to ``--json``.

    python3 scripts/check_tensorrt_on_hardware.py --model yolox.onnx \\
        --images my_camera_frames/ --calibration-images calib_list.txt --json check.json

Without ``--images`` it renders scenes with the package's generator; without ``--model`` it
uses the bundled demo model (or the planted test model). Thresholds (agreement with ONNX Runtime
float32, not accuracy): fp32 score diff <= 1e-3 and detection F1 >= 0.99; fp16 <= 0.02 and
F1 >= 0.97; int8 F1 >= 0.85. Exit status 0 if every configuration passes, 1 otherwise, 2 if
the environment is not usable.
"""

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tensorrt_yolox_py.errors import YoloxError  # noqa: E402
from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH, make_config  # noqa: E402

LOGGER = logging.getLogger('check_tensorrt')
THRESHOLDS = {'fp32': (1e-3, 0.99), 'fp16': (0.02, 0.97), 'int8': (None, 0.85)}
CONFIGS = {'gpu-fp32': ('gpu', 'fp32'), 'gpu-fp16': ('gpu', 'fp16'), 'gpu-int8': ('gpu', 'int8'),
           'dla0-int8': ('dla0', 'int8'), 'dla0-fp16': ('dla0', 'fp16'),
           'dla1-int8': ('dla1', 'int8'), 'dla1-fp16': ('dla1', 'fp16')}


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the (len(a), len(b)) IoU matrix of xyxy boxes."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match(got: Any, want: Any, threshold: float = 0.5) -> Tuple[int, int, int]:
    """Greedy same-class IoU matching; return (matched, len(got), len(want))."""
    overlaps = iou(got.boxes, want.boxes)
    same = got.class_ids[:, None] == want.class_ids[None, :]
    overlaps = np.where(same, overlaps, 0.0)
    matched, used = 0, set()
    for i in np.argsort(-got.scores):
        j = int(np.argmax(overlaps[i])) if overlaps.shape[1] else -1
        if j >= 0 and overlaps[i, j] >= threshold and j not in used:
            used.add(j)
            matched += 1
            overlaps[:, j] = 0.0
    return matched, len(got), len(want)


def f1(matched: int, got: int, want: int) -> float:
    """Return the F1 of a matching (1.0 when both sides are empty)."""
    if got == 0 and want == 0:
        return 1.0
    return 2.0 * matched / max(got + want, 1)


def test_images(folder: Optional[str], count: int, work: Path) -> List[np.ndarray]:
    """Load ``folder``'s images, or render ``count`` generated scenes."""
    import cv2

    if folder:
        from tensorrt_yolox_py.quantization import list_calibration_images, load_image

        return [load_image(p) for p in list_calibration_images(folder, count)]
    try:
        from tensorrt_yolox_py.devkit.dataset import frame_seed, make_frame, TEST_SEED
    except ImportError:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(count)]
    images = [make_frame(frame_seed(TEST_SEED, i)).image for i in range(count)]
    for i, image in enumerate(images):
        cv2.imwrite(str(work / f'scene_{i:03d}.png'), image)
    return images


def environment(trt: Any, memory: Any) -> Dict[str, Any]:
    """Describe TensorRT, the GPU and the DLA cores."""
    from tensorrt_yolox_py.backends.tensorrt.builder import check_hardware, EngineSettings
    from tensorrt_yolox_py.backends.tensorrt.capabilities import dla_support, supports
    from tensorrt_yolox_py.backends.tensorrt.common import (check_supported, make_logger,
                                                            trt_version)

    gpu = memory.device_info()
    version = trt_version(trt)
    check_supported(version)
    builder = trt.Builder(make_logger(trt))
    fast = check_hardware(builder, EngineSettings(Path('x'), precision='fp32'), gpu, version)
    has_dla, dla_why = dla_support(version)
    return {'tensorrt': trt.__version__, 'gpu': gpu['name'],
            'compute_capability': list(gpu['compute_capability']),
            'dla_cores': int(builder.num_DLA_cores) if has_dla else 0,
            'dla_support': dla_why, 'strongly_typed': supports(version, 'strongly_typed_only'),
            'fast_fp16': fast['fp16'], 'fast_int8': fast['int8'],
            'python': platform.python_version(), 'machine': platform.machine()}


def check_config(name: str, values: Dict[str, Any], images: Sequence[np.ndarray], trt: Any,
                 memory: Any, reference: Any) -> Dict[str, Any]:
    """Build/load, run and compare one configuration; return its result row."""
    from tensorrt_yolox_py.backends.tensorrt import (BuildProgress, EngineSettings,
                                                     prepare_engine, TensorRTBackend)
    from tensorrt_yolox_py.pipeline import Detector
    from tensorrt_yolox_py.stages.preprocess import preprocess_cpu

    device, precision = CONFIGS[name]
    config = make_config({**values, 'device': device, 'precision': precision,
                          'preprocess_on_gpu': False})
    row: Dict[str, Any] = {'config': name, 'verdict': 'FAIL'}
    settings = EngineSettings.from_config(config)
    start = time.perf_counter()
    prepared = prepare_engine(settings, trt, memory, BuildProgress())
    row['prepare_s'] = round(time.perf_counter() - start, 2)
    row['built'] = prepared.built
    row['int8_path'] = prepared.report.get('int8_path', '')
    row['fallback_layers'] = len(prepared.report.get('fallback_layers', []))
    row['engine_mb'] = round(prepared.path.stat().st_size / 1e6, 2)
    row['cache_reload'] = not prepare_engine(settings, trt, memory, BuildProgress()).built
    backend = TensorRTBackend(prepared.path, config.dla_core_id, config.gpu_id, memory,
                              False, trt)
    score_diff, matches, times = 0.0, [0, 0, 0], []
    layers = backend.engine_layer_info()
    row['layers'] = {f"{layer['device']}-{layer['precision'] or '?'}":
                     sum(1 for x in layers if (x['device'], x['precision']) ==
                         (layer['device'], layer['precision'])) for layer in layers}
    row['inspector_sample'] = [layer['raw'] for layer in layers[:3]]
    with Detector.from_config(config, backend=backend) as detector:
        for image in images:
            tensor, _ = preprocess_cpu(image, backend.input_hw)
            t0 = time.perf_counter()
            out = backend.infer(tensor)
            times.append((time.perf_counter() - t0) * 1e3)
            ref = reference.backend.infer(tensor)
            score_diff = max(score_diff, float(np.abs(out[..., 4:] - ref[..., 4:]).max()))
            got = detector.detect(image).detections
            want = reference.detect(image).detections
            matches = [m + n for m, n in zip(matches, match(got, want))]
        row['device_path'] = device_path_agreement(config, backend, images, detector,
                                                   memory)
    row['max_score_diff'] = round(score_diff, 5)
    row['detection_f1'] = round(f1(*matches), 4)
    row['detections'] = f'{matches[1]} vs {matches[2]} (ORT)'
    row['infer_ms_median'] = round(float(np.median(times[1:] or times)), 3)
    max_diff, min_f1 = THRESHOLDS[precision]
    ok = row['detection_f1'] >= min_f1 and row['cache_reload']
    if max_diff is not None:
        ok = ok and score_diff <= max_diff
    if row['device_path'] is not None and row['device_path'] < min_f1:
        ok = False
    row['verdict'] = 'PASS' if ok else 'FAIL'
    return row


def device_path_agreement(config: Any, backend: Any, images: Sequence[np.ndarray],
                          host_detector: Any, memory: Any) -> Optional[float]:
    """Run the CUDA-preprocessing + bound-input path; return its detection F1 vs the host path.

    None where there is no CUDA preprocessor or the memory layer is not real CUDA memory. The
    CUDA kernel differs from the CPU letterbox by < 1.0 (it does not round), which INT8 can
    turn into a few different detections, so the F1 is judged with the precision's threshold.
    """
    from tensorrt_yolox_py.cuda.memory import CudaMemory

    if not isinstance(memory, CudaMemory):
        return None
    try:
        from tensorrt_yolox_py.cuda.preprocess import cuda_available, CudaPreprocessor
    except ImportError:
        return None
    if not cuda_available(config.gpu_id):
        return None
    from tensorrt_yolox_py.pipeline import Detector

    pre = CudaPreprocessor(backend.input_hw, dtype=backend.input_dtype, gpu_id=config.gpu_id)
    device_detector = Detector(backend, pre, host_detector.postprocessor, host_detector.labels)
    matches = [0, 0, 0]
    try:
        for image in images:
            got = device_detector.detect(image).detections
            want = host_detector.detect(image).detections
            matches = [m + n for m, n in zip(matches, match(got, want))]
    finally:
        pre.close()
    return round(f1(*matches), 4)


def run(argv: Optional[List[str]] = None, trt: Any = None,
        memory_factory: Optional[Callable[[int], Any]] = None) -> Tuple[int, Dict[str, Any]]:
    """Run the checklist; return (exit status, results). ``trt``/``memory_factory``: tests."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', help='YOLOX ONNX (default: the bundled demo model)')
    parser.add_argument('--images', help='folder or list of test images (default: generated)')
    parser.add_argument('--num-images', type=int, default=20)
    parser.add_argument('--calibration-images', help='INT8 calibration images (default: the '
                        'test images, which is fine for this check only)')
    parser.add_argument('--configs', help='comma-separated subset of ' + ', '.join(CONFIGS))
    parser.add_argument('--cache-dir', help='engine cache (default: a temporary folder)')
    parser.add_argument('--gpu-id', type=int, default=0)
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
    from tensorrt_yolox_py.backends.tensorrt.common import import_tensorrt
    from tensorrt_yolox_py.pipeline import Detector

    results: Dict[str, Any] = {'date': time.strftime('%Y-%m-%d %H:%M:%S %z'), 'rows': []}
    with tempfile.TemporaryDirectory(prefix='trt_check_') as tmp:
        work = Path(tmp)
        try:
            trt = trt or import_tensorrt()
            if memory_factory is None:
                from tensorrt_yolox_py.cuda.memory import CudaMemory

                memory_factory = CudaMemory
            memory = memory_factory(args.gpu_id)
            results['environment'] = env = environment(trt, memory)
        except YoloxError as exc:
            print(f'environment not usable: {exc}')
            return 2, results
        for key, value in env.items():
            print(f'{key:>18}: {value}')
        model = Path(args.model) if args.model else DEFAULT_MODEL_PATH
        if not model.is_file():
            from tensorrt_yolox_py.devkit.synthetic import make_planted_model

            model = make_planted_model(work / 'planted.onnx')
            print(f'{"model":>18}: {model} (planted test model; pass --model for yours)')
        images = test_images(args.images, args.num_images, work)
        values = {'model_path': str(model), 'gpu_id': args.gpu_id,
                  'engine_cache_dir': args.cache_dir or str(work / 'engines'),
                  'calibration_image_list_path': args.calibration_images or args.images
                  or str(work), 'calibration_num_images': 500}
        names = args.configs.split(',') if args.configs else \
            ['gpu-fp32', 'gpu-fp16', 'gpu-int8'] + (
                ['dla0-int8', 'dla1-fp16'] if env['dla_cores'] >= 2 else
                ['dla0-int8'] if env['dla_cores'] == 1 else [])
        reference = Detector.from_config(make_config({**values, 'device': 'cpu'}),
                                         backend=OnnxRuntimeBackend(model))
        with reference:
            for name in names:
                if name not in CONFIGS:
                    print(f'unknown configuration {name} (known: {", ".join(CONFIGS)})')
                    return 2, results
                try:
                    row = check_config(name, values, images, trt, memory, reference)
                except YoloxError as exc:
                    row = {'config': name, 'verdict': 'FAIL', 'error': str(exc)}
                results['rows'].append(row)
                print(json.dumps(row))
    print()
    print(f'{"config":<10} {"verdict":<7} {"int8 path":<10} {"build s":>8} {"MB":>6} '
          f'{"score diff":>10} {"det F1":>6} {"infer ms":>8}  device-path F1')
    for row in results['rows']:
        print(f'{row["config"]:<10} {row["verdict"]:<7} {row.get("int8_path", ""):<10} '
              f'{row.get("prepare_s", 0):>8} {row.get("engine_mb", 0):>6} '
              f'{row.get("max_score_diff", ""):>10} {row.get("detection_f1", ""):>6} '
              f'{row.get("infer_ms_median", ""):>8}  '
              f'{"n/a" if row.get("device_path") is None else row["device_path"]}'
              + (f'  ERROR: {row["error"]}' if 'error' in row else ''))
    passed = all(row['verdict'] == 'PASS' for row in results['rows']) and results['rows']
    print(f'\nverdict: {"PASS" if passed else "FAIL"} ({len(results["rows"])} configurations)')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + '\n')
    return (0 if passed else 1), results


def main() -> int:
    """Command-line entry point."""
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] %(name)s: %(message)s')
    return run()[0]


if __name__ == '__main__':
    sys.exit(main())
