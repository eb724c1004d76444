"""INT8 calibration study (SEED_FACTS section 3) on the bundled demo model, on the CPU.

    python benchmarks/calibration_study.py [--calib 100 1000] [--eval-frames 300]

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

How the ranges are computed: the ranges come from ONNX Runtime's own classes
(``create_calibrator``'s augmented model, ``HistogramCollector`` for Entropy / Percentile,
``TensorsData``) and the models from ``onnxruntime.quantization.quantize_static`` reading them
from its calibration cache (``calibration_cache_path``), but the calibration images are
streamed in small chunks, in two passes, through ONE augmented model that feeds all methods:

- ONNX Runtime's histogram calibrators keep every intermediate tensor of every calibration
  image in memory before building histograms: about 300 MB per 960x640 image for this model,
  so 100 images would need ~30 GB and 1000 images ~300 GB. Pass 1 finds each tensor's range
  over the images; pass 2 creates the histograms with the edges ONNX Runtime's one-shot
  ``collect`` would choose from that range and adds the images chunk by chunk, which gives the
  same histograms. (Merging histograms whose range grows chunk after chunk, ONNX Runtime's
  ``merge_histogram``, multiplies the bin count when an early chunk has a small range.)
- ``CalibMaxIntermediateOutputs`` (what ``quantization.static`` passes to bound MinMax memory)
  drops the collected outputs every N images without computing their ranges in ONNX Runtime
  1.32 (microsoft/onnxruntime#18893; the fix PR #20226 was closed unmerged): MinMax then sees
  only the last ``count % N`` images and fails when the count is a multiple of N. The study
  computes MinMax as ``MinMaxCalibrater`` does without that option: the global min / max.
- The 100-image ranges are those of the first 100 images of the 1000.
"""

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from tensorrt_yolox_py.data.dataset import (TEST_SEED, TRAIN_SEED, frame_seed,  # noqa: E402
                                            generate_frames)
from tensorrt_yolox_py.evaluation.frames import evaluate_frames  # noqa: E402
from tensorrt_yolox_py.labels import DEFAULT_LABELS  # noqa: E402
from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH  # noqa: E402
from tensorrt_yolox_py.pipeline import Detector  # noqa: E402
from tensorrt_yolox_py.quantization.static import prepare_model  # noqa: E402
from tensorrt_yolox_py.stages.postprocess import Postprocessor  # noqa: E402
from tensorrt_yolox_py.stages.preprocess import CpuPreprocessor, preprocess_cpu  # noqa: E402

LOG = logging.getLogger('calibration_study')
PERCENTILES = (99.99, 99.999, 99.9999)
RELU6_MAX = 6.0


# ------------------------------------------------------------------------------ calibration
class StreamingCalibration:
    """Two passes over the calibration images through ONE augmented model (all methods).

    Pass 1 (``observe``) records each tensor's min, max and min |x| after the first N images,
    for every N in ``counts``. Pass 2 (``collect``) fills, for every N, ONNX Runtime's
    ``HistogramCollector`` objects whose histograms are created up front with the edges a
    one-shot ``collect`` over those N images would have chosen (from pass 1), so merging chunk
    after chunk only adds counts: the histograms equal what ONNX Runtime builds when it holds
    all N images in memory at once, without holding them.
    """

    def __init__(self, prepared: Path, work: Path, counts: Sequence[int]) -> None:
        from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

        calibrator = create_calibrator(prepared, None, str(work / 'augmented.onnx'),
                                       calibrate_method=CalibrationMethod.Entropy)
        self.session = calibrator.infer_session
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.tensors = sorted(calibrator.tensors_to_calibrate)
        keep = set(self.tensors)
        self.index = [i for i, n in enumerate(self.output_names) if n in keep]
        self.counts = sorted(counts)
        self.stats_session = self._stats_session(prepared, work)
        self.stats: Dict[int, Dict[str, Tuple[float, float, float]]] = {}
        self._running: Dict[str, Tuple[float, float, float]] = {}
        self.seen = 0
        self.collectors: Dict[int, Dict[str, object]] = {}
        self.fed = 0

    def _stats_session(self, prepared: Path, work: Path):
        """Session of the model plus ReduceMin / ReduceMax / ReduceMin(Abs) of each tensor."""
        import onnx
        import onnxruntime
        from onnx import helper

        model = onnx.load(str(prepared))
        for k, name in enumerate(self.tensors):
            model.graph.node.extend([
                helper.make_node('ReduceMin', [name], [f'_s{k}_min'], keepdims=0),
                helper.make_node('ReduceMax', [name], [f'_s{k}_max'], keepdims=0),
                helper.make_node('Abs', [name], [f'_s{k}_abs']),
                helper.make_node('ReduceMin', [f'_s{k}_abs'], [f'_s{k}_absmin'], keepdims=0)])
            for suffix in ('min', 'max', 'absmin'):
                model.graph.output.append(helper.make_tensor_value_info(
                    f'_s{k}_{suffix}', onnx.TensorProto.FLOAT, []))
        path = work / 'stats.onnx'
        onnx.save(model, str(path))
        return onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])

    def _run(self, tensors: Sequence[np.ndarray]) -> Dict[str, List[np.ndarray]]:
        outputs: Dict[str, List[np.ndarray]] = {self.output_names[i]: [] for i in self.index}
        for tensor in tensors:
            values = self.session.run(None, {self.input_name: tensor})
            for i in self.index:
                outputs[self.output_names[i]].append(values[i])
        return outputs

    def observe(self, tensors: Sequence[np.ndarray]) -> None:
        """Pass 1: update min / max / min |x| with a chunk (must not straddle a count)."""
        names = [f'_s{k}_{s}' for k in range(len(self.tensors)) for s in ('min', 'max',
                                                                          'absmin')]
        for tensor in tensors:
            values = self.stats_session.run(names, {self.input_name: tensor})
            for k, name in enumerate(self.tensors):
                low, high, low_abs = (float(v) for v in values[3 * k:3 * k + 3])
                old = self._running.get(name)
                if old is not None:
                    low, high = min(low, old[0]), max(high, old[1])
                    low_abs = min(low_abs, old[2])
                self._running[name] = (low, high, low_abs)
        self.seen += len(tensors)
        if self.seen in self.counts:
            self.stats[self.seen] = dict(self._running)

    def _new_collectors(self, n: int) -> Dict[str, object]:
        from onnxruntime.quantization.calibrate import HistogramCollector

        # ONNX Runtime's create_calibrator defaults for each method
        cols = {'Entropy': HistogramCollector('entropy', False, 128, 128, 99.999, 'same'),
                'Entropy-2048': HistogramCollector('entropy', False, 2048, 128, 99.999, 'same'),
                'Percentile': HistogramCollector('percentile', True, 2048, 128, 99.999,
                                                 'same')}
        for name in self.tensors:
            low, high, low_abs = self.stats[n][name]
            lo, hi = np.float32(low), np.float32(high)
            threshold = np.float32(max(abs(low), abs(high)))
            for key in ('Entropy', 'Entropy-2048'):
                bins = cols[key].num_bins
                _, edges = np.histogram(np.zeros(1, np.float32), bins,
                                        range=(-threshold, threshold))
                cols[key].histogram_dict[name] = (np.zeros(bins, np.int64), edges, lo, hi,
                                                  threshold)
            _, edges = np.histogram(np.asarray([low_abs, max(abs(low), abs(high))],
                                               np.float32), bins=2048)
            cols['Percentile'].histogram_dict[name] = (np.zeros(2048, np.int64),
                                                       edges.astype(np.float32), lo, hi)
        return cols

    def collect(self, tensors: Sequence[np.ndarray]) -> None:
        """Pass 2: add a chunk to the histograms of every count it belongs to."""
        outputs = self._run(tensors)
        for n in self.counts:
            if self.fed >= n:
                continue
            if n not in self.collectors:
                self.collectors[n] = self._new_collectors(n)
            with contextlib.redirect_stdout(io.StringIO()):   # ORT prints per call
                for collector in self.collectors[n].values():
                    collector.collect(outputs)
        self.fed += len(tensors)

    def ranges(self, n: int, methods: Optional[Sequence[str]] = None) -> Dict[str, object]:
        """Return {config name: TensorsData} calibrated on the first ``n`` images.

        ``methods`` limits the histogram methods computed ('Entropy', 'Entropy-2048',
        'Percentile'); MinMax is always returned.
        """
        methods = ('Entropy', 'Entropy-2048', 'Percentile') if methods is None else methods
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

        out: Dict[str, object] = {
            'MinMax': TensorsData(CalibrationMethod.MinMax,
                                  {name: (np.asarray(v[0], np.float32),
                                          np.asarray(v[1], np.float32))
                                   for name, v in self.stats[n].items()})}
        cols = self.collectors[n]
        with contextlib.redirect_stdout(io.StringIO()):
            for name in ('Entropy', 'Entropy-2048'):
                if name in methods:
                    out[name] = TensorsData(CalibrationMethod.Entropy,
                                            cols[name].compute_collection_result())
            for p in (PERCENTILES if 'Percentile' in methods else ()):
                cols['Percentile'].percentile = p
                out[f'Percentile {p}'] = TensorsData(
                    CalibrationMethod.Percentile, cols['Percentile'].compute_collection_result())
        return out


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


def quantize_with_ranges(prepared: Path, tensors_data, out_path: Path, work: Path) -> Path:
    """Quantize ``prepared`` with precomputed ranges through quantize_static's cache."""
    import inspect

    from onnxruntime import quantization as quant
    from onnxruntime.quantization import calibrate

    if ('calibration_cache_path' not in inspect.signature(quant.quantize_static).parameters
            or not hasattr(calibrate, 'save_tensors_data')):
        raise SystemExit('this study needs an ONNX Runtime whose quantize_static reads a '
                         'calibration cache (calibration_cache_path; 1.32 has it)')
    save_tensors_data = calibrate.save_tensors_data

    cache = work / f'{out_path.stem}.calibration.json'
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
def make_detector(model: Path, threads: int, input_hw: Tuple[int, int]) -> Detector:
    """Return a CPU detector with the evaluation thresholds (score 0.01, NMS 0.7)."""
    backend = OnnxRuntimeBackend(model, num_threads=threads)
    return Detector(backend, CpuPreprocessor(backend.input_hw),
                    Postprocessor(backend.input_hw, 0.01, 0.7, 100, 'raw'), DEFAULT_LABELS)


def measure(model: Path, frames: Sequence, latency_frames: int, threads: int,
            input_hw: Tuple[int, int]) -> Dict[str, object]:
    """Score ``model`` on ``frames`` and time its inference on the first few."""
    with make_detector(model, threads, input_hw) as det:
        result, timings = evaluate_frames(det.detect, frames, progress=True,
                                          desc=model.stem[:24])
        tensors = [preprocess_cpu(f.image, det.input_hw)[0]
                   for f in frames[:latency_frames]]
        for t in tensors[:2]:
            det.backend.infer(t)
        times = []
        for t in tensors:
            t0 = time.perf_counter()
            det.backend.infer(t)
            times.append((time.perf_counter() - t0) * 1e3)
    return {'mAP50': result.mAP50, 'mAP': result.mAP, 'mAP75': result.mAP75,
            'per_class_AP50': result.per_class_AP50,
            'infer_ms_median': float(np.median(times)),
            'infer_ms_p90': float(np.percentile(times, 90)),
            'eval_infer_ms_median': float(np.median([x['infer'] for x in timings])),
            'model_bytes': model.stat().st_size}


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
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 7), dpi=110, sharex=True)
    ax1.bar(x - 0.2, [r['mAP50'] for r in rows], 0.4, label='mAP50')
    ax1.bar(x + 0.2, [r['mAP'] for r in rows], 0.4, label='mAP50:95')
    ax1.axhline(rows[0]['mAP50'] - 0.02, color='k', lw=0.8, ls='--',
                label='FP32 mAP50 - 2 pt')
    ax1.set_ylabel('COCO AP')
    ax1.legend(fontsize=8)
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


def main() -> int:
    """Run the study."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default=str(DEFAULT_MODEL_PATH))
    ap.add_argument('--calib', nargs='+', type=int, default=[100, 1000])
    ap.add_argument('--eval-frames', type=int, default=300)
    ap.add_argument('--latency-frames', type=int, default=20)
    ap.add_argument('--chunk', type=int, default=4)
    ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--work', default=None, help='folder for the INT8 models (default: temp)')
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results'))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    t_start = time.time()
    work = Path(args.work or tempfile.mkdtemp(prefix='calib_study_'))
    work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model)
    prepared = prepare_model(model, work / 'prepared.onnx')
    with OnnxRuntimeBackend(model) as backend:
        input_hw = backend.input_hw
        input_name = backend.input_name
    counts = sorted(set(args.calib))
    LOG.info('calibrating on up to %d training-split frames (chunks of %d)', counts[-1],
             args.chunk)
    stream = StreamingCalibration(prepared, work, counts)
    snapshots: Dict[int, Dict[str, object]] = {}
    t0 = time.time()
    for phase in ('pass 1 (min/max)', 'pass 2 (histograms)'):
        frames = generate_frames([frame_seed(TRAIN_SEED, i) for i in range(counts[-1])],
                                 input_hw, workers=1)
        chunk: List[np.ndarray] = []
        done = 0
        for frame in frames:
            chunk.append(preprocess_cpu(frame.image, input_hw)[0])
            if len(chunk) == args.chunk or done + len(chunk) in counts:
                (stream.observe if phase.startswith('pass 1') else stream.collect)(chunk)
                done += len(chunk)
                chunk = []
                if done % 100 == 0:
                    LOG.info('%s: %d images, %.0f s', phase, done, time.time() - t0)
                if phase.startswith('pass 2') and done in counts:
                    snapshots[done] = stream.ranges(done)
                    snapshots[done]['ReLU6 fixed (0, 6)'], relu_counts = relu6_fixed_ranges(
                        prepared, snapshots[done]['MinMax'], input_name)
                    del stream.collectors[done]
                    LOG.info('ranges at %d images ready, %.0f s (ReLU6 recipe: %s)', done,
                             time.time() - t0, relu_counts)
    calib_seconds = time.time() - t0
    del stream
    LOG.info('quantizing %d models', sum(len(s) for s in snapshots.values()))
    models: List[Tuple[str, int, Path]] = [('FP32', 0, model)]
    for n, ranges in snapshots.items():
        for name, data in ranges.items():
            safe = name.replace(' ', '_').replace('(', '').replace(')', '').replace(',', '')
            out = quantize_with_ranges(prepared, data, work / f'int8_{safe}_{n}.onnx', work)
            models.append((name, n, out))
    test = list(generate_frames([frame_seed(TEST_SEED, i) for i in range(args.eval_frames)],
                                input_hw, workers=1))
    rows: List[Dict[str, object]] = []
    for name, n, path in models:
        row = {'config': name, 'images': n or None}
        row.update(measure(path, test, args.latency_frames, args.threads, input_hw))
        rows.append(row)
        LOG.info('%s (%s images): mAP50 %.4f mAP %.4f, infer %.0f ms', name, n or '-',
                 row['mAP50'], row['mAP'], row['infer_ms_median'])
    import onnxruntime

    meta = {'date': time.strftime('%Y-%m-%d %H:%M:%S %z'), 'model': str(model.name),
            'model_input_hw': list(input_hw), 'eval_frames': len(test),
            'eval_split': f'TEST seeds from {frame_seed(TEST_SEED, 0)}',
            'calibration_split': f'TRAIN seeds from {frame_seed(TRAIN_SEED, 0)}',
            'calibration_counts': counts, 'latency_frames': args.latency_frames,
            'threads': args.threads or 'ORT default', 'onnxruntime': onnxruntime.__version__,
            'calibration_seconds': round(calib_seconds, 1),
            'total_seconds': round(time.time() - t_start, 1),
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
    (out_dir / 'calibration_study.json').write_text(
        json.dumps({'meta': meta, 'rows': rows}, indent=2) + '\n', encoding='utf-8')
    table = markdown(rows, meta)
    (out_dir / 'calibration_study.md').write_text(table + '\n', encoding='utf-8')
    plot(rows, out_dir / 'calibration_study.png')
    print(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
