"""INT8 calibration study (TIER IV 2023's finding) on the bundled demo model, on the CPU.

    python benchmarks/calibration_study.py [--calib 100 1000] [--eval-frames 300]
    python benchmarks/calibration_study.py --typed-only [--calib 100]   # TensorRT 11 rows

FP32 against ONNX Runtime static INT8 (QDQ, uint8 activations, int8 per-channel weights: the
``quantization.static`` target 'cpu' options) with the activation ranges calibrated by:

- MinMax; Entropy (ONNX Runtime's defaults: 128 histogram bins, 128 quantized bins); Entropy
  with 2048 bins (the histogram size of TensorRT's entropy calibrator); Percentile 99.99 /
  99.999 / 99.9999 (ONNX Runtime's defaults: histogram of |x|, 2048 bins, symmetric range);
- the ReLU6 fixed-range recipe: ranges known from the architecture instead of measured:
  input (0, 255), every ReLU6 output and the convolution feeding it (0, 6), concatenations /
  resizes of such tensors (0, 6), residual sums of them (0, 6 + 6), sigmoids (0, 1); the few
  tensors whose range the architecture does not bound (the head's prediction convolutions and
  the output concatenation) keep their MinMax range from the same images;

each with 100 and 1000 calibration images (training-split scenes through the inference
letterbox), scored with pycocotools on held-out TEST-split frames, plus the median CPU
inference time. Writes ``benchmarks/results/calibration_study.json``, ``calibration_study.md``
(the README table) and ``calibration_study.png``.

How the ranges are computed: with the package's bounded-memory calibration
(``tensorrt_yolox_py.quantization.streaming.StreamingCalibration``, ONNX Runtime's own range
algorithms; tested equal to ONNX Runtime's one-shot calibrators), one augmented model feeding
every method, spans of images spread over worker processes; the models come from
``onnxruntime.quantization.quantize_static`` reading the ranges from its calibration cache
(``calibration_cache_path``). See that module for why ONNX Runtime's calibrators cannot run
1000 images of this model (memory; ``CalibMaxIntermediateOutputs`` drops images).
- The 100-image ranges are those of the first 100 images of the 1000.

``--typed-only``: computes ONLY the rows of the models a strongly typed TensorRT 11 network is
built from (``tensorrt_yolox_py.quantization.strongly_typed``): FP16 (AutoCast), and INT8 Q/DQ
with FP16 for the rest from ModelOpt max / entropy, the ONNX Runtime quantizer (MinMax) and the
ReLU6 clip recipe (fixed scales 255/127 on the input, 6/127 elsewhere; with the head in FP16;
with residual sums at 12/127, the module's default), calibrated on the same
training-split frames (written as PNG files and read back through the package's calibration
images), evaluated the same way, and merges them into the existing JSON / md / png (earlier
rows are kept; rows of an earlier ``--typed-only`` run are replaced). ONNX Runtime's CPU graph
fusions reject float16 Q/DQ scales (``QLinearConcat``), so these models run with basic graph
optimisations only: Q/DQ executed as written (fake quantization), which is slow and makes
their CPU latency meaningless for TensorRT.
"""

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tensorrt_yolox_py import trust  # noqa: E402
from tensorrt_yolox_py.backends.base import Backend, check_io_contract  # noqa: E402
from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from tensorrt_yolox_py.devkit.dataset import (TEST_SEED, TRAIN_SEED, frame_seed,  # noqa: E402
                                              generate_frames)
from tensorrt_yolox_py.devkit.evaluate_frames import evaluate_frames  # noqa: E402
from tensorrt_yolox_py.labels import DEFAULT_LABELS  # noqa: E402
from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH  # noqa: E402
from tensorrt_yolox_py.pipeline import Detector  # noqa: E402
from tensorrt_yolox_py.quantization.static import (prepare_model,  # noqa: E402
                                                   require_calibration_cache,
                                                   save_tensors_data)
from tensorrt_yolox_py.quantization.streaming import (ENTROPY_2048,  # noqa: E402
                                                      ENTROPY_ORT_DEFAULT,
                                                      PERCENTILE_ORT_DEFAULT,
                                                      StreamingCalibration)
from tensorrt_yolox_py.stages.postprocess import Postprocessor  # noqa: E402
from tensorrt_yolox_py.image import SourceImage  # noqa: E402
from tensorrt_yolox_py.stages.preprocess import CpuPreprocessor, preprocess_cpu  # noqa: E402

LOG = logging.getLogger('calibration_study')
PERCENTILES = (99.99, 99.999, 99.9999)
RELU6_MAX = 6.0


# ------------------------------------------------------------------------------ calibration
#: The study's histogram configurations: ONNX Runtime's defaults for Entropy and Percentile,
#: and Entropy with TensorRT's 2048-bin histogram (what the package's Entropy uses).
HISTOGRAMS = {'Entropy': ENTROPY_ORT_DEFAULT, 'Entropy-2048': ENTROPY_2048,
              'Percentile': PERCENTILE_ORT_DEFAULT}


def relu6_fixed_ranges(prepared: Path, minmax, input_name: str
                       ) -> Tuple[object, Dict[str, int]]:
    """Return (TensorsData, counts): architecture-derived ranges, MinMax for the rest."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

    model = onnx.load(str(prepared))
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == 'Constant':
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    consumers: Dict[str, List] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    bound: Dict[str, Tuple[float, float]] = {input_name: (0.0, 255.0)}
    for node in model.graph.node:          # topological order (ONNX requirement)
        ins = [bound.get(n) for n in node.input if n and n not in consts]
        if node.op_type == 'Clip' and len(node.input) >= 3 and node.input[1] in consts \
                and node.input[2] in consts:
            lo, hi = float(consts[node.input[1]]), float(consts[node.input[2]])
            if lo == 0.0 and hi == RELU6_MAX:
                bound[node.output[0]] = (0.0, RELU6_MAX)
                src = node.input[0]
                if len(consumers.get(src, [])) == 1:
                    bound[src] = (0.0, RELU6_MAX)   # conv feeding only this ReLU6
        elif node.op_type == 'Sigmoid':
            bound[node.output[0]] = (0.0, 1.0)
        elif node.op_type in ('Concat', 'Resize', 'MaxPool', 'Reshape', 'Transpose',
                              'Slice') and ins and all(b is not None for b in ins):
            bound[node.output[0]] = (min(b[0] for b in ins), max(b[1] for b in ins))
        elif node.op_type == 'Add' and len(ins) == 2 and all(b is not None for b in ins):
            bound[node.output[0]] = (ins[0][0] + ins[1][0], ins[0][1] + ins[1][1])
    data = {}
    fixed = calibrated = 0
    for name, value in minmax.data.items():
        if name in bound:
            lo, hi = bound[name]
            data[name] = (np.asarray(lo, np.float32), np.asarray(hi, np.float32))
            fixed += 1
        else:
            data[name] = (np.asarray(value.range_value[0], np.float32),
                          np.asarray(value.range_value[1], np.float32))
            calibrated += 1
    return TensorsData(CalibrationMethod.MinMax, data), {'fixed': fixed,
                                                         'minmax_calibrated': calibrated}


def quantize_with_ranges(prepared: Path, tensors_data, out_path: Path, work: Path,
                         stem: str = '') -> Path:
    """Quantize ``prepared`` with precomputed ranges through quantize_static's cache.

    The cache is kept as ``<stem>.calibration.json`` in ``work`` (``calibration_ranges.py``
    reads it); ``stem`` defaults to ``out_path``'s.
    """
    from onnxruntime import quantization as quant

    cache = work / f'{stem or out_path.stem}.calibration.json'
    if cache.exists():
        cache.unlink()
    save_tensors_data(tensors_data, cache)
    quant.quantize_static(
        str(prepared), str(out_path), calibration_data_reader=None,
        calibration_cache_path=str(cache), quant_format=quant.QuantFormat.QDQ,
        per_channel=True, activation_type=quant.QuantType.QUInt8,
        weight_type=quant.QuantType.QInt8,
        calibrate_method=tensors_data.calibration_method, extra_options={})
    return out_path


# ------------------------------------------------------------------------------- evaluation
class BasicOptimizationBackend(Backend):
    """ONNX Runtime CPU with basic graph optimisations: runs float16 Q/DQ models as written.

    ONNX Runtime 1.32's extended fusions turn DequantizeLinear -> Concat -> QuantizeLinear
    into ``QLinearConcat``, which rejects the float16 scales of a strongly typed model.
    """

    name = 'onnxruntime-basic'

    def __init__(self, model_path: Path, num_threads: int = 0) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        if num_threads > 0:
            options.intra_op_num_threads = int(num_threads)
        self._session = ort.InferenceSession(str(model_path), sess_options=options,
                                             providers=['CPUExecutionProvider'])
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        check_io_contract(tuple(inp.shape), tuple(out.shape), str(model_path), 1, 1, inp.name)
        self.input_name, self.output_name = inp.name, out.name
        self.input_shape = tuple(int(d) for d in inp.shape)
        self.output_shape = tuple(d if isinstance(d, int) else -1 for d in out.shape)

    def _infer_impl(self, tensor: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run([self.output_name], {self.input_name: tensor})[0],
                          np.float32)


def make_detector(model: Path, threads: int, input_hw: Tuple[int, int],
                  basic: bool = False) -> Detector:
    """Return a CPU detector with the evaluation thresholds (score 0.01, NMS 0.7)."""
    backend = (BasicOptimizationBackend(model, threads) if basic
               else OnnxRuntimeBackend(model, num_threads=threads))
    return Detector(backend, CpuPreprocessor(backend.input_hw),
                    Postprocessor(backend.input_hw, 0.01, 0.7, 100, 'raw'), DEFAULT_LABELS)


# ------------------------------------------------------------------------------- reporting
def markdown(rows: List[Dict[str, object]], meta: Dict[str, object]) -> str:
    """Return the README table."""
    fp32 = next(r for r in rows if r['config'] == 'FP32')
    lines = ['| model | calibration | images | mAP50 | mAP50 vs FP32 | mAP50:95 | '
             'CPU infer ms (median) |', '|---|---|---|---|---|---|---|']
    for r in rows:
        d50 = (r['mAP50'] - fp32['mAP50']) * 100
        lines.append(f"| {'FP32' if r['config'] == 'FP32' else 'INT8'} | "
                     f"{'-' if r['config'] == 'FP32' else r['config']} | "
                     f"{r.get('images') or '-'} | {r['mAP50']:.3f} | "
                     f"{'-' if r['config'] == 'FP32' else f'{d50:+.1f} pt'} | "
                     f"{r['mAP']:.3f} | {r['infer_ms_median']:.0f} |")
    lines += ['', f"Measured {meta['date']} on {meta['machine']['processor']} "
              f"({meta['machine']['cpus']} cores, ONNX Runtime {meta['onnxruntime']}, "
              f"{meta['threads']} threads; load average {meta['load_average']}) with "
              f"{meta['eval_frames']} held-out frames; latency = median of "
              f"{meta['latency_frames']} single-image inferences (other jobs shared the CPU, "
              'so compare latencies only within the table).']
    return '\n'.join(lines)


def plot(rows: List[Dict[str, object]], path: Path) -> None:
    """Bar chart of mAP50 / mAP and latency per configuration."""
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt

    labels = [r['config'] + (f"\n{r['images']}" if r.get('images') else '') for r in rows]
    x = np.arange(len(rows))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(12, 0.6 * len(rows)), 7), dpi=110,
                                   sharex=True)
    ax1.bar(x - 0.2, [r['mAP50'] for r in rows], 0.4, label='mAP50')
    ax1.bar(x + 0.2, [r['mAP'] for r in rows], 0.4, label='mAP50:95')
    ax1.axhline(rows[0]['mAP50'] - 0.02, color='k', lw=0.8, ls='--',
                label='FP32 mAP50 - 2 pt')
    ax1.set_ylabel('COCO AP')
    ax1.set_ylim(0, 1.08)
    ax1.legend(fontsize=8, loc='upper right', ncol=3)
    ax1.grid(axis='y', alpha=0.3)
    ax2.bar(x, [r['infer_ms_median'] for r in rows], 0.5, color='#bb5566')
    ax2.set_ylabel('CPU infer ms (median)')
    ax2.set_xticks(x)
    ax2.set_xticklabels(labels, rotation=35, ha='right', fontsize=8)
    ax2.grid(axis='y', alpha=0.3)
    fig.suptitle('INT8 calibration study: demo model, ONNX Runtime CPU')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------- parallel, resumable driver
_WORKER: Dict[str, object] = {}


def _init_worker(prepared: str, work: str, counts: Sequence[int], input_hw: Tuple[int, int],
                 chunk: int) -> None:
    import cv2

    cv2.setNumThreads(1)
    import shutil

    folder = Path(work) / f'worker_{os.getpid()}'
    folder.mkdir(parents=True, exist_ok=True)
    # a private copy: ONNX Runtime writes and deletes <model>-inferred.onnx beside the model
    shutil.copyfile(prepared, folder / 'prepared.onnx')
    _WORKER.update(stream=StreamingCalibration(folder / 'prepared.onnx', folder, counts,
                                               HISTOGRAMS, threads=1),
                   input_hw=tuple(input_hw), chunk=int(chunk))


def _tensors(start: int, stop: int):
    """Yield chunks of preprocessed training-split tensors for images [start, stop)."""
    input_hw = _WORKER['input_hw']
    chunk: List[np.ndarray] = []
    for frame in generate_frames([frame_seed(TRAIN_SEED, i) for i in range(start, stop)],
                                 input_hw, workers=1):
        chunk.append(preprocess_cpu(SourceImage.from_array(frame.image), input_hw)[0])
        if len(chunk) == _WORKER['chunk']:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _pass1_task(span: Tuple[int, int]) -> Tuple[Tuple[int, int], Dict[str, tuple]]:
    """Return each tensor's (min, max, min |x|) over images [start, stop)."""
    stream = _WORKER['stream']
    stream.running, stream.seen = {}, 0
    for chunk in _tensors(*span):
        stream.observe(chunk)
    return span, dict(stream.running)


def _pass2_task(job) -> Tuple[Tuple[int, int], Dict[int, Dict[str, Dict[str, np.ndarray]]]]:
    """Return histogram counts over images [start, stop) for every count N > start."""
    span, stats = job
    stream = _WORKER['stream']
    stream.stats = stats
    # as if the images before the span had been fed: collect() then fills the histograms of
    # every count N > start (spans never straddle a count), starting from empty ones
    stream.collectors, stream.fed = {}, span[0]
    for chunk in _tensors(*span):
        stream.collect(chunk)
    counts = {n: {method: {t: h[0] for t, h in col.histogram_dict.items()}
                  for method, col in cols.items()} for n, cols in stream.collectors.items()}
    return span, counts


def _eval_task(job) -> Tuple[str, Dict[str, object]]:
    """Accuracy of one model on the TEST frames (one thread; latency is measured apart)."""
    key, path, eval_frames, input_hw = job[:4]
    basic = bool(job[4]) if len(job) > 4 else False
    frames = list(generate_frames([frame_seed(TEST_SEED, i) for i in range(eval_frames)],
                                  tuple(input_hw), workers=1))
    with make_detector(Path(path), 1, tuple(input_hw), basic) as det:
        result, _ = evaluate_frames(det.detect, frames)
    return key, {'mAP50': result.mAP50, 'mAP': result.mAP, 'mAP75': result.mAP75,
                 'per_class_AP50': result.per_class_AP50, 'model_bytes': Path(path).stat().st_size,
                 'model_sha256': trust.file_sha256(path)}


def _evaluated(done: Dict[str, Dict[str, object]], key: str, path: Path) -> bool:
    """Whether ``done`` holds the evaluation of ``key`` on exactly the model now at ``path``."""
    return key in done and done[key].get('model_sha256') == trust.file_sha256(path)


# ------------------------------------------------------------------------------ checkpoints
# Every file of the work folder is written atomically with a digest sidecar (tensorrt_yolox_py
# .trust) and reused only if it verifies; a missing, truncated or altered one is redone. No
# pickle: per-span statistics are .npz of plain arrays (read with allow_pickle=False), the
# evaluations JSON. A result is always used as read back from its checkpoint, so a resumed
# run computes from exactly what an uninterrupted one does.
def _span_path(work: Path, kind: str, span: Tuple[int, int]) -> Path:
    return work / kind / f'{kind}_{span[0]:06d}_{span[1]:06d}.npz'


def save_pass1(path: Path, stats: Dict[str, tuple]) -> Dict[str, tuple]:
    """Store one span's {tensor: (min, max, min |x|)}; return it as read back."""
    names = sorted(stats)
    trust.save_arrays(path, {'names': np.array(names, dtype=str),
                             'values': np.array([stats[n] for n in names], np.float64)
                             .reshape(len(names), 3)})
    return load_pass1(path)


def load_pass1(path: Path) -> Dict[str, tuple]:
    """Return a verified span of pass 1, or None (missing or bad: redo the span)."""
    arrays = trust.load_arrays(path, 'pass 1 checkpoint')
    if arrays is None or set(arrays) != {'names', 'values'}:
        return None
    return {str(n): tuple(float(v) for v in row)
            for n, row in zip(arrays['names'], arrays['values'])}


def save_pass2(path: Path, hist: Dict[int, Dict[str, Dict[str, np.ndarray]]]) -> dict:
    """Store one span's histogram counts {n: {method: {tensor: counts}}}; return them read back."""
    keys = [(n, m, t) for n in sorted(hist) for m in sorted(hist[n]) for t in sorted(hist[n][m])]
    arrays = {f'h{i}': np.asarray(hist[n][m][t]) for i, (n, m, t) in enumerate(keys)}
    arrays['keys'] = np.array([f'{n}|{m}|{t}' for n, m, t in keys], dtype=str)
    trust.save_arrays(path, arrays)
    return load_pass2(path)


def load_pass2(path: Path) -> dict:
    """Return a verified span of pass 2, or None (missing or bad: redo the span)."""
    arrays = trust.load_arrays(path, 'pass 2 checkpoint')
    if arrays is None or 'keys' not in arrays or len(arrays) != len(arrays['keys']) + 1:
        return None
    out: Dict[int, Dict[str, Dict[str, np.ndarray]]] = {}
    for index, key in enumerate(arrays['keys']):
        n, method, tensor = str(key).split('|', 2)
        out.setdefault(int(n), {}).setdefault(method, {})[tensor] = arrays[f'h{index}']
    return out


def load_results(path: Path) -> Dict[str, Dict[str, object]]:
    """Return the verified evaluations checkpoint, or {} (missing or bad: evaluate again)."""
    value = trust.load_json(path, 'evaluation checkpoint')
    return value if isinstance(value, dict) else {}


def save_results(path: Path, done: Dict[str, Dict[str, object]]) -> None:
    """Store the evaluations so far (JSON, atomically, with its digest)."""
    trust.save_json(path, done)


def made(path: Path, write) -> Path:
    """Return ``path``, (re)made by ``write(tmp)`` unless it is a verified artefact."""
    if not trust.usable(path, 'study file'):
        with trust.staging(path) as tmp:
            write(tmp)
    return path


def default_work() -> Path:
    """Return the default work folder: private to the user (not /tmp)."""
    return Path('~/.cache/tensorrt_yolox_py/calibration_study').expanduser()


def write_output(path: Path, text: str) -> None:
    """Write a result file atomically (no digest: results are read by people, not reused)."""
    trust.write_atomic(path, text.encode('utf-8'), digest=False)


def latency(model: Path, frames: Sequence, n: int, threads: int,
            basic: bool = False) -> Dict[str, float]:
    """Median / p90 single-image inference time in ms (after two warm-up runs)."""
    with make_detector(model, threads, (0, 0), basic) as det:
        tensors = [preprocess_cpu(SourceImage.from_array(f.image), det.input_hw)[0]
                   for f in frames[:n]]
        for t in tensors[:2]:
            det.backend.infer(t)
        times = []
        for t in tensors:
            t0 = time.perf_counter()
            det.backend.infer(t)
            times.append((time.perf_counter() - t0) * 1e3)
    return {'infer_ms_median': float(np.median(times)),
            'infer_ms_p90': float(np.percentile(times, 90))}


# ------------------------------------------------------- strongly typed (TensorRT 11) rows
#: (config, kind, options of quantize_int8_qdq / convert_fp16): the models a strongly typed
#: TensorRT network is built from.
TYPED_CONFIGS = (
    ('FP16 (AutoCast)', 'fp16', {'tool': 'modelopt'}),
    ('ModelOpt max', 'int8', {'method': 'MinMax', 'tool': 'modelopt'}),
    ('ModelOpt entropy', 'int8', {'method': 'Entropy', 'tool': 'modelopt'}),
    ('ORT MinMax', 'int8', {'method': 'MinMax', 'tool': 'onnxruntime'}),
    ('ReLU6 clip 6 (fixed scales)', 'int8', {'clip_value': RELU6_MAX, 'tool': 'onnxruntime',
                                             'clip_residual_sums': False}),
    ('ReLU6 clip 6, last layers FP16', 'int8', {'clip_value': RELU6_MAX, 'tool': 'onnxruntime',
                                                'fp16_last_layer': True,
                                                'clip_residual_sums': False}),
    ('ReLU6 clip 6, residual sums (0, 12)', 'int8', {
        'clip_value': RELU6_MAX, 'tool': 'onnxruntime', 'clip_residual_sums': True}),
)
TYPED_RUN = 'strongly-typed'


def _write_calibration_pngs(folder: Path, count: int, input_hw: Tuple[int, int]) -> List[Path]:
    """Write the first ``count`` training-split frames (the study's calibration set) as PNG."""
    import cv2

    trust.check_folder(folder, 'study work folder')
    paths = [folder / f'train_{i:05d}.png' for i in range(count)]
    todo = [i for i, p in enumerate(paths) if not trust.usable(p, 'calibration image')]
    frames = generate_frames([frame_seed(TRAIN_SEED, i) for i in todo], input_hw, workers=1)
    for index, frame in zip(todo, frames):
        ok, data = cv2.imencode('.png', frame.image)
        if not ok:
            raise RuntimeError(f'cannot encode {paths[index]}')
        trust.write_atomic(paths[index], data.tobytes())
    return paths


def typed_models(model: Path, counts: Sequence[int], input_hw: Tuple[int, int], work: Path
                 ) -> List[Tuple[str, int, Path, Dict[str, object]]]:
    """Make (or reuse) every strongly typed model; return (config, images, path, facts)."""
    from tensorrt_yolox_py.quantization.strongly_typed import (convert_fp16,
                                                               describe_typed_model,
                                                               modelopt_status,
                                                               quantize_int8_qdq)

    tool, why = modelopt_status()
    LOG.info('ModelOpt: %s', why)
    out: List[Tuple[str, int, Path, Dict[str, object]]] = []
    images = _write_calibration_pngs(work / 'calib_png', max(counts), input_hw)
    for config, kind, options in TYPED_CONFIGS:
        for n in ([0] if kind == 'fp16' or 'clip_value' in options else counts):
            path = work / ('typed_' + ''.join(c if c.isalnum() else '_' for c in config)
                           + f'_{n}.onnx')
            info_path = path.with_suffix('.json')
            if options.get('tool') == 'modelopt' and tool is None:
                out.append((config, n, path, {'error': f'not evaluated: {why}'}))
                continue
            info = trust.load_json(info_path, 'model facts') if trust.usable(
                path, 'typed model') else None
            if not isinstance(info, dict):
                t0 = time.time()
                try:
                    with trust.staging(path) as tmp:
                        if kind == 'fp16':
                            result = convert_fp16(model, tmp, **options)
                        else:
                            result = quantize_int8_qdq(model, tmp, images[:n], **options)
                except (RuntimeError, ValueError, ImportError) as exc:
                    LOG.error('%s (%d images) failed: %s', config, n, exc)
                    out.append((config, n, path, {'error': f'not made: {exc}'}))
                    continue
                facts = describe_typed_model(path)
                info = {'tool': result.tool, 'method': result.method,
                        'excluded_nodes': result.excluded_nodes, 'notes': result.notes,
                        'make_seconds': round(time.time() - t0, 1),
                        'quantized_weighted_nodes': len(facts['quantized_weighted_nodes']),
                        'float_weighted_nodes': facts['float_weighted_nodes'],
                        'qdq_pairs': facts['op_counts'].get('QuantizeLinear', 0),
                        'float_initializer_dtypes': sorted(set(
                            facts['float_initializers'].values())),
                        'io': [facts['inputs'], facts['outputs']]}
                trust.save_json(info_path, info)
                info = trust.load_json(info_path, 'model facts')
            out.append((config, n, path, info))
            if kind == 'int8':
                twin = path.with_name(path.stem + '_int8convs.onnx')
                made(twin, lambda tmp: quantized_convs_in_float32(path, tmp))
                out.append((config + INT8_CONVS, n, twin,
                            dict(info, emulation='quantized Conv in float32, rest float16')))
    return out


INT8_CONVS = ' [int8 convs emulated]'


def quantized_convs_in_float32(src: Path, dst: Path) -> Path:
    """Write ``src`` with every quantized convolution computed in float32, the rest unchanged.

    A convolution between DequantizeLinear outputs is what TensorRT fuses into an INT8
    convolution (int8 x int8 products, int32 accumulation, scales applied in float32), but
    ONNX Runtime's CPU runs it as a float16 convolution whose float16 accumulation error each
    following QuantizeLinear amplifies (measured: 4x the score error of the same model with
    those convolutions in float32). Here each such Conv reads float32 casts of its inputs and
    its output is cast back to float16: the Q/DQ scales, weights and every other layer keep
    their float16 types.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    producers = {o: n for n in model.graph.node for o in n.output}
    nodes = []
    for node in model.graph.node:
        source = producers.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type != 'Conv' or source is None or source.op_type != 'DequantizeLinear':
            nodes.append(node)
            continue
        inputs = []
        for index, name in enumerate(node.input):
            if not name:
                inputs.append(name)
                continue
            cast = f'{node.name}_input{index}_float32'
            nodes.append(helper.make_node('Cast', [name], [cast], name=cast,
                                          to=onnx.TensorProto.FLOAT))
            inputs.append(cast)
        output = node.output[0]
        node.input[:] = inputs
        node.output[0] = f'{output}_float32'
        nodes.append(node)
        nodes.append(helper.make_node('Cast', [node.output[0]], [output],
                                      name=f'{node.name}_output_float16',
                                      to=onnx.TensorProto.FLOAT16))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def typed_markdown(rows: List[Dict[str, object]], meta: Dict[str, object],
                   typed_meta: Dict[str, object]) -> str:
    """Return the whole table: the main run's rows, then the strongly typed rows."""
    main_rows = [r for r in rows if r.get('run') != TYPED_RUN]
    table = markdown(main_rows, meta).split('\n')
    fp32 = next(r for r in main_rows if r['config'] == 'FP32')
    head, notes = table[:-2], table[-2:]
    typed = ['', 'Strongly typed (TensorRT 11) models: Q/DQ INT8 + FP16 rest, float32 I/O '
             '(`quantization.strongly_typed`), run by ONNX Runtime CPU with basic graph '
             'optimisations (Q/DQ executed as written, float16 elsewhere). '
             f'Rows marked{INT8_CONVS}: the same model with only its quantized convolutions '
             '(those reading DequantizeLinear weights) computed in float32, as TensorRT\'s '
             'fused INT8 convolutions accumulate in int32; ONNX Runtime\'s CPU runs them as '
             'float16 convolutions, whose float16 accumulation error the next quantization '
             'amplifies. Those rows are the estimate of a TensorRT engine; the plain rows '
             'show what ONNX Runtime itself makes of these files:', '',
             '| model | recipe (tool) | images | mAP50 | mAP50 vs FP32 | mAP50:95 | '
             'CPU infer ms (median) |', '|---|---|---|---|---|---|---|']
    for r in rows:
        if r.get('run') != TYPED_RUN:
            continue
        label = 'FP16' if r['config'].startswith('FP16') else 'INT8 Q/DQ + FP16'
        tool = f" ({r['tool']})" if r.get('tool') else ''
        if 'mAP50' not in r:
            typed.append(f"| {label} | {r['config']}{tool} | {r.get('images') or '-'} | "
                         f"- | - | - | - |  {r.get('error', '')}")
            continue
        d50 = (r['mAP50'] - fp32['mAP50']) * 100
        typed.append(f"| {label} | {r['config']}{tool} | {r.get('images') or '-'} | "
                     f"{r['mAP50']:.3f} | {d50:+.1f} pt | {r['mAP']:.3f} | "
                     f"{r['infer_ms_median']:.0f} |")
    typed += ['', f"Rows above the first note: the full run of {meta['date']}. Strongly typed "
              f"rows: `--typed-only` run of {typed_meta['date']} on "
              f"{typed_meta['machine']['processor']} ({typed_meta['machine']['cpus']} cores, "
              f"host {typed_meta['machine']['host']}; ONNX Runtime {typed_meta['onnxruntime']}, "
              f"{typed_meta['modelopt']}; load average {typed_meta['load_average']}), same "
              f"{typed_meta['eval_frames']} held-out frames and scoring (the last of several "
              '`--typed-only` invocations the same day, each resuming the models and '
              'evaluations of the earlier ones from `--work`). Their latency is '
              'ONNX Runtime executing Q/DQ and float16 on the CPU without fusions: it says '
              'nothing about TensorRT speed.']
    return '\n'.join(head + notes + typed)


def typed_main(args, model: Path, work: Path, input_hw: Tuple[int, int]) -> int:
    """Compute only the strongly typed rows and merge them into the existing results."""
    import multiprocessing as mp

    import onnxruntime

    out_dir = Path(args.out)
    existing = json.loads((out_dir / 'calibration_study.json').read_text(encoding='utf-8'))
    work = trust.check_folder(work, 'study work folder')
    t_start = time.time()
    models = typed_models(model, sorted(set(args.calib)), input_hw, work)
    ck = work / 'typed_eval.json'
    done: Dict[str, Dict[str, object]] = load_results(ck)
    jobs = [(f'{c}|{n}', str(p), args.eval_frames, list(input_hw), True)
            for c, n, p, info in models if 'error' not in info
            and not _evaluated(done, f'{c}|{n}', p)]
    if jobs:
        with mp.get_context('spawn').Pool(args.workers) as pool:
            for key, result in pool.imap_unordered(_eval_task, jobs):
                done[key] = result
                save_results(ck, done)
                LOG.info('%s: mAP50 %.4f mAP %.4f', key, result['mAP50'], result['mAP'])
    done = load_results(ck) if jobs else done         # as read back, as a resumed run
    latency_frames = list(generate_frames(
        [frame_seed(TEST_SEED, i) for i in range(args.latency_frames)], input_hw, workers=1))
    rows = []
    for config, n, path, info in models:
        row: Dict[str, object] = {'config': config, 'images': n or None, 'run': TYPED_RUN}
        row.update(info)
        if 'error' not in info:
            row.update(done[f'{config}|{n}'])
            if 'infer_ms_median' not in done[f'{config}|{n}']:     # checkpointed too
                done[f'{config}|{n}'].update(latency(path, latency_frames,
                                                     args.latency_frames, args.threads, True))
                save_results(ck, done)
            row.update(done[f'{config}|{n}'])
        rows.append(row)
    _, modelopt_why = __import__('tensorrt_yolox_py.quantization.strongly_typed',
                                 fromlist=['modelopt_status']).modelopt_status()
    typed_meta = {'date': time.strftime('%Y-%m-%d %H:%M:%S %z'),
                  'calibration_counts': sorted(set(args.calib)),
                  'eval_frames': args.eval_frames, 'latency_frames': args.latency_frames,
                  'onnxruntime': onnxruntime.__version__, 'modelopt': modelopt_why,
                  'session': 'ORT_ENABLE_BASIC graph optimisations, CPUExecutionProvider',
                  'total_seconds': round(time.time() - t_start, 1),
                  'load_average': [round(v, 2) for v in os.getloadavg()],
                  'machine': {'host': platform.node(),
                              'processor': platform.processor() or platform.machine(),
                              'cpus': os.cpu_count(), 'python': platform.python_version()}}
    merged = [r for r in existing['rows'] if r.get('run') != TYPED_RUN] + rows
    existing['rows'] = merged
    existing['typed_meta'] = typed_meta
    write_output(out_dir / 'calibration_study.json', json.dumps(existing, indent=2) + '\n')
    table = typed_markdown(merged, existing['meta'], typed_meta)
    write_output(out_dir / 'calibration_study.md', table + '\n')
    plot([r for r in merged if 'mAP50' in r], out_dir / 'calibration_study.png')
    print(table)
    return 0


def main() -> int:
    """Run the study (resumable: re-run with the same --work to continue)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default=str(DEFAULT_MODEL_PATH))
    ap.add_argument('--calib', nargs='+', type=int, default=[100, 1000])
    ap.add_argument('--eval-frames', type=int, default=300)
    ap.add_argument('--latency-frames', type=int, default=20)
    ap.add_argument('--chunk', type=int, default=4, help='images per calibration batch')
    ap.add_argument('--task', type=int, default=50, help='images per worker task')
    ap.add_argument('--workers', type=int, default=2, help='processes')
    ap.add_argument('--threads', type=int, default=0, help='ORT threads for the latency')
    ap.add_argument('--work', default=None, help='folder for models and checkpoints (default '
                    '~/.cache/tensorrt_yolox_py/calibration_study; it must be yours and '
                    'writable by nobody else: its files are trusted on resume)')
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results'))
    ap.add_argument('--typed-only', action='store_true',
                    help='only the strongly typed (TensorRT 11) rows, merged into the results')
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    import multiprocessing as mp

    t_start = time.time()
    try:
        work = trust.check_folder(args.work or default_work(), 'study work folder')
    except trust.UntrustedPathError as exc:
        raise SystemExit(f'calibration_study: {exc}') from None
    model = Path(args.model)
    if args.typed_only:
        with OnnxRuntimeBackend(model) as backend:
            return typed_main(args, model, work, backend.input_hw)
    prepared = work / 'prepared.onnx'
    require_calibration_cache()        # fail now, not after an hour of calibration
    made(prepared, lambda tmp: prepare_model(model, tmp))
    with OnnxRuntimeBackend(model) as backend:
        input_hw = backend.input_hw
        input_name = backend.input_name
    counts = sorted(set(args.calib))
    if any(n % args.task for n in counts):
        raise SystemExit(f'--task ({args.task}) must divide every --calib count {counts}')
    spans = [(a, a + args.task) for a in range(0, counts[-1], args.task)]
    ctx = mp.get_context('spawn')
    init = (str(prepared), str(work), counts, input_hw, args.chunk)
    t0 = time.time()

    # pass 1: per-span ranges, merged into per-count ranges
    trust.check_folder(work / 'pass1', 'study work folder')
    trust.check_folder(work / 'pass2', 'study work folder')
    done1: Dict[Tuple[int, int], Dict[str, tuple]] = {}
    for span in spans:
        stats = load_pass1(_span_path(work, 'pass1', span))
        if stats is not None:
            done1[span] = stats
    resumed = bool(done1)  # timings below then cover only this invocation
    todo = [s for s in spans if s not in done1]
    if todo:
        with ctx.Pool(args.workers, _init_worker, init) as pool:
            for span, stats in pool.imap_unordered(_pass1_task, todo):
                done1[span] = save_pass1(_span_path(work, 'pass1', span), stats)
                LOG.info('pass 1: %d/%d spans, %.0f s', len(done1), len(spans),
                         time.time() - t0)
    stats_by_count: Dict[int, Dict[str, tuple]] = {}
    for n in counts:
        merged: Dict[str, tuple] = {}
        for span in spans:
            if span[1] > n:
                continue
            for name, (lo, hi, la) in done1[span].items():
                old = merged.get(name)
                merged[name] = (lo, hi, la) if old is None else (
                    min(lo, old[0]), max(hi, old[1]), min(la, old[2]))
        stats_by_count[n] = merged

    # pass 2: histogram counts per span (fixed edges, so they add up exactly)
    done2: Dict[Tuple[int, int], dict] = {}
    for span in spans:
        hist = load_pass2(_span_path(work, 'pass2', span))
        if hist is not None:
            done2[span] = hist
    todo = [s for s in spans if s not in done2]
    if todo:
        with ctx.Pool(args.workers, _init_worker, init) as pool:
            for span, hist in pool.imap_unordered(_pass2_task,
                                                  [(s, stats_by_count) for s in todo]):
                done2[span] = save_pass2(_span_path(work, 'pass2', span), hist)
                LOG.info('pass 2: %d/%d spans, %.0f s', len(done2), len(spans),
                         time.time() - t0)
    calib_seconds = time.time() - t0

    # ranges per count from the summed histograms, then one INT8 model per configuration
    stream = StreamingCalibration(prepared, work, counts, HISTOGRAMS)
    stream.stats = stats_by_count
    models: List[Tuple[str, int, Path]] = [('FP32', 0, model)]
    for n in counts:
        stream.collectors[n] = stream.new_collectors(n)
        for span in spans:
            if span[1] > n:
                continue
            for method, per_tensor in done2[span][n].items():
                hist = stream.collectors[n][method].histogram_dict
                for tensor, counts_arr in per_tensor.items():
                    old = hist[tensor]
                    hist[tensor] = (old[0] + counts_arr,) + tuple(old[1:])
        names = ['MinMax', 'Entropy', 'Entropy-2048'] + [f'Percentile {p}'
                                                         for p in PERCENTILES]
        names.append('ReLU6 fixed (0, 6)')
        paths = {name: work / ('int8_' + name.replace(' ', '_').replace('(', '').replace(
            ')', '').replace(',', '') + f'_{n}.onnx') for name in names}
        if not all(trust.usable(p, 'INT8 model') for p in paths.values()):
            ranges = stream.ranges(n, PERCENTILES)
            ranges['ReLU6 fixed (0, 6)'], relu_counts = relu6_fixed_ranges(
                prepared, ranges['MinMax'], input_name)
            LOG.info('ranges at %d images ready (ReLU6 recipe: %s)', n, relu_counts)
            for name in names:
                made(paths[name], lambda tmp, name=name: quantize_with_ranges(
                    prepared, ranges[name], tmp, work, paths[name].stem))
        models += [(name, n, paths[name]) for name in names]
        del stream.collectors[n]

    # accuracy (parallel, resumable), then latency one model at a time
    ck3 = work / 'eval.json'
    done3: Dict[str, Dict[str, object]] = load_results(ck3)
    jobs = [(f'{name}|{n}', str(path), args.eval_frames, list(input_hw))
            for name, n, path in models if not _evaluated(done3, f'{name}|{n}', path)]
    if jobs:
        with ctx.Pool(args.workers) as pool:
            for key, result in pool.imap_unordered(_eval_task, jobs):
                done3[key] = result
                save_results(ck3, done3)
                LOG.info('%s: mAP50 %.4f mAP %.4f (%d/%d models)', key, result['mAP50'],
                         result['mAP'], len(done3), len(models))
        done3 = load_results(ck3)                    # as read back, as a resumed run
    latency_frames = list(generate_frames(
        [frame_seed(TEST_SEED, i) for i in range(args.latency_frames)], input_hw, workers=1))
    rows: List[Dict[str, object]] = []
    for name, n, path in models:
        row = {'config': name, 'images': n or None}
        row.update(done3[f'{name}|{n}'])
        row.update(latency(path, latency_frames, args.latency_frames, args.threads))
        rows.append(row)
        LOG.info('%s (%s images): mAP50 %.4f mAP %.4f, infer %.0f ms', name, n or '-',
                 row['mAP50'], row['mAP'], row['infer_ms_median'])
    import onnxruntime

    meta = {'date': time.strftime('%Y-%m-%d %H:%M:%S %z'), 'model': str(model.name),
            'model_input_hw': list(input_hw), 'eval_frames': args.eval_frames,
            'eval_split': f'TEST seeds from {frame_seed(TEST_SEED, 0)}',
            'calibration_split': f'TRAIN seeds from {frame_seed(TRAIN_SEED, 0)}',
            'calibration_counts': counts, 'latency_frames': args.latency_frames,
            'threads': args.threads or 'ORT default', 'onnxruntime': onnxruntime.__version__,
            'resumed_from_checkpoints': resumed,
            'calibration_seconds_this_invocation': round(calib_seconds, 1),
            'total_seconds_this_invocation': round(time.time() - t_start, 1),
            'load_average': [round(v, 2) for v in os.getloadavg()],
            'machine': {'host': platform.node(),
                        'processor': platform.processor() or platform.machine(),
                        'cpus': os.cpu_count(), 'python': platform.python_version()},
            'quantization': 'onnxruntime.quantization.quantize_static, QDQ, per-channel int8 '
                            'weights, uint8 activations, ranges from the calibration cache '
                            '(see the script docstring)',
            'gpu': None}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_output(out_dir / 'calibration_study.json',
                 json.dumps({'meta': meta, 'rows': rows}, indent=2) + '\n')
    table = markdown(rows, meta)
    write_output(out_dir / 'calibration_study.md', table + '\n')
    plot(rows, out_dir / 'calibration_study.png')
    print(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
