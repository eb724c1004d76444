"""ONNX models for strongly typed TensorRT networks (TensorRT 11): precision from tensor types.

TensorRT 11 builds only strongly typed networks: each layer runs in the type of its ONNX
tensors, and INT8 exists only as QuantizeLinear / DequantizeLinear (Q/DQ) pairs. This module
writes those models; the TensorRT builder parses them instead of the float model.

Contract:

- Input: a float32 YOLOX ONNX (one static (1, 3, H, W) input), else ``ModelContractError``.
- ``convert_fp16(model, output, keep_io_types=True)``: every float tensor and initializer
  becomes float16, the graph input / output stay float32 when ``keep_io_types``. Tool: NVIDIA
  ModelOpt's AutoCast when its environment is usable (it may keep a few nodes in float32 by its
  rules: outputs above 512 or initializers beyond the float16 range; the result's ``notes``
  name them), onnxconverter-common's ``float16`` otherwise (everything float16).
- ``quantize_int8_qdq(model, output, images, method, ...)``: symmetric INT8 Q/DQ (zero point 0,
  int8 weights per output channel) on the quantized layers, float16 everywhere else, float32
  graph I/O. Calibration images pass through the inference preprocessing
  (``images.calibration_tensors``). Paths (``TypedModelResult.tool`` says which one ran, and
  ``notes`` why):

  * ``MinMax`` / ``Entropy``: ModelOpt's ONNX post-training quantization
    (``modelopt.onnx.quantization.quantize``, ``quantize_mode='int8'``, calibration method
    ``max`` / ``entropy``, ``high_precision_dtype='fp16'``) where ModelOpt is usable; ModelOpt
    also leaves out layers by its own TensorRT heuristics (listed in ``notes``);
  * ``Legacy`` (percentile), ``clip_value`` > 0 and every case without ModelOpt: the package's
    ONNX Runtime quantizer (``static.quantize_static_qdq``, ``target='tensorrt'``), then
    onnxconverter-common's float16 conversion of the float parts (Q/DQ scales included: the
    opset is raised to 19, the first with float16 Q/DQ scales);
  * ``clip_value`` > 0 (the ReLU6 DLA recipe): no calibration; the fixed ranges of
    ``clip.clip_ranges`` ((0, 255) on the input, (0, clip) on activations, with
    ``clip_residual_sums`` (default) (0, 2 * clip) on residual sums) as Q/DQ scales in the
    symmetric int8 convention of TensorRT's ``set_dynamic_range`` (scale = max(|min|, |max|) /
    127), stored as float16 (``np.float16(clip / 127)``).

  ``fp16_first_layer`` / ``fp16_last_layer`` (Autoware's ``quantize_first_layer`` /
  ``quantize_last_layer`` true) keep the first / last weighted layers
  (``static.weighted_boundary_nodes``) unquantized, in float16; the last ones together with
  every node after them (``downstream_nodes``: YOLOX's decode-side Sigmoid / Concat / Reshape /
  Transpose), so the output is never requantized.
- ModelOpt lives in its own environment (it pins ``onnxruntime-gpu~=1.24``; the package needs
  ``onnxruntime>=1.32``, and both own the ``onnxruntime`` import package): its Python is
  ``$YOLOX_MODELOPT_PYTHON``, else ``<repository>/.venv-modelopt/bin/python`` (made by
  ``scripts/setup_modelopt.sh``). This module drives ``modelopt_worker.py`` there through a
  subprocess (JSON request / response, calibration tensors in an .npy file).
- Every written model names its tool and version in its ONNX metadata
  (``typed_model_tool(path)``); ``planned_tool(precision, method)`` is the tool ``auto`` would
  use here (the builder's cache key for typed models includes it).
- ``describe_typed_model(path)``: the facts the tests and the builder check (I/O types, float
  initializer types, quantized / float weighted nodes, Q/DQ scales).
"""

import functools
import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._lazy import require
from ..errors import MissingDependencyError, ParameterError
from .clip import clip_ranges
from .images import calibration_tensors
from .static import (_ensure_node_names, model_input, quantize_static_qdq,
                     weighted_boundary_nodes, WEIGHTED_OPS)

LOGGER = logging.getLogger(__name__)

PathLike = Union[str, Path]
ProgressFn = Callable[[int, int], None]

#: Calibration methods by name (any case) -> the name reported in ``TypedModelResult.method``.
METHODS = {'minmax': 'MinMax', 'max': 'MinMax', 'entropy': 'Entropy', 'legacy': 'Legacy',
           'percentile': 'Legacy'}
#: ModelOpt's name of each calibration method it runs.
MODELOPT_METHODS = {'MinMax': 'max', 'Entropy': 'entropy'}
#: Tools ``tool=`` accepts: ``auto`` prefers ModelOpt and falls back; the others force one.
TOOLS = ('auto', 'modelopt', 'onnxruntime')
#: The first ONNX opset whose QuantizeLinear / DequantizeLinear take float16 scales.
FP16_QDQ_OPSET = 19
#: Operators onnxconverter-common keeps in float32 by default that run in float16 here.
FP16_OPS = ('Resize', 'Upsample', 'Min', 'Max')
ENV_PYTHON = 'YOLOX_MODELOPT_PYTHON'
WORKER = Path(__file__).with_name('modelopt_worker.py')
REPOSITORY = Path(__file__).resolve().parents[2]
PROBE_TIMEOUT_S = 120.0


@dataclass
class TypedModelResult:
    """What ``convert_fp16`` / ``quantize_int8_qdq`` wrote, with which tool, and why."""

    output_path: Path
    precision: str
    tool: str
    method: str
    num_images: int
    excluded_nodes: List[str]
    seconds: float
    notes: List[str] = field(default_factory=list)


# ------------------------------------------------------------------------ ModelOpt environment
def modelopt_python() -> Optional[Path]:
    """Return the Python of the ModelOpt environment, or None where none is configured."""
    configured = os.environ.get(ENV_PYTHON, '')
    if configured:
        return Path(configured)
    default = REPOSITORY / '.venv-modelopt' / 'bin' / 'python'
    return default if default.exists() else None


@functools.lru_cache(maxsize=8)
def _probe(python: str) -> Tuple[Optional[str], str]:
    try:
        response = _run_worker(Path(python), {'op': 'probe'}, PROBE_TIMEOUT_S)
    except RuntimeError as exc:
        return None, str(exc)
    return f"modelopt {response['modelopt']}", (
        f"ModelOpt {response['modelopt']} with onnxruntime {response['onnxruntime']} "
        f'in {python}')


def modelopt_status() -> Tuple[Optional[str], str]:
    """Return (tool name or None, why): whether ModelOpt's environment answers here."""
    python = modelopt_python()
    if python is None:
        return None, (f'no ModelOpt environment (run scripts/setup_modelopt.sh, or set '
                      f'{ENV_PYTHON} to the Python of an environment with '
                      "nvidia-modelopt[onnx])")
    if not python.exists():
        return None, f'{ENV_PYTHON}={python} does not exist'
    return _probe(str(python))


def _run_worker(python: Path, request: Dict[str, object], timeout: Optional[float]
                ) -> Dict[str, object]:
    """Run one worker request in the ModelOpt environment; raise RuntimeError on failure."""
    with tempfile.TemporaryDirectory(prefix='yolox_modelopt_') as tmp:
        req, resp = Path(tmp) / 'request.json', Path(tmp) / 'response.json'
        req.write_text(json.dumps(request), encoding='utf-8')
        env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
        try:
            proc = subprocess.run([str(python), str(WORKER), str(req), str(resp)],
                                  capture_output=True, text=True, timeout=timeout, env=env,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f'ModelOpt worker ({python}) did not run: {exc}') from exc
        tail = (proc.stderr or '').strip().splitlines()[-5:]
        if proc.returncode != 0 or not resp.exists():
            raise RuntimeError(f'ModelOpt worker ({python}) exited with {proc.returncode}: '
                               + ' | '.join(tail))
        response = json.loads(resp.read_text(encoding='utf-8'))
    if not response.get('ok'):
        raise RuntimeError(f"ModelOpt failed: {response.get('error')}")
    return response


# ---------------------------------------------------------------------------------- helpers
def _onnx():
    return require('onnx', 'reading ONNX models', 'pip install onnx')


def _check_tool(tool: str) -> str:
    if tool not in TOOLS:
        raise ParameterError('tool', f'unknown tool {tool!r} (known: {", ".join(TOOLS)})')
    return tool


def canonical_typed_method(name: str) -> str:
    """Return MinMax, Entropy or Legacy for ``name`` (any case; Percentile = Legacy)."""
    try:
        return METHODS[str(name).lower()]
    except KeyError:
        raise ParameterError('calibration_algorithm', f'unknown calibration method {name!r} '
                             '(known: MinMax, Entropy, Legacy)') from None


def _named_copy(model_path: PathLike, folder: Path) -> Tuple[Path, object]:
    """Write ``model_path`` with every node named (exclusions are by name); return it."""
    onnx = _onnx()
    model = onnx.load(str(model_path))
    _ensure_node_names(model)
    path = folder / 'named.onnx'
    onnx.save(model, str(path))
    return path, model


def _converter_fp16(model, keep_io_types: bool):
    float16 = require('onnxconverter_common.float16', 'float16 conversion',
                      'pip install onnxconverter-common')
    import warnings

    # TensorRT runs Resize / Min / Max in float16: only keep onnxconverter-common's blocks for
    # the operators it cannot (ML / NMS ones); Resize's scales stay float32 as ONNX requires.
    blocked = [op for op in float16.DEFAULT_OP_BLOCK_LIST if op not in FP16_OPS]
    with warnings.catch_warnings():    # one "values truncated" warning per small initializer
        warnings.simplefilter('ignore', UserWarning)
        model = float16.convert_float_to_float16(model, keep_io_types=keep_io_types,
                                                 op_block_list=blocked)
    _float32_resize_parameters(model)
    return model


def _float32_resize_parameters(model) -> None:
    """Turn Resize's constant ``roi`` / ``scales`` back to float32 (ONNX allows no other)."""
    onnx = _onnx()
    from onnx import numpy_helper

    names = {n for node in model.graph.node if node.op_type == 'Resize'
             for n in node.input[1:3] if n}
    for index, init in enumerate(model.graph.initializer):
        if init.name in names and init.data_type == onnx.TensorProto.FLOAT16:
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float32), init.name))
    for node in model.graph.node:
        if node.op_type == 'Constant' and node.output[0] in names:
            for attr in node.attribute:
                if attr.name == 'value' and attr.t.data_type == onnx.TensorProto.FLOAT16:
                    attr.t.CopyFrom(numpy_helper.from_array(
                        numpy_helper.to_array(attr.t).astype(np.float32), attr.t.name))
    for value in model.graph.value_info:
        if value.name in names:
            value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT


def _converter_tool() -> str:
    import importlib.metadata as metadata

    try:
        version = metadata.version('onnxconverter-common')
    except metadata.PackageNotFoundError:  # importable without its metadata (a vendored copy)
        converter = require('onnxconverter_common', 'float16 conversion',
                            'pip install onnxconverter-common')
        version = getattr(converter, '__version__', 'unknown')
    return f'onnxconverter-common {version} float16'


def _opset(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')),
               default=0)


def _raise_opset(model, opset: int):
    """Return ``model`` at default-domain opset >= ``opset`` (ONNX's version converter)."""
    if _opset(model) >= opset:
        return model
    from onnx import version_converter

    return version_converter.convert_version(model, opset)


def _fp16_kept_float32(path: Path) -> List[str]:
    facts = describe_typed_model(path)
    return sorted(facts['float32_nodes'])


# ------------------------------------------------------------------------------------- FP16
def convert_fp16(model_path: PathLike, output_path: PathLike, keep_io_types: bool = True,
                 tool: str = 'auto') -> TypedModelResult:
    """Write the float16 copy of ``model_path``; see the module contract.

    ``tool``: ``auto`` (ModelOpt's AutoCast where usable, else onnxconverter-common),
    ``modelopt`` (AutoCast or MissingDependencyError / RuntimeError) or ``onnxruntime``
    (onnxconverter-common only; the name matches ``quantize_int8_qdq``'s fallback).
    """
    onnx = _onnx()
    _check_tool(tool)
    model_input(model_path)            # ModelContractError before any work
    start = time.perf_counter()
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    notes: List[str] = []
    if tool != 'onnxruntime':
        name, why = modelopt_status()
        if name is None:
            if tool == 'modelopt':
                raise MissingDependencyError(f'ModelOpt is not usable: {why}')
            notes.append(f'AutoCast not used: {why}')
        else:
            try:
                _run_worker(modelopt_python(), {
                    'op': 'fp16', 'model': str(Path(model_path).resolve()),
                    'output': str(output_path.resolve()), 'keep_io_types': keep_io_types},
                    None)
                kept = _fp16_kept_float32(output_path)
                if kept:
                    notes.append(f'AutoCast kept {len(kept)} nodes in float32: '
                                 + ', '.join(kept))
                return _done(TypedModelResult(output_path, 'fp16', f'{name} (AutoCast)', '',
                                              0, [], time.perf_counter() - start, notes))
            except RuntimeError as exc:
                if tool == 'modelopt':
                    raise
                notes.append(f'AutoCast failed, onnxconverter-common used instead: {exc}')
    model = _converter_fp16(onnx.load(str(model_path)), keep_io_types)
    onnx.save(model, str(output_path))
    return _done(TypedModelResult(output_path, 'fp16', _converter_tool(), '', 0, [],
                                  time.perf_counter() - start, notes))


#: ONNX metadata key naming the tool (and its version) that wrote a typed model.
TOOL_METADATA_KEY = 'tensorrt_yolox_py.typed_model_tool'


def planned_tool(precision: str, method: str = 'MinMax') -> str:
    """Return the tool, with its version, that ``tool='auto'`` would use here.

    The builder puts it in the typed-model cache key, so a model made by another tool or
    version is not reused. (If ModelOpt then fails, the fallback's name is what
    ``typed_model_tool`` reads back from the model.)
    """
    name, _ = modelopt_status()
    if precision == 'fp16':
        return f'{name} (AutoCast)' if name else _converter_tool()
    if method != 'clip':
        method = canonical_typed_method(method)
    if name and method in MODELOPT_METHODS:
        return f'{name} (onnx int8 PTQ)'
    import onnxruntime

    return f'onnxruntime {onnxruntime.__version__} quantizer + {_converter_tool()}'


def typed_model_tool(path: PathLike) -> str:
    """Return the tool a typed model was written by ('' when it does not say)."""
    model = _onnx().load(str(path), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == TOOL_METADATA_KEY), '')


def _stamp_tool(path: Path, tool: str) -> None:
    onnx = _onnx()
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != TOOL_METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=TOOL_METADATA_KEY, value=tool)
    onnx.save(model, str(path))


def _done(result: TypedModelResult) -> TypedModelResult:
    _stamp_tool(result.output_path, result.tool)
    for note in result.notes:
        LOGGER.info('%s: %s', result.output_path.name, note)
    LOGGER.info('wrote %s (%s, %s%s, %.1f s)', result.output_path, result.precision,
                result.tool, f', {result.method}' if result.method else '', result.seconds)
    return result


# ------------------------------------------------------------------------------------- INT8
def downstream_nodes(model, names: Sequence[str]) -> List[str]:
    """Return ``names`` and every node fed (directly or not) by their outputs.

    For YOLOX's last weighted layers: the prediction convs and the decode-side Sigmoid /
    Concat / Reshape / Transpose after them, which stay in float16 with them (quantizing the
    output concatenation would put scores and box offsets on one int8 scale).
    """
    consumers: Dict[str, List] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    wanted = set(names)
    stack = [node for node in model.graph.node if node.name in wanted]
    found: List[str] = []
    while stack:
        node = stack.pop()
        if node.name in found:
            continue
        found.append(node.name)
        for output in node.output:
            stack.extend(consumers.get(output, []))
    return found


def quantize_int8_qdq(model_path: PathLike, output_path: PathLike,
                      image_paths: Sequence[Path], method: str = 'MinMax',
                      percentile: float = 99.999, clip_value: float = 0.0,
                      fp16_first_layer: bool = False, fp16_last_layer: bool = False,
                      progress: Optional[ProgressFn] = None, tool: str = 'auto',
                      work_dir: Optional[PathLike] = None,
                      clip_residual_sums: bool = True) -> TypedModelResult:
    """Write the INT8 Q/DQ + float16 model of ``model_path``; see the module contract.

    ``tool``: ``auto`` (ModelOpt for MinMax / Entropy where usable, else the ONNX Runtime
    quantizer), ``modelopt`` (ModelOpt or an error; not for Legacy / clip) or ``onnxruntime``.
    ``work_dir``: where intermediate files go (default: a temporary folder).
    ``clip_residual_sums`` (default): in the clip recipe, residual sums get (0, 2 * clip) (see
    ``clip_ranges``); False gives (0, clip) to every activation, which costs the demo model 8
    points of mAP50 (calibration study).
    """
    _check_tool(tool)
    clip_value = float(clip_value)
    if not np.isfinite(clip_value) or clip_value < 0:
        raise ParameterError('clip_value', f'must be >= 0, got {clip_value}')
    method = 'clip' if clip_value > 0 else canonical_typed_method(method)
    if method == 'Legacy' and not 0.0 < float(percentile) <= 100.0:
        raise ParameterError('percentile', f'must be in (0, 100], got {percentile}')
    image_paths = list(image_paths)
    if not image_paths and method != 'clip':
        raise ParameterError('calibration_image_list_path', 'INT8 calibration needs images '
                             '(none given)')
    _, input_hw = model_input(model_path)    # ModelContractError before any work
    if tool == 'modelopt' and method not in MODELOPT_METHODS:
        raise ParameterError('tool', f'ModelOpt runs MinMax / Entropy only, not {method}')
    start = time.perf_counter()
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    notes: List[str] = []
    with tempfile.TemporaryDirectory(prefix='yolox_typed_', dir=work_dir) as tmp:
        named, model = _named_copy(model_path, Path(tmp))
        first, last = weighted_boundary_nodes(model)
        excluded = sorted(set((first if fp16_first_layer else [])
                              + (downstream_nodes(model, last) if fp16_last_layer else [])))
        if method in MODELOPT_METHODS and tool != 'onnxruntime':
            name, why = modelopt_status()
            if name is None:
                if tool == 'modelopt':
                    raise MissingDependencyError(f'ModelOpt is not usable: {why}')
                notes.append(f'ModelOpt not used: {why}; ONNX Runtime quantizer instead')
            else:
                try:
                    extra = _modelopt_int8(named, output_path, image_paths, input_hw, method,
                                           excluded, progress, Path(tmp))
                    notes += extra
                    return _done(TypedModelResult(
                        output_path, 'int8', f'{name} (onnx int8 PTQ)', method,
                        len(image_paths), excluded, time.perf_counter() - start, notes))
                except RuntimeError as exc:
                    if tool == 'modelopt':
                        raise
                    notes.append(f'ModelOpt failed, ONNX Runtime quantizer instead: {exc}')
        elif method not in MODELOPT_METHODS:
            notes.append(f'{method}: ONNX Runtime quantizer (ModelOpt has no '
                         f'{"fixed-scale" if method == "clip" else "percentile"} calibration)')
        tool_name = _ort_int8(named, output_path, image_paths, method, percentile, clip_value,
                              excluded, progress, Path(tmp), notes, clip_residual_sums)
    return _done(TypedModelResult(output_path, 'int8', tool_name, method,
                                  0 if method == 'clip' else len(image_paths), excluded,
                                  time.perf_counter() - start, notes))


def _modelopt_int8(named: Path, output_path: Path, image_paths: Sequence[Path],
                   input_hw: Tuple[int, int], method: str, excluded: List[str],
                   progress: Optional[ProgressFn], tmp: Path) -> List[str]:
    """Calibrate and quantize through the ModelOpt worker; return notes."""
    input_name, _ = model_input(named)
    data_path = tmp / 'calibration.npy'
    data = np.lib.format.open_memmap(data_path, mode='w+', dtype=np.float32,
                                     shape=(len(image_paths), 3) + tuple(input_hw))
    for index, tensor in enumerate(calibration_tensors(image_paths, input_hw)):
        data[index] = tensor[0]
        if progress is not None:
            progress(index + 1, len(image_paths))
    data.flush()
    del data
    LOGGER.info('quantizing %s with ModelOpt (%s calibration on %d images%s)', named.name,
                MODELOPT_METHODS[method], len(image_paths),
                f'; float16: {", ".join(excluded)}' if excluded else '')
    _run_worker(modelopt_python(), {
        'op': 'int8', 'model': str(named.resolve()), 'output': str(output_path.resolve()),
        'calibration': str(data_path.resolve()), 'input_name': input_name,
        'calibration_method': MODELOPT_METHODS[method], 'nodes_to_exclude': excluded}, None)
    facts = describe_typed_model(output_path)
    own = sorted(set(facts['float_weighted_nodes']) - set(excluded))
    return [f'ModelOpt also left {len(own)} weighted nodes unquantized by its own rules: '
            + ', '.join(own)] if own else []


def _ort_int8(named: Path, output_path: Path, image_paths: Sequence[Path], method: str,
              percentile: float, clip_value: float, excluded: List[str],
              progress: Optional[ProgressFn], tmp: Path, notes: List[str],
              residual_sums: bool = False) -> str:
    """ONNX Runtime Q/DQ (TensorRT form), then float16 for the float parts; return the tool."""
    import onnxruntime

    onnx = _onnx()
    qdq = tmp / 'qdq_fp32.onnx'
    ranges = None
    if method == 'clip':
        ranges = functools.partial(clip_ranges, clip=clip_value, residual_sums=residual_sums)
    quantize_static_qdq(named, qdq, image_paths,
                        'Percentile' if method == 'Legacy' else ('MinMax' if method == 'clip'
                                                                 else method),
                        percentile=percentile, target='tensorrt', nodes_to_exclude=excluded,
                        progress=progress, tensor_ranges=ranges)
    model = onnx.load(str(qdq))
    before = _opset(model)
    model = _raise_opset(model, FP16_QDQ_OPSET)
    if _opset(model) != before:
        notes.append(f'opset {before} -> {_opset(model)} (float16 Q/DQ scales need '
                     f'{FP16_QDQ_OPSET})')
    model = _converter_fp16(model, keep_io_types=True)
    onnx.save(model, str(output_path))
    return (f'onnxruntime {onnxruntime.__version__} quantizer + {_converter_tool()}'
            + (f' (fixed ranges: input (0, 255), activations (0, {clip_value:g})'
               + (', residual sums added' if residual_sums else '') + ')'
               if method == 'clip' else ''))


# -------------------------------------------------------------------------------- inspection
def describe_typed_model(path: PathLike) -> Dict[str, object]:
    """Return the precision facts of a typed model (see the module contract).

    Keys: ``inputs`` / ``outputs`` ({name: numpy dtype name}); ``float_initializers``
    ({name: dtype name} of float initializers); ``quantized_weighted_nodes`` (weighted nodes
    whose weight comes through DequantizeLinear) and ``float_weighted_nodes`` (the others);
    ``float32_nodes`` (nodes other than Cast / Q / DQ with a float32 output);
    ``activation_scales`` ({quantized tensor: scale} of every QuantizeLinear);
    ``op_counts``.
    """
    onnx = _onnx()
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    types: Dict[str, int] = {}
    for value in list(model.graph.input) + list(model.graph.output) + list(
            model.graph.value_info):
        types[value.name] = value.type.tensor_type.elem_type
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for value in inferred.graph.value_info:
            types.setdefault(value.name, value.type.tensor_type.elem_type)
    except Exception as exc:  # shape inference raises several types on unusual graphs
        LOGGER.debug('shape inference failed on %s: %s', path, exc)

    def dtype(elem: int) -> str:
        return str(helper.tensor_dtype_to_np_dtype(elem)) if elem else 'unknown'

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
              onnx.TensorProto.BFLOAT16)
    quantized, plain, float32_nodes = [], [], []
    scales: Dict[str, float] = {}
    for node in model.graph.node:
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1:
            source = producers.get(node.input[1])
            (quantized if source is not None and source.op_type == 'DequantizeLinear'
             else plain).append(node.name)
        if node.op_type == 'QuantizeLinear' and node.input[1] in inits \
                and node.input[0] not in inits:
            scale = numpy_helper.to_array(inits[node.input[1]])
            if scale.size == 1:
                scales[node.input[0]] = float(scale.reshape(-1)[0])
        elif node.op_type not in ('Cast', 'QuantizeLinear', 'DequantizeLinear', 'Constant') \
                and any(types.get(o) == onnx.TensorProto.FLOAT for o in node.output):
            float32_nodes.append(node.name)
    op_counts: Dict[str, int] = {}
    for node in model.graph.node:
        op_counts[node.op_type] = op_counts.get(node.op_type, 0) + 1
    return {
        'inputs': {v.name: dtype(v.type.tensor_type.elem_type) for v in model.graph.input
                   if v.name not in inits},
        'outputs': {v.name: dtype(v.type.tensor_type.elem_type) for v in model.graph.output},
        'float_initializers': {i.name: dtype(i.data_type) for i in model.graph.initializer
                               if i.data_type in floats},
        'quantized_weighted_nodes': quantized, 'float_weighted_nodes': plain,
        'float32_nodes': float32_nodes, 'activation_scales': scales, 'op_counts': op_counts,
        'opset': _opset(model)}
