"""Bounded-memory calibration with ONNX Runtime's own range algorithms (MinMax, histograms).

Contract:

- Input: a float ONNX model (ideally after ``static.prepare_model``) and calibration tensors,
  each (1, 3, H, W) float32 as ``stages.preprocess.preprocess_cpu`` makes them, fed in chunks
  (lists of tensors).
- ``StreamingCalibration.observe`` (pass 1) keeps each activation tensor's min, max and min |x|;
  ``collect`` (pass 2, only for histogram methods) fills ONNX Runtime ``HistogramCollector``
  objects whose histograms were created up front with the edges ONNX Runtime's one-shot
  ``collect`` would have chosen from pass 1's ranges, so adding chunk after chunk gives exactly
  the histograms ONNX Runtime builds when it holds all images in memory at once.
- ``ranges(n)`` returns ONNX Runtime ``TensorsData`` per method, calibrated on the first ``n``
  images: 'MinMax' (global min / max, as ``MinMaxCalibrater`` without options), every histogram
  spec by its name, and 'Percentile <p>' for each requested percentile. They equal what
  ``onnxruntime.quantization.calibrate.create_calibrator(...).compute_data()`` returns for the
  same images and options (exactly with ``optimize=False``; tested).

Why not ONNX Runtime's calibrators directly: its histogram calibrators keep every intermediate
tensor of every image in memory (about 300 MB per 960x640 image for YOLOX-S+, so 1000 images
would need about 300 GB), and ``max_intermediate_outputs``, the option that bounds MinMax's
memory, drops the collected outputs every N images without computing their ranges (ONNX Runtime
1.32; microsoft/onnxruntime#18893): MinMax then sees only the last ``count % N`` images and
fails when the count is a multiple of N.
"""

import contextlib
import io
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .._lazy import require

Stats = Dict[str, Tuple[float, float, float]]


class HistogramSpec(NamedTuple):
    """One ONNX Runtime ``HistogramCollector`` configuration."""

    method: str              #: 'entropy' or 'percentile'
    symmetric: bool
    num_bins: int
    num_quantized_bins: int = 128


#: ONNX Runtime's ``create_calibrator`` default for Entropy. With as many histogram bins as
#: quantized bins its threshold search has one candidate, the full range: it equals MinMax.
ENTROPY_ORT_DEFAULT = HistogramSpec('entropy', False, 128, 128)
#: Entropy over a 2048-bin histogram, the size TensorRT's entropy calibrator uses: what this
#: package means by ``calibration_algorithm: Entropy`` in its ONNX Runtime paths.
ENTROPY_2048 = HistogramSpec('entropy', False, 2048, 128)
#: ONNX Runtime's ``create_calibrator`` default for Percentile (histogram of |x|).
PERCENTILE_ORT_DEFAULT = HistogramSpec('percentile', True, 2048, 128)


def _onnxruntime():
    return require('onnxruntime', 'INT8 calibration', 'pip install onnxruntime')


class StreamingCalibration:
    """Two passes over the calibration images through ONE augmented model (all methods).

    ``counts``: the image counts to calibrate for (ranges after the first N images, for every
    N); chunks must not straddle a count. ``histograms``: {name: HistogramSpec} to build in
    pass 2 (none: MinMax only, pass 2 is not needed). Models are written into ``work``.
    ``optimize``: run the models with ONNX Runtime's graph optimisations (about 2x faster on
    the CPU; the graph's tensors are kept, their values may differ from the unoptimised graph
    by float rounding, tested within 1e-5); False runs them unoptimised like ONNX Runtime's own
    calibrators, whose ranges it then reproduces exactly.
    """

    def __init__(self, model: Path, work: Path, counts: Sequence[int],
                 histograms: Optional[Dict[str, HistogramSpec]] = None,
                 threads: int = 0, optimize: bool = True) -> None:
        ort = _onnxruntime()
        from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

        work = Path(work)
        self.threads = int(threads)
        self.optimize = bool(optimize)
        self.histograms = dict(histograms or {})
        augmented = work / 'augmented.onnx'
        calibrator = create_calibrator(Path(model), None, str(augmented),
                                       calibrate_method=CalibrationMethod.Entropy)
        self.tensors = sorted(calibrator.tensors_to_calibrate)
        del calibrator                 # its session may be single-use; open our own
        self.session = ort.InferenceSession(str(augmented), self._options(),
                                            providers=['CPUExecutionProvider'])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        keep = set(self.tensors)
        self.index = [i for i, n in enumerate(self.output_names) if n in keep]
        self.counts = sorted(int(n) for n in counts)
        if not self.counts or self.counts[0] < 1:
            raise ValueError(f'calibration counts must be >= 1, got {list(counts)}')
        self.stats_session = self._stats_session(Path(model), work)
        self.stats: Dict[int, Stats] = {}
        self.running: Stats = {}
        self.seen = 0
        self.collectors: Dict[int, Dict[str, object]] = {}
        self.fed = 0

    def _options(self):
        ort = _onnxruntime()
        options = ort.SessionOptions()
        if not self.optimize:    # what ONNX Runtime's calibrators do: exactly their values
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        return options

    def _stats_session(self, model_path: Path, work: Path):
        """Session of the model plus ReduceMin / ReduceMax / ReduceMin(Abs) of each tensor."""
        onnx = require('onnx', 'INT8 calibration', 'pip install onnx')
        from onnx import helper

        model = onnx.load(str(model_path))
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
        return _onnxruntime().InferenceSession(str(path), self._options(),
                                               providers=['CPUExecutionProvider'])

    # ------------------------------------------------------------------------- pass 1
    def observe(self, tensors: Sequence[np.ndarray]) -> None:
        """Pass 1: update min / max / min |x| of every tensor with a chunk of inputs."""
        names = [f'_s{k}_{s}' for k in range(len(self.tensors))
                 for s in ('min', 'max', 'absmin')]
        for tensor in tensors:
            values = self.stats_session.run(names, {self.input_name: tensor})
            for k, name in enumerate(self.tensors):
                low, high, low_abs = (float(v) for v in values[3 * k:3 * k + 3])
                old = self.running.get(name)
                if old is not None:
                    low, high = min(low, old[0]), max(high, old[1])
                    low_abs = min(low_abs, old[2])
                self.running[name] = (low, high, low_abs)
        self.seen += len(tensors)
        if self.seen in self.counts:
            self.stats[self.seen] = dict(self.running)

    # ------------------------------------------------------------------------- pass 2
    def new_collectors(self, n: int) -> Dict[str, object]:
        """Return {name: HistogramCollector} with empty histograms on pass 1's ranges for n."""
        from onnxruntime.quantization.calibrate import HistogramCollector

        if n not in self.stats:
            raise RuntimeError(f'pass 1 has not seen {n} images (saw {self.seen})')
        cols = {key: HistogramCollector(spec.method, spec.symmetric, spec.num_bins,
                                        spec.num_quantized_bins, 99.999, 'same')
                for key, spec in self.histograms.items()}
        for name in self.tensors:
            low, high, low_abs = self.stats[n][name]
            lo, hi = np.float32(low), np.float32(high)
            for key, spec in self.histograms.items():
                if spec.method == 'entropy':     # collect_value: signed, (-t, t)
                    threshold = np.float32(max(abs(low), abs(high)))
                    _, edges = np.histogram(np.zeros(1, np.float32), spec.num_bins,
                                            range=(-threshold, threshold))
                    cols[key].histogram_dict[name] = (
                        np.zeros(spec.num_bins, np.int64), edges, lo, hi, threshold)
                else:                            # collect_absolute_value: |x|, data range
                    _, edges = np.histogram(np.asarray([low_abs, max(abs(low), abs(high))],
                                                       np.float32), bins=spec.num_bins)
                    cols[key].histogram_dict[name] = (
                        np.zeros(spec.num_bins, np.int64), edges.astype(np.float32), lo, hi)
        return cols

    def run(self, tensors: Sequence[np.ndarray]) -> Dict[str, List[np.ndarray]]:
        """Return {tensor name: [value per input]} from the augmented model."""
        outputs: Dict[str, List[np.ndarray]] = {self.output_names[i]: [] for i in self.index}
        for tensor in tensors:
            values = self.session.run(None, {self.input_name: tensor})
            for i in self.index:
                outputs[self.output_names[i]].append(values[i])
        return outputs

    def collect(self, tensors: Sequence[np.ndarray]) -> None:
        """Pass 2: add a chunk to the histograms of every count it belongs to."""
        if not self.histograms:
            raise RuntimeError('no histogram method requested: pass 2 is not needed')
        outputs = self.run(tensors)
        for n in self.counts:
            if self.fed >= n:
                continue
            if n not in self.collectors:
                self.collectors[n] = self.new_collectors(n)
            with contextlib.redirect_stdout(io.StringIO()):   # ONNX Runtime prints per call
                for collector in self.collectors[n].values():
                    collector.collect(outputs)
        self.fed += len(tensors)

    # ------------------------------------------------------------------------- results
    def ranges(self, n: int, percentiles: Sequence[float] = ()) -> Dict[str, object]:
        """Return {method name: TensorsData} calibrated on the first ``n`` images.

        'MinMax' always; every histogram spec by its name ('percentile' specs once per value
        of ``percentiles``, named 'Percentile <p>').
        """
        from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

        if n not in self.stats:
            raise RuntimeError(f'pass 1 has not seen {n} images (saw {self.seen})')
        out: Dict[str, object] = {
            'MinMax': TensorsData(CalibrationMethod.MinMax,
                                  {name: (np.asarray(v[0], np.float32),
                                          np.asarray(v[1], np.float32))
                                   for name, v in self.stats[n].items()})}
        if not self.histograms:
            return out
        if n not in self.collectors:
            raise RuntimeError(f'pass 2 has not collected the first {n} images')
        cols = self.collectors[n]
        with contextlib.redirect_stdout(io.StringIO()):
            for key, spec in self.histograms.items():
                if spec.method == 'entropy':
                    out[key] = TensorsData(CalibrationMethod.Entropy,
                                           cols[key].compute_collection_result())
                    continue
                for p in percentiles:
                    cols[key].percentile = float(p)
                    out[f'Percentile {p}'] = TensorsData(
                        CalibrationMethod.Percentile, cols[key].compute_collection_result())
        return out
