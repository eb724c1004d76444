"""ONNX Runtime static quantization (QDQ) fed by calibration images, for ORT and TensorRT.

Contract:

- Input: a float YOLOX ONNX model (input (1, 3, H, W) float32) and calibration images, which
  pass through ``stages.preprocess.preprocess_cpu`` exactly as at inference (``images``).
- ``prepare_model``: shape inference + graph optimisation (ONNX Runtime's quantization
  pre-processing) so that every Conv weight AND bias is an initializer; otherwise biases that
  come through Identity nodes stay float. ``quantize_static_qdq`` always runs it first.
- ``calibrate``: ONNX Runtime ``TensorsData`` (per-tensor ranges) for MinMax, Entropy or
  Percentile(p), computed with ONNX Runtime's algorithms in bounded memory for any image count
  (``streaming``; ONNX Runtime's own calibrators hold every intermediate tensor of every image,
  and its memory-bounding MinMax option drops images). Entropy uses a 2048-bin histogram like
  TensorRT's entropy calibrator (ONNX Runtime's default 128 bins would make it MinMax).
- ``quantize_static_qdq``: writes a QDQ model (QuantizeLinear/DequantizeLinear pairs) with the
  ranges of ``calibrate`` (through ONNX Runtime's calibration cache, onnxruntime >= 1.32).
  ``target='cpu'``: uint8 activations, int8 per-channel weights, int32 biases (ONNX Runtime CPU
  kernels). ``target='tensorrt'``:
  symmetric int8 activations and weights (zero point 0, the only form TensorRT accepts) and
  float biases (TensorRT's DequantizeLinear takes no int32), i.e. an explicit-quantization
  model for ``trt.OnnxParser``. ``tensor_ranges`` replaces calibration by fixed ranges (the
  clip recipe of ``strongly_typed``).
- ``compute_tensor_ranges``: per-tensor (min, max) from the same calibration, for TensorRT's
  explicit dynamic ranges (``ITensor.set_dynamic_range``).
- ``weighted_boundary_nodes``: the first / last weighted (Conv, ConvTranspose, Gemm, MatMul)
  nodes of the graph, which ``exclude_first_layer`` / ``exclude_last_layer`` true keep in
  float (the node parameters ``quantize_first_layer`` / ``quantize_last_layer`` true, in
  Autoware's meaning: keep that layer out of INT8).
"""

import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .._lazy import require
from ..errors import ModelContractError, ParameterError
from .images import calibration_tensors
from .streaming import ENTROPY_2048, PERCENTILE_ORT_DEFAULT, StreamingCalibration

LOGGER = logging.getLogger(__name__)

#: Calibration methods by name; the parameter's ``Legacy`` is the percentile method.
METHOD_ALIASES = {'minmax': 'MinMax', 'entropy': 'Entropy', 'percentile': 'Percentile',
                  'legacy': 'Percentile'}
WEIGHTED_OPS = ('Conv', 'ConvTranspose', 'Gemm', 'MatMul')
ProgressFn = Callable[[int, int], None]
PathLike = Union[str, Path]


def canonical_method(name: str) -> str:
    """Return MinMax, Entropy or Percentile for ``name`` (any case; Legacy = Percentile)."""
    try:
        return METHOD_ALIASES[str(name).lower()]
    except KeyError:
        raise ParameterError('calibration_algorithm', f'unknown calibration method {name!r} '
                             '(known: MinMax, Entropy, Percentile/Legacy)') from None


def _ort_quantization():
    return require('onnxruntime.quantization', 'static INT8 quantization',
                   'pip install onnxruntime')


def model_input(model_path: PathLike) -> Tuple[str, Tuple[int, int]]:
    """Return the model's input name and (H, W); raise ModelContractError if not (1, 3, H, W)."""
    onnx = require('onnx', 'reading ONNX models', 'pip install onnx')
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for bad files
        raise ModelContractError(f'{model_path}: not a readable ONNX model: {exc}') from exc
    inits = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelContractError(f'{model_path}: expected one input, found {len(inputs)}')
    dims = [d.dim_value if d.HasField('dim_value') else -1
            for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[:2] != [1, 3] or min(dims) < 1:
        raise ModelContractError(f'{model_path}: input must be a static (1, 3, H, W) tensor, '
                                 f'got {dims}')
    return inputs[0].name, (dims[2], dims[3])


def conv_bias_counts(model) -> Tuple[int, int]:
    """Return (number of Conv nodes with a bias input, how many of those are initializers)."""
    inits = {init.name for init in model.graph.initializer}
    with_bias = [n for n in model.graph.node if n.op_type == 'Conv' and len(n.input) > 2
                 and n.input[2]]
    return len(with_bias), sum(1 for n in with_bias if n.input[2] in inits)


def prepare_model(model_path: PathLike, output_path: PathLike) -> Path:
    """Run ONNX Runtime's quantization pre-processing; warn if Conv biases are not constant."""
    onnx = require('onnx', 'reading ONNX models', 'pip install onnx')
    quant = _ort_quantization()
    from onnxruntime.quantization.shape_inference import quant_pre_process

    output_path = Path(output_path)
    try:
        quant_pre_process(str(model_path), str(output_path), skip_symbolic_shape=True)
    except Exception as exc:  # pre-processing raises many types on odd graphs
        LOGGER.warning('quantization pre-processing failed (%s); quantizing %s as it is',
                       exc, model_path)
        onnx.save(onnx.load(str(model_path)), str(output_path))
    del quant
    total, constant = conv_bias_counts(onnx.load(str(output_path)))
    if constant < total:
        LOGGER.warning('%d of %d Conv biases of %s are not initializers after pre-processing; '
                       'they will stay in float (simplify the model with onnx-simplifier)',
                       total - constant, total, model_path)
    return output_path


def _graph_maps(model) -> Tuple[Dict[str, List], Dict[str, object]]:
    consumers: Dict[str, List] = {}
    producer: Dict[str, object] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producer[name] = node
    return consumers, producer


def weighted_boundary_nodes(model) -> Tuple[List[str], List[str]]:
    """Return (first, last) weighted node names: the ones with no weighted node before / after.

    "Before" follows data edges from the graph input; "after" follows them to the graph outputs.
    For YOLOX: the stem Conv, and the head's final reg/obj/cls Convs.
    """
    consumers, producer = _graph_maps(model)
    inits = {init.name for init in model.graph.initializer}
    first: List[str] = []
    seen: Set[int] = set()
    stack = [i.name for i in model.graph.input if i.name not in inits]
    while stack:
        for node in consumers.get(stack.pop(), []):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type in WEIGHTED_OPS:
                first.append(node.name)
            else:
                stack.extend(node.output)
    last: List[str] = []
    seen = set()
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.op_type in WEIGHTED_OPS:
            last.append(node.name)
        else:
            stack.extend(n for n in node.input if n not in inits)
    return first, last


def _ensure_node_names(model) -> None:
    used = {n.name for n in model.graph.node if n.name}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f'{node.op_type}_{index}'
            while name in used:
                name += '_'
            node.name = name
            used.add(name)


#: Version of the ranges ``calibrate`` computes: part of the TensorRT engine / artifact cache
#: keys, so an engine calibrated by an older implementation is never reused. 2: bounded-memory
#: streaming calibration (every image counts), Entropy over 2048 bins.
CALIBRATION_VERSION = 2

#: The histogram each histogram method uses. Entropy: 2048 bins, the size TensorRT's entropy
#: calibrator uses (ONNX Runtime's default, 128 bins, degenerates to MinMax); Percentile: ONNX
#: Runtime's default (2048 bins of |x|).
HISTOGRAMS = {'Entropy': ENTROPY_2048, 'Percentile': PERCENTILE_ORT_DEFAULT}


def calibrate(model_path: PathLike, image_paths: Sequence[Path], method: str = 'MinMax',
              percentile: float = 99.999, progress: Optional[ProgressFn] = None,
              work: Optional[PathLike] = None):
    """Return ONNX Runtime ``TensorsData`` for ``method`` calibrated on the images.

    Memory stays bounded whatever the image count (``streaming.StreamingCalibration``): MinMax
    takes one pass over the images, Entropy / Percentile two (``progress`` counts both passes,
    so its total is twice the image count). Models are written to ``work`` (default: a
    temporary folder).
    """
    method = canonical_method(method)
    if not image_paths:
        raise ParameterError('calibration_image_list_path', 'no calibration images given')
    _, input_hw = model_input(model_path)
    count = len(image_paths)
    specs = {method: HISTOGRAMS[method]} if method in HISTOGRAMS else {}
    total = count * (2 if specs else 1)
    with contextlib.ExitStack() as stack:
        folder = Path(work) if work is not None else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix='yolox_calib_')))
        stream = StreamingCalibration(Path(model_path), folder, [count], specs)
        passes = [stream.observe] + ([stream.collect] if specs else [])
        done = 0
        for feed in passes:
            for tensor in calibration_tensors(image_paths, input_hw):
                feed([tensor])
                done += 1
                if progress is not None:
                    progress(done, total)
        ranges = stream.ranges(count, [percentile])
    return ranges[f'Percentile {percentile}' if method == 'Percentile' else method]


#: The ONNX Runtime release that first quantizes from saved ranges (no cp310 wheel exists: the
#: newest ONNX Runtime for Python 3.10 is 1.23.2; docs/platforms.md).
CALIBRATION_CACHE_ORT = '1.32'


def calibration_cache_supported() -> bool:
    """Return whether the installed ONNX Runtime can write Q/DQ models from saved ranges.

    False where ONNX Runtime is missing or older than 1.32 (Python 3.10). Never raises.
    """
    try:
        require_calibration_cache()
    except Exception:  # noqa: BLE001 - missing, old or broken ONNX Runtime: all mean "no"
        return False
    return True


def require_calibration_cache() -> None:
    """Raise unless ONNX Runtime's ``quantize_static`` can quantize from saved ranges.

    Called before calibrating, so an old ONNX Runtime fails at once, not after the passes.
    """
    import inspect

    quant = _ort_quantization()
    from onnxruntime.quantization import calibrate as ort_calibrate

    if ('calibration_cache_path' not in inspect.signature(quant.quantize_static).parameters
            or not hasattr(ort_calibrate, 'save_tensors_data')):
        import onnxruntime

        raise RuntimeError(f'ONNX Runtime {onnxruntime.__version__} cannot quantize from '
                           'calibration ranges (quantize_static has no calibration_cache_path);'
                           f' install onnxruntime>={CALIBRATION_CACHE_ORT} (Python 3.11+; '
                           'no Python 3.10 wheel exists), or use int8_mode implicit or ranges')


def save_tensors_data(data, path: Path) -> None:
    """Write ``data`` as an ONNX Runtime calibration cache (``quantize_static`` reads it)."""
    require_calibration_cache()
    from onnxruntime.quantization import calibrate as ort_calibrate

    ort_calibrate.save_tensors_data(data, path)


def fixed_tensors_data(ranges: Dict[str, Tuple[float, float]]):
    """Return ONNX Runtime ``TensorsData`` (MinMax kind) holding the given fixed ranges."""
    _ort_quantization()
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

    data = {name: (np.asarray(low, np.float32), np.asarray(high, np.float32))
            for name, (low, high) in ranges.items()}
    return TensorsData(CalibrationMethod.MinMax, data)


@dataclass
class QuantizationResult:
    """What ``quantize_static_qdq`` wrote and how."""

    output_path: Path
    method: str
    percentile: float
    target: str
    num_images: int
    excluded_nodes: List[str] = field(default_factory=list)
    seconds: float = 0.0


def quantize_static_qdq(model_path: PathLike, output_path: PathLike,
                        image_paths: Sequence[Path], method: str = 'MinMax',
                        percentile: float = 99.999, target: str = 'cpu',
                        exclude_first_layer: bool = False, exclude_last_layer: bool = False,
                        nodes_to_exclude: Iterable[str] = (), per_channel: bool = True,
                        progress: Optional[ProgressFn] = None,
                        tensor_ranges: Optional[Callable[[object], Dict[str, Tuple[float, float]]]]
                        = None) -> QuantizationResult:
    """Write a QDQ-quantized copy of ``model_path`` to ``output_path``; see the module contract.

    ``exclude_first_layer`` / ``exclude_last_layer`` True leave the first / last weighted
    layers (``weighted_boundary_nodes``) in float. ``tensor_ranges``: instead of calibrating,
    a function of the pre-processed ``onnx.ModelProto`` returning fixed {tensor: (min, max)}
    ranges (the clip recipe); ``image_paths`` may then be empty and ``method`` is ignored.
    """
    onnx = require('onnx', 'reading ONNX models', 'pip install onnx')
    quant = _ort_quantization()
    method = canonical_method(method)
    if target not in ('cpu', 'tensorrt'):
        raise ValueError(f"target must be 'cpu' or 'tensorrt', got {target!r}")
    if not image_paths and tensor_ranges is None:
        raise ParameterError('calibration_image_list_path', 'no calibration images given')
    model_input(model_path)            # raises ModelContractError before any work
    require_calibration_cache()
    start = time.perf_counter()
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='yolox_quant_') as tmp:
        prepared = prepare_model(model_path, Path(tmp) / 'prepared.onnx')
        model = onnx.load(str(prepared))
        _ensure_node_names(model)
        onnx.save(model, str(prepared))
        first, last = weighted_boundary_nodes(model)
        excluded = list(nodes_to_exclude)
        if exclude_first_layer:
            excluded += first
        if exclude_last_layer:
            excluded += last
        excluded = sorted(set(excluded))
        if tensor_ranges is None:
            data = calibrate(prepared, image_paths, method, percentile, progress,
                             work=Path(tmp))
        else:
            data = fixed_tensors_data(tensor_ranges(model))
            method = 'Fixed'
        cache = Path(tmp) / 'calibration.json'
        save_tensors_data(data, cache)
        extra: Dict[str, object] = {}
        if target == 'tensorrt':
            extra.update(ActivationSymmetric=True, WeightSymmetric=True, QuantizeBias=False)
            activation_type = quant.QuantType.QInt8
        else:
            activation_type = quant.QuantType.QUInt8
        LOGGER.info('quantizing %s for %s with %s calibration on %d images%s', model_path,
                    target, method if method != 'Percentile' else f'Percentile({percentile})',
                    len(image_paths), f' (float: {", ".join(excluded)})' if excluded else '')
        quant.quantize_static(
            str(prepared), str(output_path), calibration_data_reader=None,
            calibration_cache_path=str(cache), quant_format=quant.QuantFormat.QDQ,
            per_channel=per_channel, activation_type=activation_type,
            weight_type=quant.QuantType.QInt8, nodes_to_exclude=excluded,
            calibrate_method=data.calibration_method, extra_options=extra)
    seconds = time.perf_counter() - start
    LOGGER.info('wrote %s (%.1f s)', output_path, seconds)
    return QuantizationResult(output_path, method, float(percentile), target,
                              len(image_paths), excluded, seconds)


def compute_tensor_ranges(model_path: PathLike, image_paths: Sequence[Path],
                          method: str = 'MinMax', percentile: float = 99.999,
                          progress: Optional[ProgressFn] = None
                          ) -> Dict[str, Tuple[float, float]]:
    """Return {tensor name: (min, max)} for every activation tensor, calibrated on the images.

    The names are the ONNX tensor names of ``model_path``, which TensorRT's ONNX parser keeps for
    the matching layer outputs.
    """
    method = canonical_method(method)
    if not image_paths:
        raise ParameterError('calibration_image_list_path', 'no calibration images given')
    with tempfile.TemporaryDirectory(prefix='yolox_ranges_') as tmp:
        data = calibrate(model_path, image_paths, method, percentile, progress,
                         work=Path(tmp))
    ranges: Dict[str, Tuple[float, float]] = {}
    for name, value in data.data.items():
        low, high = value.range_value if hasattr(value, 'range_value') else value
        ranges[name] = (float(np.asarray(low).min()), float(np.asarray(high).max()))
    return ranges
