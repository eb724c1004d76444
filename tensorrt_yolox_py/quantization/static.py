"""ONNX Runtime static quantization (QDQ) fed by calibration images, for ORT and TensorRT.

Contract:

- Input: a float YOLOX ONNX model (input (1, 3, H, W) float32) and calibration images, which
  pass through ``stages.preprocess.preprocess_cpu`` exactly as at inference (``images``).
- ``prepare_model``: shape inference + graph optimisation (ONNX Runtime's quantization
  pre-processing) so that every Conv weight AND bias is an initializer; otherwise biases that
  come through Identity nodes stay float. ``quantize_static_qdq`` always runs it first.
- ``quantize_static_qdq``: writes a QDQ model (QuantizeLinear/DequantizeLinear pairs) with
  calibration method MinMax, Entropy or Percentile(p). ``target='cpu'``: uint8 activations,
  int8 per-channel weights, int32 biases (ONNX Runtime CPU kernels). ``target='tensorrt'``:
  symmetric int8 activations and weights (zero point 0, the only form TensorRT accepts) and
  float biases (TensorRT's DequantizeLinear takes no int32), i.e. an explicit-quantization
  model for ``trt.OnnxParser``.
- ``compute_tensor_ranges``: per-tensor (min, max) from the same calibration, for TensorRT's
  explicit dynamic ranges (``ITensor.set_dynamic_range``).
- ``weighted_boundary_nodes``: the first / last weighted (Conv, ConvTranspose, Gemm, MatMul)
  nodes of the graph, which ``quantize_first_layer`` / ``quantize_last_layer`` false keep in
  float.
"""

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .._lazy import require
from ..errors import ModelContractError, ParameterError
from .images import calibration_tensors

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


def make_reader(image_paths: Sequence[Path], input_name: str, input_hw: Tuple[int, int],
                progress: Optional[ProgressFn] = None):
    """Return an ONNX Runtime ``CalibrationDataReader`` over the preprocessed images."""
    quant = _ort_quantization()

    class ImageCalibrationReader(quant.CalibrationDataReader):
        """Feeds ``{input_name: preprocess_cpu(image)}`` once per calibration image."""

        def __init__(self) -> None:
            self.count = 0
            self._tensors = calibration_tensors(image_paths, input_hw)

        def get_next(self) -> Optional[Dict[str, np.ndarray]]:
            tensor = next(self._tensors, None)
            if tensor is None:
                return None
            self.count += 1
            if progress is not None:
                progress(self.count, len(image_paths))
            return {input_name: tensor}

        def rewind(self) -> None:
            self.count = 0
            self._tensors = calibration_tensors(image_paths, input_hw)

    return ImageCalibrationReader()


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
                        quantize_first_layer: bool = True, quantize_last_layer: bool = True,
                        nodes_to_exclude: Iterable[str] = (), per_channel: bool = True,
                        progress: Optional[ProgressFn] = None) -> QuantizationResult:
    """Write a QDQ-quantized copy of ``model_path`` to ``output_path``; see the module contract.

    ``quantize_first_layer`` / ``quantize_last_layer`` False leave the first / last weighted
    layers (``weighted_boundary_nodes``) in float.
    """
    onnx = require('onnx', 'reading ONNX models', 'pip install onnx')
    quant = _ort_quantization()
    method = canonical_method(method)
    if target not in ('cpu', 'tensorrt'):
        raise ValueError(f"target must be 'cpu' or 'tensorrt', got {target!r}")
    if not image_paths:
        raise ParameterError('calibration_image_list_path', 'no calibration images given')
    input_name, input_hw = model_input(model_path)
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
        if not quantize_first_layer:
            excluded += first
        if not quantize_last_layer:
            excluded += last
        excluded = sorted(set(excluded))
        extra = {'CalibMaxIntermediateOutputs': 16}
        if method == 'Percentile':
            extra['CalibPercentile'] = float(percentile)
        if target == 'tensorrt':
            extra.update(ActivationSymmetric=True, WeightSymmetric=True, QuantizeBias=False)
            activation_type = quant.QuantType.QInt8
        else:
            activation_type = quant.QuantType.QUInt8
        LOGGER.info('quantizing %s for %s with %s calibration on %d images%s', model_path,
                    target, method if method != 'Percentile' else f'Percentile({percentile})',
                    len(image_paths), f' (float: {", ".join(excluded)})' if excluded else '')
        reader = make_reader(image_paths, input_name, input_hw, progress)
        quant.quantize_static(
            str(prepared), str(output_path), reader, quant_format=quant.QuantFormat.QDQ,
            per_channel=per_channel, activation_type=activation_type,
            weight_type=quant.QuantType.QInt8, nodes_to_exclude=excluded,
            calibrate_method=getattr(quant.CalibrationMethod, method), extra_options=extra)
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
    quant = _ort_quantization()
    from onnxruntime.quantization.calibrate import create_calibrator

    method = canonical_method(method)
    if not image_paths:
        raise ParameterError('calibration_image_list_path', 'no calibration images given')
    input_name, input_hw = model_input(model_path)
    extra: Dict[str, object] = {'max_intermediate_outputs': 16}
    if method == 'Percentile':
        extra['percentile'] = float(percentile)
    with tempfile.TemporaryDirectory(prefix='yolox_ranges_') as tmp:
        calibrator = create_calibrator(
            str(model_path), None, os.path.join(tmp, 'augmented.onnx'),
            calibrate_method=getattr(quant.CalibrationMethod, method), extra_options=extra)
        try:
            calibrator.collect_data(make_reader(image_paths, input_name, input_hw, progress))
            data = calibrator.compute_data()
        finally:
            clear = getattr(calibrator, 'clear', None)
            if callable(clear):
                clear()
    ranges: Dict[str, Tuple[float, float]] = {}
    for name, value in data.data.items():
        low, high = value.range_value if hasattr(value, 'range_value') else value
        ranges[name] = (float(np.asarray(low).min()), float(np.asarray(high).max()))
    return ranges
