#!/usr/bin/env python3
r"""The checklist to run FIRST on real TensorRT hardware (Jetson Orin, or a dGPU with TensorRT).

No real TensorRT engine has been built or run by this project: its TensorRT code was developed
against a test double held to the real Python API of TensorRT 8.6.1, 10.3, 10.13, 10.16 and
11.4 (names and signatures; behaviour is the double's). This script is the first real test,
for any of those versions. It:

1. reports the environment: TensorRT version, GPU and compute capability, DLA cores (and
   whether this TensorRT release drives a DLA at all), fast FP16 / INT8, whether networks are
   strongly typed (TensorRT 11: precision from the ONNX types, INT8 as a Q/DQ model), and
   which tool would make the typed models (ModelOpt or ONNX Runtime, with versions);
2. for each configuration builds the engine through the package's engine cache (timing the
   build), checks that a second start loads it from the cache, opens it with the
   ``TensorRTBackend`` and runs the test images (configurations with max_batch > 1 also run
   them as one batch);
3. compares with the ONNX Runtime backend (CPU, float32) on the same preprocessed tensors: the
   largest score difference on the raw output and the agreement of the final detections
   (same class, IoU >= 0.5); also runs the GPU-resident path (CUDA preprocessing bound as the
   engine input) where the CUDA preprocessor is available, and times inference;
4. reads the engine inspector (DETAILED JSON) of each engine: layers per device and compute
   precision, and keeps ONE RAW LAYER OF EACH DISTINCT LayerType in the JSON (so a DLA
   ``ForeignNode`` is seen), to confirm the inspector rules on real engines;
5. records any error of a configuration (any exception: TensorRT's RuntimeError, pybind11's
   TypeError, an AttributeError, a CUDA error) with its traceback and goes on to the next;
   the JSON is written after every configuration and at the end, whatever happens (Ctrl-C
   included);
6. prints a table and a verdict per configuration (PASS / FAIL against the thresholds below;
   SKIP where the configuration does not apply to this TensorRT or platform, with why).

    python3 scripts/check_tensorrt_on_hardware.py --model yolox.onnx \\
        --images my_camera_frames/ --calibration-images calib_list.txt --json check.json

Configurations (default: every one that applies here; ``--configs`` picks some):

  gpu-fp32, gpu-fp16, gpu-int8       the three precisions (fp32 with BuilderFlag.TF32 cleared)
  gpu-fp16-b4, gpu-int8-b4           a batch profile (max_batch 4), run at batch 1 and 4
  gpu-int8-implicit                  the TensorRT calibrator (int8_mode implicit; 8.6 / 10.x)
  gpu-int8-clip                      the clip recipe (clip_value, default 6.0, no calibration)
  gpu-int8-ort-qdq                   TensorRT 11: the ONNX Runtime Q/DQ model (float16 scales,
                                     Q/DQ around Concat) even where ModelOpt is installed
  dla0-int8, dla0-fp16, dla1-int8, dla1-fp16, dla0-int8-clip   the DLA cores
  dla0-int8-adjust-for-dla           TensorRT 11.4.1+ strongly typed DLA: the same build with
                                     OnnxParserFlag.ADJUST_FOR_DLA set on the parser

Two questions only a real run settles are decided by these configurations (the JSON's
``questions`` says what was found):

- strongly typed DLA builds (11.4.1+): does the package's plain Q/DQ model need
  ``OnnxParserFlag.ADJUST_FOR_DLA``? Compare dla0-int8 with dla0-int8-adjust-for-dla: if the
  plain build fails, or keeps fewer layers on the DLA, or its F1 is lower, the flag is needed.
  (ModelOpt's own DLA options are not tried: none was verified here.)
- TensorRT 11 and the ONNX Runtime fallback's float16-scale Q/DQ around ``Concat``: if
  gpu-int8-ort-qdq builds and passes, TensorRT 11 accepts it; if its build fails (the error
  is recorded), the fallback must change.

Without ``--images`` it renders scenes with the package's generator; without ``--model`` it
uses the bundled demo model (or the planted test model). Thresholds (agreement with ONNX Runtime
float32, not accuracy): fp32 score diff <= 1e-3 and detection F1 >= 0.99 (IEEE FP32: the
builder clears TF32, which TensorRT allows by default; TF32 emulated on these frames differs
by 1.5e-3 to 4.1e-3, issue 21); fp16 <= 0.02 and F1 >= 0.97; int8 F1 >= 0.85. Exit status 0 if
every configuration that ran passes, 1 otherwise, 2 if the environment is not usable, 130 on
Ctrl-C.
"""

import argparse
import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH, make_config  # noqa: E402

LOGGER = logging.getLogger('check_tensorrt')
THRESHOLDS = {'fp32': (1e-3, 0.99), 'fp16': (0.02, 0.97), 'int8': (None, 0.85)}
#: name -> (device, precision, parameter overrides, experiment); experiment: 'adjust-for-dla'
#: (ADJUST_FOR_DLA on every OnnxParser) or 'ort-qdq' (the ONNX Runtime typed model).
CONFIGS: Dict[str, Tuple[str, str, Dict[str, Any], str]] = {
    'gpu-fp32': ('gpu', 'fp32', {}, ''),
    'gpu-fp16': ('gpu', 'fp16', {}, ''),
    'gpu-int8': ('gpu', 'int8', {}, ''),
    'gpu-fp16-b4': ('gpu', 'fp16', {'max_batch': 4}, ''),
    'gpu-int8-b4': ('gpu', 'int8', {'max_batch': 4}, ''),
    'gpu-int8-implicit': ('gpu', 'int8', {'int8_mode': 'implicit'}, ''),
    'gpu-int8-clip': ('gpu', 'int8', {'clip_value': None}, ''),
    'gpu-int8-ort-qdq': ('gpu', 'int8', {}, 'ort-qdq'),
    'dla0-int8': ('dla0', 'int8', {}, ''),
    'dla0-fp16': ('dla0', 'fp16', {}, ''),
    'dla1-int8': ('dla1', 'int8', {}, ''),
    'dla1-fp16': ('dla1', 'fp16', {}, ''),
    'dla0-int8-clip': ('dla0', 'int8', {'clip_value': None}, ''),
    'dla0-int8-adjust-for-dla': ('dla0', 'int8', {}, 'adjust-for-dla'),
}
DEFAULT_CLIP = 6.0


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
    """Describe TensorRT, the GPU, the DLA cores and the typed-model tools."""
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
    env = {'tensorrt': trt.__version__, 'gpu': gpu['name'],
           'compute_capability': list(gpu['compute_capability']),
           'dla_cores': int(builder.num_DLA_cores) if has_dla else 0,
           'dla_support': dla_why, 'strongly_typed': supports(version, 'strongly_typed_only'),
           'implicit_int8': supports(version, 'implicit_int8'),
           'fast_fp16': fast['fp16'], 'fast_int8': fast['int8'],
           'python': platform.python_version(), 'machine': platform.machine()}
    if env['strongly_typed']:
        from tensorrt_yolox_py.quantization.strongly_typed import modelopt_status, planned_tool

        env['modelopt'] = modelopt_status()[1]
        env['typed_model_tools'] = {'fp16': planned_tool('fp16'),
                                    'int8 MinMax': planned_tool('int8', 'MinMax')}
    return env


def applies(name: str, env: Dict[str, Any]) -> str:
    """Return why configuration ``name`` does not apply here ('' when it does)."""
    device, precision, _, experiment = CONFIGS[name]
    if device != 'gpu':
        core = int(device[3:])
        if env['dla_cores'] <= core:
            return f'{device}: {env["dla_cores"]} DLA core(s) here ({env["dla_support"]})'
    if CONFIGS[name][2].get('int8_mode') == 'implicit' and not env['implicit_int8']:
        return f'TensorRT {env["tensorrt"]} has no TensorRT calibrators (removed in 11)'
    if experiment == 'ort-qdq' and not env['strongly_typed']:
        return 'the ONNX Runtime typed model is a TensorRT 11 (strongly typed) question'
    if experiment == 'adjust-for-dla' and not env['strongly_typed']:
        return 'ADJUST_FOR_DLA is the strongly typed DLA question (TensorRT 11.4.1+)'
    if precision in ('fp16', 'int8') and not env[f'fast_{precision}']:
        return f'no fast {precision.upper()} on {env["gpu"]}'
    return ''


def default_configs(env: Dict[str, Any]) -> List[str]:
    """Every configuration that applies here (dla1 only its fp16, dla0 the rest)."""
    skip = {'dla0-fp16', 'dla1-int8'}
    return [name for name in CONFIGS if name not in skip and not applies(name, env)]


class ParserFlagTensorRT:
    """The ``tensorrt`` module, except that every OnnxParser gets ``flags`` set.

    For the checklist's parser-flag experiments only (the package sets no parser flag).
    """

    def __init__(self, trt: Any, flags: Sequence[str]) -> None:
        self._trt, self._flags = trt, list(flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trt, name)

    def OnnxParser(self, network: Any, logger: Any) -> Any:  # noqa: N802 - TensorRT's name
        """Make the real parser and set the flags on it."""
        parser = self._trt.OnnxParser(network, logger)
        for flag in self._flags:
            parser.set_flag(getattr(self._trt.OnnxParserFlag, flag))
        return parser


@contextlib.contextmanager
def experiment_context(experiment: str, trt: Any) -> Iterator[Any]:
    """Yield the ``trt`` to build with for ``experiment`` (see CONFIGS)."""
    if experiment == 'adjust-for-dla':
        yield ParserFlagTensorRT(trt, ['ADJUST_FOR_DLA'])
        return
    if experiment != 'ort-qdq':
        yield trt
        return
    from tensorrt_yolox_py.quantization.strongly_typed import ENV_PYTHON

    old = os.environ.get(ENV_PYTHON)
    os.environ[ENV_PYTHON] = str(Path(tempfile.gettempdir()) / 'no-modelopt-for-this-check')
    try:
        yield trt
    finally:
        if old is None:
            os.environ.pop(ENV_PYTHON, None)
        else:
            os.environ[ENV_PYTHON] = old


def inspector_samples(layers: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Return one raw inspector layer per distinct LayerType (the first of each)."""
    samples: Dict[str, Any] = {}
    for layer in layers:
        samples.setdefault(layer['type'] or '(no LayerType)', layer['raw'])
    return samples


def check_config(name: str, values: Dict[str, Any], images: Sequence[np.ndarray], trt: Any,
                 memory: Any, reference: Any, options: Optional[Dict[str, Any]] = None
                 ) -> Dict[str, Any]:
    """Build/load, run and compare one configuration; return its result row.

    ``options``: ``int8_mode`` from the command line for the int8 configurations that do not
    fix their own, ``clip_value`` for the clip configurations (``DEFAULT_CLIP`` when 0).
    """
    from tensorrt_yolox_py.backends.tensorrt import (BuildProgress, EngineSettings,
                                                     prepare_engine, TensorRTBackend)
    from tensorrt_yolox_py.pipeline import Detector
    from tensorrt_yolox_py.image import SourceImage
    from tensorrt_yolox_py.stages.preprocess import preprocess_cpu

    device, precision, overrides, experiment = CONFIGS[name]
    options = options or {}
    params: Dict[str, Any] = {**values, 'device': device, 'precision': precision,
                              'preprocess_on_gpu': False}
    if precision == 'int8' and 'clip_value' not in overrides:
        params['int8_mode'] = options.get('int8_mode', 'auto')
    for key, value in overrides.items():
        params[key] = value if value is not None else (
            float(options.get('clip_value') or 0.0) or DEFAULT_CLIP)
    if experiment:      # its own cache: the engine key does not see the experiment
        params['engine_cache_dir'] = str(Path(values['engine_cache_dir']) / name)
    config = make_config(params)
    row: Dict[str, Any] = {'config': name, 'verdict': 'FAIL', 'experiment': experiment,
                           'int8_mode': params.get('int8_mode', ''),
                           'clip_value': params.get('clip_value', 0.0),
                           'max_batch': config.max_batch}
    settings = EngineSettings.from_config(config)
    with experiment_context(experiment, trt) as build_trt:
        start = time.perf_counter()
        prepared = prepare_engine(settings, build_trt, memory, BuildProgress())
        row['prepare_s'] = round(time.perf_counter() - start, 2)
        row['built'] = prepared.built
        row['cache_reload'] = not prepare_engine(settings, build_trt, memory,
                                                 BuildProgress()).built
    report = prepared.report
    row['int8_path'] = report.get('int8_path', '')
    row['calibration'] = report.get('calibration', '')
    row['typed_model_tool'] = report.get('typed_model_tool', '')
    row['fallback_layers'] = len(report.get('fallback_layers', []))
    row['engine_mb'] = round(prepared.path.stat().st_size / 1e6, 2)
    backend = TensorRTBackend(prepared.path, config.dla_core_id, config.gpu_id, memory,
                              False, trt)
    score_diff, matches, times = 0.0, [0, 0, 0], []
    layers = backend.engine_layer_info()
    counts: Dict[str, int] = {}
    for layer in layers:
        key = f"{layer['device']}-{layer['precision'] or '?'}"
        counts[key] = counts.get(key, 0) + 1
    row['layers'] = counts
    row['inspector_samples'] = inspector_samples(layers)
    tensors = []
    with Detector.from_config(config, backend=backend) as detector:
        for image in images:
            tensor, _ = preprocess_cpu(SourceImage.from_array(image), backend.input_hw)
            tensors.append(tensor)
            t0 = time.perf_counter()
            out = backend.infer(tensor)
            times.append((time.perf_counter() - t0) * 1e3)
            ref = reference.backend.infer(tensor)
            score_diff = max(score_diff, float(np.abs(out[..., 4:] - ref[..., 4:]).max()))
            got = detector.detect(SourceImage.from_array(image)).detections
            want = reference.detect(SourceImage.from_array(image)).detections
            matches = [m + n for m, n in zip(matches, match(got, want))]
        row['batch_score_diff'] = batch_agreement(backend, reference, tensors)
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
        if row['batch_score_diff'] is not None:
            ok = ok and row['batch_score_diff'] <= max_diff
    if row['device_path'] is not None and row['device_path'] < min_f1:
        ok = False
    row['verdict'] = 'PASS' if ok else 'FAIL'
    return row


def batch_agreement(backend: Any, reference: Any, tensors: Sequence[np.ndarray]
                    ) -> Optional[float]:
    """Run the images in batches of the engine's max_batch; return the largest score diff.

    None for a batch-1 engine.
    """
    top = int(backend.capabilities.max_batch)
    if top <= 1 or not tensors:
        return None
    diff = 0.0
    for first in range(0, len(tensors), top):
        chunk = np.concatenate(tensors[first:first + top])
        out = backend.infer(chunk)
        for index, tensor in enumerate(tensors[first:first + top]):
            ref = reference.backend.infer(tensor)
            diff = max(diff, float(np.abs(out[index:index + 1, ..., 4:] - ref[..., 4:]).max()))
    return round(diff, 5)


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
    from tensorrt_yolox_py.image import SourceImage
    from tensorrt_yolox_py.pipeline import Detector

    pre = CudaPreprocessor(backend.input_hw, dtype=backend.input_dtype, gpu_id=config.gpu_id)
    device_detector = Detector(backend, pre, host_detector.postprocessor, host_detector.labels)
    matches = [0, 0, 0]
    try:
        for image in images:
            got = device_detector.detect(SourceImage.from_array(image)).detections
            want = host_detector.detect(SourceImage.from_array(image)).detections
            matches = [m + n for m, n in zip(matches, match(got, want))]
    finally:
        pre.close()
    return round(f1(*matches), 4)


def questions(rows: Sequence[Dict[str, Any]]) -> Dict[str, str]:
    """Return what this run found on the two open questions; see the module docstring."""
    by = {row['config']: row for row in rows}
    out = {}
    plain, flagged = by.get('dla0-int8'), by.get('dla0-int8-adjust-for-dla')
    if plain and flagged and 'skipped' not in plain and 'skipped' not in flagged:
        def dla_layers(row: Dict[str, Any]) -> int:
            return sum(n for key, n in row.get('layers', {}).items() if key.startswith('DLA'))

        out['adjust_for_dla'] = (
            f"plain: {plain['verdict']}, {dla_layers(plain)} DLA layers, F1 "
            f"{plain.get('detection_f1', '-')}{'; error' if 'error' in plain else ''}; "
            f"ADJUST_FOR_DLA: {flagged['verdict']}, {dla_layers(flagged)} DLA layers, F1 "
            f"{flagged.get('detection_f1', '-')}{'; error' if 'error' in flagged else ''}")
    ort = by.get('gpu-int8-ort-qdq')
    if ort and 'skipped' not in ort:
        out['fp16_scale_qdq_around_concat'] = (
            f"TensorRT {'accepts' if 'error' not in ort else 'did not build'} the ONNX Runtime "
            f"typed model ({ort.get('typed_model_tool', '')}): {ort['verdict']}"
            + (f" ({ort['error']})" if 'error' in ort else ''))
    return out


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
    parser.add_argument('--int8-mode', default='auto',
                        choices=['auto', 'implicit', 'explicit', 'ranges'],
                        help='int8_mode of the calibrated int8 configurations that do not fix '
                        'their own (gpu-int8, gpu-int8-b4, dla*-int8; default: auto)')
    parser.add_argument('--clip-value', type=float, default=0.0,
                        help='clip_value of the -clip configurations (the ReLU6 recipe; '
                        f'default 0 means {DEFAULT_CLIP:g})')
    parser.add_argument('--cache-dir', help='engine cache (default: a temporary folder)')
    parser.add_argument('--gpu-id', type=int, default=0)
    parser.add_argument('--json', default='tensorrt_check.json',
                        help='results file, written after every configuration and at the end '
                        '(default: tensorrt_check.json)')
    args = parser.parse_args(argv)
    results: Dict[str, Any] = {'date': time.strftime('%Y-%m-%d %H:%M:%S %z'),
                               'argv': list(sys.argv[1:] if argv is None else argv),
                               'rows': []}

    def write() -> None:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + '\n')

    try:
        return _run(args, trt, memory_factory, results, write)
    finally:
        write()


def _run(args: Any, trt: Any, memory_factory: Optional[Callable[[int], Any]],
         results: Dict[str, Any], write: Callable[[], None]) -> Tuple[int, Dict[str, Any]]:
    from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
    from tensorrt_yolox_py.backends.tensorrt.common import import_tensorrt
    from tensorrt_yolox_py.pipeline import Detector

    with tempfile.TemporaryDirectory(prefix='trt_check_') as tmp:
        work = Path(tmp)
        try:
            trt = trt or import_tensorrt()
            if memory_factory is None:
                from tensorrt_yolox_py.cuda.memory import CudaMemory

                memory_factory = CudaMemory
            memory = memory_factory(args.gpu_id)
            results['environment'] = env = environment(trt, memory)
        except Exception as exc:  # any failure here: record it, exit 2
            results['environment_error'] = f'{type(exc).__name__}: {exc}'
            results['traceback'] = traceback.format_exc()[-4000:]
            print(f'environment not usable: {type(exc).__name__}: {exc}')
            return 2, results
        for key, value in env.items():
            print(f'{key:>18}: {value}')
        names = args.configs.split(',') if args.configs else default_configs(env)
        unknown = [name for name in names if name not in CONFIGS]
        if unknown:
            results['environment_error'] = f'unknown configurations {unknown}'
            print(f'unknown configuration(s) {", ".join(unknown)} (known: {", ".join(CONFIGS)})')
            return 2, results
        model = Path(args.model) if args.model else DEFAULT_MODEL_PATH
        if not model.is_file():
            from tensorrt_yolox_py.devkit.synthetic import make_planted_model

            model = make_planted_model(work / 'planted.onnx')
            print(f'{"model":>18}: {model} (planted test model; pass --model for yours)')
        results['model'] = str(model)
        images = test_images(args.images, args.num_images, work)
        values = {'model_path': str(model), 'gpu_id': args.gpu_id,
                  'engine_cache_dir': args.cache_dir or str(work / 'engines'),
                  'calibration_image_list_path': args.calibration_images or args.images
                  or str(work), 'calibration_num_images': 500}
        options = {'int8_mode': args.int8_mode, 'clip_value': args.clip_value}
        reference = Detector.from_config(make_config({**values, 'device': 'cpu'}),
                                         backend=OnnxRuntimeBackend(model))
        interrupted = False
        with reference:
            for name in names:
                why = applies(name, env)
                if why:
                    row: Dict[str, Any] = {'config': name, 'verdict': 'SKIP', 'skipped': why}
                else:
                    try:
                        row = check_config(name, values, images, trt, memory, reference,
                                           options)
                    except KeyboardInterrupt:
                        row = {'config': name, 'verdict': 'FAIL', 'error': 'interrupted'}
                        interrupted = True
                    except Exception as exc:  # any error of one configuration: record, go on
                        row = {'config': name, 'verdict': 'FAIL',
                               'error': f'{type(exc).__name__}: {exc}',
                               'traceback': traceback.format_exc()[-4000:]}
                results['rows'].append(row)
                results['questions'] = questions(results['rows'])
                write()
                print(json.dumps({k: v for k, v in row.items()
                                  if k not in ('inspector_samples', 'traceback')}, default=str))
                if interrupted:
                    break
    print()
    print(f'{"config":<24} {"verdict":<7} {"int8 path":<10} {"build s":>8} {"MB":>6} '
          f'{"score diff":>10} {"det F1":>6} {"infer ms":>8}  device-path F1')
    for row in results['rows']:
        print(f'{row["config"]:<24} {row["verdict"]:<7} {row.get("int8_path", ""):<10} '
              f'{row.get("prepare_s", 0):>8} {row.get("engine_mb", 0):>6} '
              f'{row.get("max_score_diff", ""):>10} {row.get("detection_f1", ""):>6} '
              f'{row.get("infer_ms_median", ""):>8}  '
              f'{"n/a" if row.get("device_path") is None else row["device_path"]}'
              + (f'  ERROR: {row["error"]}' if 'error' in row else '')
              + (f'  ({row["skipped"]})' if 'skipped' in row else ''))
    for key, text in results.get('questions', {}).items():
        print(f'question {key}: {text}')
    ran = [row for row in results['rows'] if row['verdict'] != 'SKIP']
    passed = bool(ran) and all(row['verdict'] == 'PASS' for row in ran)
    print(f'\nverdict: {"PASS" if passed else "FAIL"} ({len(ran)} configurations ran, '
          f'{len(results["rows"]) - len(ran)} skipped); results in {args.json}')
    if interrupted:
        return 130, results
    return (0 if passed else 1), results


def main() -> int:
    """Command-line entry point."""
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] %(name)s: %(message)s')
    return run()[0]


if __name__ == '__main__':
    sys.exit(main())
