"""A faithful, small test double of the TensorRT 10 Python API subset tensorrt_yolox_py uses.

It is installed as ``sys.modules['tensorrt']`` by the ``trt`` fixture (``trt_double.fixtures``),
so the production code runs unchanged against it. What it does:

- Same names as TensorRT 10: ``Builder``, ``IBuilderConfig`` (``set_flag``,
  ``set_memory_pool_limit``, ``default_device_type``, ``DLA_core``, ``int8_calibrator``,
  ``can_run_on_DLA``, ``create_timing_cache`` / ``set_timing_cache``, ``progress_monitor``),
  ``OnnxParser`` (``parse``, ``parse_from_file``, ``num_errors``, ``get_error``),
  ``INetworkDefinition`` / ``ILayer`` / ``ITensor`` (``set_dynamic_range``, ``precision``,
  ``set_output_type``), the calibrator bases ``IInt8EntropyCalibrator2`` /
  ``IInt8MinMaxCalibrator`` / ``IInt8LegacyCalibrator``, ``IProfiler``, ``ILogger``,
  ``IProgressMonitor``, ``Runtime.deserialize_cuda_engine``, ``ICudaEngine`` (``num_io_tensors``,
  ``get_tensor_name/shape/dtype/mode``, ``create_engine_inspector``), ``IExecutionContext``
  (``set_tensor_address``, ``execute_async_v3``, ``profiler``) and the enums.
- It records every call in ``CALLS`` (tuples ``('Class.method', args...)``) so tests can check
  the order of calls, and rejects misuse the way TensorRT does: errors go to the ILogger and
  ``build_serialized_network`` / ``deserialize_cuda_engine`` return ``None``;
  ``set_tensor_address`` / ``execute_async_v3`` return ``False``; bad argument types raise
  ``TypeError`` (as pybind11 does). Rejected: DLA without FP16/INT8, a DLA core that does not
  exist (or any DLA on a platform without one), a DLA layer that cannot run there without
  GPU_FALLBACK, a non-Entropy2 calibrator for the DLA ("the required calibrator for DLA" in the
  API documentation), INT8 with neither calibrator, dynamic ranges nor Q/DQ, a calibrator whose
  ``get_batch`` returns the wrong number of pointers or a buffer too small for the input, Q/DQ
  with a non-zero zero point or a non-int8 quantized type (TensorRT quantizes symmetrically, in
  INT8), Q/DQ networks without the INT8 flag, dynamic input shapes without an optimization
  profile, unknown ONNX operators, a plan from another TensorRT version or GPU, a truncated or
  foreign plan, ``set_tensor_address`` with an unknown name or a null pointer, and
  ``execute_async_v3`` before every I/O address is set. Subclasses of the interface classes
  must call the base ``__init__`` (pybind11 rule).
- It parses the ONNX file with the ``onnx`` package into layers and tensors (one layer per
  node; Conv weights folded into the layer, other initializers become CONSTANT layers),
  "builds" a plan (a header with the build decisions + the ONNX bytes) that deserializes back,
  calibrates by running the ONNX with ONNX Runtime on the batches the calibrator hands over
  (reading them through ``MEMORY``), and "runs" by executing the ONNX with ONNX Runtime on the
  bytes behind the bound input address, writing the output to the bound output address.

What it does NOT model: kernels, tactics, real timings, layer fusion, INT8 arithmetic (the run is
float32), and DLA support beyond the simple ``can_run_on_DLA`` rules below. Passing these tests
says the calls are right; only a run on real TensorRT (scripts/check_tensorrt_on_hardware.py)
says the engine is.
"""

import ctypes
import enum
import io
import json
import struct
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

__version__ = '10.3.0'

#: Every recorded call, in order: ('Class.method', arg, ...).
CALLS: List[Tuple[Any, ...]] = []


@dataclass
class Hardware:
    """The platform the double pretends to be (set by tests)."""

    gpu_name: str = 'Double GPU'
    compute_capability: Tuple[int, int] = (8, 7)
    num_dla_cores: int = 0
    fast_fp16: bool = True
    fast_int8: bool = True
    #: Seconds a build takes (to widen race windows in the concurrency test).
    build_delay_s: float = 0.0


HARDWARE = Hardware()


class _CtypesMemory:
    """Default memory access: pointers are host addresses (ctypes), no validation."""

    def read(self, ptr: int, nbytes: int) -> bytes:
        return ctypes.string_at(ptr, nbytes)

    def write(self, ptr: int, data: bytes) -> None:
        ctypes.memmove(ptr, data, len(data))


#: How the double reads/writes the memory behind pointers (a test sets a validating one).
MEMORY: Any = _CtypesMemory()


def reset(version: str = '10.3.0', hardware: Optional[Hardware] = None,
          memory: Any = None) -> None:
    """Reset the recorded calls, the version, the hardware and the memory access."""
    global __version__, HARDWARE, MEMORY
    CALLS.clear()
    __version__ = version
    HARDWARE = hardware or Hardware()
    MEMORY = memory or _CtypesMemory()


def _record(*entry: Any) -> None:
    CALLS.append(entry)


def _version_tuple() -> Tuple[int, int, int]:
    parts = [int(p) for p in __version__.split('.')[:3]]
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


def _deprecated(what: str) -> None:
    if _version_tuple() >= (10, 1, 0):
        _record('DeprecationWarning', what)
        warnings.warn(f'{what} is deprecated: Deprecated in TensorRT 10.1. Superseded by '
                      'explicit quantization.', DeprecationWarning, stacklevel=3)


def _deprecated_since(version: Tuple[int, int, int], what: str, instead: str) -> None:
    if _version_tuple() >= version:
        _record('DeprecationWarning', what)
        warnings.warn(f'{what} is deprecated since TensorRT {version[0]}.{version[1]}: '
                      f'{instead}', DeprecationWarning, stacklevel=3)


def _require_base_init(obj: Any, base: str) -> None:
    if not getattr(obj, '_trt_base_init', False):
        raise TypeError(f'{type(obj).__name__}.__init__() must be called when overriding '
                        f'__init__ (call {base}.__init__(self))')


# ----------------------------------------------------------------------------- enums

class DataType(enum.IntEnum):
    """tensorrt.DataType."""

    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return {0: 4, 1: 2, 2: 1, 3: 4, 4: 1, 5: 1, 6: 1, 7: 2, 8: 8}.get(int(self), 1)


float32, float16, int8, int32 = DataType.FLOAT, DataType.HALF, DataType.INT8, DataType.INT32
uint8, int64 = DataType.UINT8, DataType.INT64

_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
       DataType.INT32: np.int32, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8,
       DataType.INT64: np.int64}


def nptype(trt_type: DataType) -> type:
    """Return the numpy type of a DataType."""
    return _NP[DataType(trt_type)]


def volume(shape: Sequence[int]) -> int:
    """Return the product of the dimensions."""
    out = 1
    for dim in shape:
        out *= int(dim)
    return out


class BuilderFlag(enum.IntEnum):
    """tensorrt.BuilderFlag (TensorRT 10; STRICT_TYPES was removed)."""

    FP16 = 0
    INT8 = 1
    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 4
    DISABLE_TIMING_CACHE = 5
    TF32 = 6
    SPARSE_WEIGHTS = 7
    SAFETY_SCOPE = 8
    OBEY_PRECISION_CONSTRAINTS = 9
    PREFER_PRECISION_CONSTRAINTS = 10
    DIRECT_IO = 11
    REJECT_EMPTY_ALGORITHMS = 12
    VERSION_COMPATIBLE = 13
    EXCLUDE_LEAN_RUNTIME = 14
    FP8 = 15
    ERROR_ON_TIMING_CACHE_MISS = 16
    BF16 = 17
    DISABLE_COMPILATION_CACHE = 18
    STRIP_PLAN = 19
    REFIT_IDENTICAL = 20
    WEIGHT_STREAMING = 21
    INT4 = 22


class NetworkDefinitionCreationFlag(enum.IntEnum):
    """tensorrt.NetworkDefinitionCreationFlag (EXPLICIT_BATCH: deprecated, ignored in 10)."""

    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class MemoryPoolType(enum.IntEnum):
    """tensorrt.MemoryPoolType."""

    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4


class DeviceType(enum.IntEnum):
    """tensorrt.DeviceType."""

    GPU = 0
    DLA = 1


class ProfilingVerbosity(enum.IntEnum):
    """tensorrt.ProfilingVerbosity."""

    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class TensorIOMode(enum.IntEnum):
    """tensorrt.TensorIOMode."""

    NONE = 0
    INPUT = 1
    OUTPUT = 2


class LayerInformationFormat(enum.IntEnum):
    """tensorrt.LayerInformationFormat."""

    ONELINE = 0
    JSON = 1


class CalibrationAlgoType(enum.IntEnum):
    """tensorrt.CalibrationAlgoType."""

    LEGACY_CALIBRATION = 0
    ENTROPY_CALIBRATION = 1
    ENTROPY_CALIBRATION_2 = 2
    MINMAX_CALIBRATION = 3


class LayerType(enum.IntEnum):
    """tensorrt.LayerType (the subset the double's parser produces)."""

    CONVOLUTION = 0
    ACTIVATION = 2
    POOLING = 3
    SCALE = 5
    SOFTMAX = 6
    DECONVOLUTION = 7
    CONCATENATION = 8
    ELEMENTWISE = 9
    UNARY = 11
    PADDING = 12
    SHUFFLE = 13
    REDUCE = 14
    MATRIX_MULTIPLY = 17
    CONSTANT = 19
    IDENTITY = 20
    SLICE = 22
    SHAPE = 23
    RESIZE = 25
    GATHER = 26
    QUANTIZE = 33
    DEQUANTIZE = 34
    CAST = 40


class _Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


# ----------------------------------------------------------------------------- logging

class ILogger:
    """Application-implemented logger: subclasses override ``log(severity, msg)``."""

    Severity = _Severity
    INTERNAL_ERROR, ERROR, WARNING = _Severity.INTERNAL_ERROR, _Severity.ERROR, _Severity.WARNING
    INFO, VERBOSE = _Severity.INFO, _Severity.VERBOSE

    def __init__(self) -> None:
        self._trt_base_init = True

    def log(self, severity: _Severity, msg: str) -> None:
        """Receive one message."""
        raise NotImplementedError


class Logger(ILogger):
    """The built-in logger: keeps the messages at or above ``min_severity``."""

    def __init__(self, min_severity: _Severity = _Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity
        self.messages: List[Tuple[_Severity, str]] = []

    def log(self, severity: _Severity, msg: str) -> None:
        """Keep the message if it is severe enough."""
        if severity <= self.min_severity:
            self.messages.append((severity, msg))


def _log(logger: Any, severity: _Severity, msg: str) -> None:
    _record('ILogger.log', severity.name, msg)
    if logger is not None:
        logger.log(severity, msg)


# ----------------------------------------------------------------------------- network

class Dims(tuple):
    """tensorrt.Dims: a tuple of dimensions (-1 = dynamic)."""


class ITensor:
    """A network tensor."""

    def __init__(self, name: str, shape: Sequence[int], dtype: DataType) -> None:
        self.name = name
        self.shape = Dims(int(d) for d in shape)
        self.dtype = dtype
        self.is_network_input = False
        self.is_network_output = False
        self._range: Optional[Tuple[float, float]] = None
        self.location = DeviceType.GPU

    def set_dynamic_range(self, min: float, max: float) -> bool:  # noqa: A002
        """Set the tensor's [min, max] for implicit INT8; False if the range is invalid."""
        _deprecated('set_dynamic_range')
        _record('ITensor.set_dynamic_range', self.name, float(min), float(max))
        if not (np.isfinite(min) and np.isfinite(max)) or min > max:
            return False
        self._range = (float(min), float(max))
        return True

    @property
    def dynamic_range(self) -> Optional[Tuple[float, float]]:
        """The tensor's dynamic range, or None."""
        _deprecated('dynamic_range')
        return self._range

    def reset_dynamic_range(self) -> None:
        """Forget the dynamic range."""
        self._range = None


class ILayer:
    """A network layer (one per ONNX node)."""

    def __init__(self, name: str, layer_type: LayerType, op_type: str,
                 inputs: List[ITensor], outputs: List[ITensor], attrs: Dict[str, Any]) -> None:
        self.name = name
        self.type = layer_type
        self.op_type = op_type
        self._inputs = inputs
        self._outputs = outputs
        self.attrs = attrs
        self._precision: Optional[DataType] = None
        self._output_types: Dict[int, DataType] = {}
        self.metadata = ''

    @property
    def num_inputs(self) -> int:
        """Number of inputs."""
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        """Number of outputs."""
        return len(self._outputs)

    def get_input(self, index: int) -> ITensor:
        """Return input ``index``."""
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        """Return output ``index``."""
        return self._outputs[index]

    @property
    def precision(self) -> DataType:
        """Return the requested compute type (FLOAT when unset)."""
        return self._precision if self._precision is not None else DataType.FLOAT

    @precision.setter
    def precision(self, value: DataType) -> None:
        if not isinstance(value, DataType):
            raise TypeError('precision must be a tensorrt.DataType')
        if _NETWORK_OF.get(id(self)) is not None and _NETWORK_OF[id(self)].strongly_typed:
            raise TypeError('setting layer precision is not allowed in a strongly typed network')
        _record('ILayer.precision', self.name, value.name)
        self._precision = value

    @property
    def precision_is_set(self) -> bool:
        """Whether a precision was requested."""
        return self._precision is not None

    def reset_precision(self) -> None:
        """Forget the requested precision."""
        self._precision = None

    def set_output_type(self, index: int, dtype: DataType) -> None:
        """Request output ``index``'s type."""
        if not 0 <= index < len(self._outputs):
            raise IndexError(index)
        _record('ILayer.set_output_type', self.name, index, dtype.name)
        self._output_types[index] = dtype

    def get_output_type(self, index: int) -> DataType:
        """Return the requested output type (FLOAT when unset)."""
        return self._output_types.get(index, DataType.FLOAT)

    def output_type_is_set(self, index: int) -> bool:
        """Whether output ``index``'s type was requested."""
        return index in self._output_types


_NETWORK_OF: Dict[int, 'INetworkDefinition'] = {}


class INetworkDefinition:
    """A network definition (filled by OnnxParser)."""

    def __init__(self, flags: int) -> None:
        self.flags = int(flags)
        typed_bit = 1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        self.strongly_typed = bool(flags & typed_bit)
        self._layers: List[ILayer] = []
        self._inputs: List[ITensor] = []
        self._outputs: List[ITensor] = []
        self.onnx_bytes = b''
        self.name = ''

    @property
    def num_layers(self) -> int:
        """Number of layers."""
        return len(self._layers)

    def get_layer(self, index: int) -> ILayer:
        """Return layer ``index``."""
        return self._layers[index]

    @property
    def num_inputs(self) -> int:
        """Number of network inputs."""
        return len(self._inputs)

    def get_input(self, index: int) -> ITensor:
        """Return network input ``index``."""
        return self._inputs[index]

    @property
    def num_outputs(self) -> int:
        """Number of network outputs."""
        return len(self._outputs)

    def get_output(self, index: int) -> ITensor:
        """Return network output ``index``."""
        return self._outputs[index]

    def _add_layer(self, layer: ILayer) -> None:
        self._layers.append(layer)
        _NETWORK_OF[id(layer)] = self


# ----------------------------------------------------------------------------- ONNX parser

_LAYER_OF_OP = {
    'Conv': LayerType.CONVOLUTION, 'ConvTranspose': LayerType.DECONVOLUTION,
    'Relu': LayerType.ACTIVATION, 'Clip': LayerType.ACTIVATION,
    'LeakyRelu': LayerType.ACTIVATION, 'Sigmoid': LayerType.ACTIVATION,
    'Tanh': LayerType.ACTIVATION, 'HardSigmoid': LayerType.ACTIVATION,
    'Add': LayerType.ELEMENTWISE, 'Sub': LayerType.ELEMENTWISE, 'Mul': LayerType.ELEMENTWISE,
    'Div': LayerType.ELEMENTWISE, 'Max': LayerType.ELEMENTWISE, 'Min': LayerType.ELEMENTWISE,
    'Pow': LayerType.ELEMENTWISE, 'Exp': LayerType.UNARY, 'Log': LayerType.UNARY,
    'Sqrt': LayerType.UNARY, 'MaxPool': LayerType.POOLING, 'AveragePool': LayerType.POOLING,
    'GlobalAveragePool': LayerType.POOLING, 'Concat': LayerType.CONCATENATION,
    'Reshape': LayerType.SHUFFLE, 'Transpose': LayerType.SHUFFLE, 'Flatten': LayerType.SHUFFLE,
    'Squeeze': LayerType.SHUFFLE, 'Unsqueeze': LayerType.SHUFFLE,
    'Resize': LayerType.RESIZE, 'Upsample': LayerType.RESIZE, 'Slice': LayerType.SLICE,
    'Split': LayerType.SLICE, 'Pad': LayerType.SLICE, 'Gather': LayerType.GATHER,
    'Shape': LayerType.SHAPE, 'Constant': LayerType.CONSTANT, 'Identity': LayerType.IDENTITY,
    'Cast': LayerType.CAST, 'Softmax': LayerType.SOFTMAX,
    'MatMul': LayerType.MATRIX_MULTIPLY, 'Gemm': LayerType.MATRIX_MULTIPLY,
    'BatchNormalization': LayerType.SCALE, 'QuantizeLinear': LayerType.QUANTIZE,
    'DequantizeLinear': LayerType.DEQUANTIZE, 'ReduceMax': LayerType.REDUCE,
    'ReduceMean': LayerType.REDUCE, 'ReduceSum': LayerType.REDUCE,
}
#: Inputs that TensorRT folds into the layer (weights) or reads as parameters, by op.
_PARAM_INPUTS = {'Conv': (1, 2), 'ConvTranspose': (1, 2), 'Gemm': (1, 2),
                 'BatchNormalization': (1, 2, 3, 4), 'QuantizeLinear': (1, 2),
                 'DequantizeLinear': (1, 2), 'Reshape': (1,), 'Clip': (1, 2),
                 'Resize': (1, 2, 3), 'Slice': (1, 2, 3, 4), 'Split': (1,), 'Pad': (1, 2, 3),
                 'Squeeze': (1,), 'Unsqueeze': (1,), 'ReduceMax': (1,), 'ReduceMean': (1,),
                 'ReduceSum': (1,)}
_ONNX_TO_TRT = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 2: DataType.UINT8,
                6: DataType.INT32, 7: DataType.INT64, 9: DataType.BOOL}


class ParserError:
    """One ONNX parser error."""

    def __init__(self, desc: str, node: int = -1, node_name: str = '',
                 node_operator: str = '') -> None:
        self._desc, self._node = desc, node
        self._node_name, self._node_operator = node_name, node_operator

    def desc(self) -> str:
        """Error description."""
        return self._desc

    def code(self) -> int:
        """Return the error number (always INVALID_NODE here)."""
        return 4

    def node(self) -> int:
        """Index of the failing node, -1 if none."""
        return self._node

    def node_name(self) -> str:
        """Name of the failing node."""
        return self._node_name

    def node_operator(self) -> str:
        """Operator of the failing node."""
        return self._node_operator

    def __str__(self) -> str:
        where = f'In node {self._node} with name: {self._node_name} and operator: ' \
                f'{self._node_operator} ' if self._node >= 0 else ''
        return f'{where}(parseGraph): INVALID_NODE: {self._desc}'


class OnnxParser:
    """tensorrt.OnnxParser: fills an INetworkDefinition from an ONNX model."""

    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        if not isinstance(network, INetworkDefinition):
            raise TypeError('OnnxParser(network, logger): network must be an '
                            'INetworkDefinition')
        self.network = network
        self.logger = logger
        self._errors: List[ParserError] = []

    @property
    def num_errors(self) -> int:
        """Number of errors of the last parse."""
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        """Return error ``index``."""
        return self._errors[index]

    def clear_errors(self) -> None:
        """Forget the errors."""
        self._errors = []

    def parse_from_file(self, model: str) -> bool:
        """Parse the ONNX file at ``model``."""
        _record('OnnxParser.parse_from_file', str(model))
        try:
            data = Path(model).read_bytes()
        except OSError as exc:
            self._fail(f'Failed to open file: {model} ({exc})')
            return False
        return self._parse(data)

    def parse(self, model: bytes, path: Optional[str] = None) -> bool:
        """Parse an ONNX model held in memory."""
        _record('OnnxParser.parse', len(model), path)
        return self._parse(bytes(model))

    def _fail(self, desc: str, node: int = -1, name: str = '', op: str = '') -> None:
        error = ParserError(desc, node, name, op)
        self._errors.append(error)
        _log(self.logger, _Severity.ERROR, str(error))

    def _parse(self, data: bytes) -> bool:
        import onnx
        from onnx import numpy_helper

        self._errors = []
        try:
            model = onnx.load_model_from_string(data)
            model = onnx.shape_inference.infer_shapes(model)
        except Exception as exc:  # onnx raises DecodeError and others
            self._fail(f'Failed to parse ONNX model: {exc}')
            return False
        graph = model.graph
        inits = {init.name: init for init in graph.initializer}
        types: Dict[str, Tuple[DataType, Tuple[int, ...]]] = {}
        for info in list(graph.input) + list(graph.value_info) + list(graph.output):
            tensor_type = info.type.tensor_type
            dims = tuple(d.dim_value if d.HasField('dim_value') else -1
                         for d in tensor_type.shape.dim)
            types[info.name] = (_ONNX_TO_TRT.get(tensor_type.elem_type, DataType.FLOAT), dims)
        network = self.network
        tensors: Dict[str, ITensor] = {}

        def tensor(name: str) -> ITensor:
            if name not in tensors:
                dtype, dims = types.get(name, (DataType.FLOAT, ()))
                if name in inits:
                    dtype = _ONNX_TO_TRT.get(inits[name].data_type, DataType.FLOAT)
                    dims = tuple(inits[name].dims)
                tensors[name] = ITensor(name, dims, dtype)
            return tensors[name]

        for graph_input in graph.input:
            if graph_input.name in inits:
                continue
            t = tensor(graph_input.name)
            t.is_network_input = True
            network._inputs.append(t)
        constant_made = set()
        for index, node in enumerate(graph.node):
            name = node.name or f'node_of_{node.output[0]}'
            layer_type = _LAYER_OF_OP.get(node.op_type)
            if layer_type is None:
                self._fail(f'No importer registered for op: {node.op_type}. Attempting to '
                           'import as plugin.', index, name, node.op_type)
                return False
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type in ('QuantizeLinear', 'DequantizeLinear'):
                problem = self._check_qdq(node, inits, numpy_helper)
                if problem:
                    self._fail(problem, index, name, node.op_type)
                    return False
                if len(node.input) > 1 and node.input[1] in inits:
                    attrs['scale'] = numpy_helper.to_array(inits[node.input[1]])
            params = _PARAM_INPUTS.get(node.op_type, ())
            inputs = []
            for position, input_name in enumerate(node.input):
                if not input_name or position in params:
                    continue
                if input_name in inits and input_name not in constant_made:
                    const = ITensor(input_name, tuple(inits[input_name].dims),
                                    _ONNX_TO_TRT.get(inits[input_name].data_type,
                                                     DataType.FLOAT))
                    tensors[input_name] = const
                    network._add_layer(ILayer(f'{input_name}_constant', LayerType.CONSTANT,
                                              'Constant', [], [const], {}))
                    constant_made.add(input_name)
                inputs.append(tensor(input_name))
            outputs = [tensor(o) for o in node.output if o]
            network._add_layer(ILayer(name, layer_type, node.op_type, inputs, outputs, attrs))
        for graph_output in graph.output:
            t = tensor(graph_output.name)
            t.is_network_output = True
            network._outputs.append(t)
        network.onnx_bytes = data
        network.name = graph.name
        return True

    @staticmethod
    def _check_qdq(node: Any, inits: Dict[str, Any], numpy_helper: Any) -> str:
        if len(node.input) > 2 and node.input[2]:
            zero = inits.get(node.input[2])
            if zero is None:
                return 'zero point must be a constant initializer'
            values = numpy_helper.to_array(zero)
            if values.dtype != np.int8:
                return (f'{node.op_type}: quantized type {values.dtype} is not supported '
                        '(TensorRT quantizes to signed INT8)')
            if np.any(values != 0):
                return (f'{node.op_type}: zero point must be 0; TensorRT only supports '
                        'symmetric quantization')
        if node.op_type == 'DequantizeLinear' and node.input[0] in inits:
            data_type = inits[node.input[0]].data_type
            if data_type not in (3,):  # INT8
                return ('DequantizeLinear: input of type '
                        f'{_ONNX_TO_TRT.get(data_type, data_type)} is not supported (INT8 only; '
                        'leave biases in float)')
        return ''


# ----------------------------------------------------------------------------- interfaces

class IInt8Calibrator:
    """Base of the INT8 calibrators: ``get_batch_size``, ``get_batch(names)``, caches."""

    _algorithm = CalibrationAlgoType.ENTROPY_CALIBRATION_2

    def __init__(self) -> None:
        self._trt_base_init = True

    def get_algorithm(self) -> CalibrationAlgoType:
        """Which algorithm TensorRT runs with this calibrator."""
        return self._algorithm

    def get_batch_size(self) -> int:
        """Calibration batch size (deprecated in TensorRT 10: must match the network)."""
        raise NotImplementedError

    def get_batch(self, names: List[str]) -> Optional[List[int]]:
        """Return one device pointer per input name, or None when the data is exhausted."""
        raise NotImplementedError

    def read_calibration_cache(self) -> Optional[bytes]:
        """Return a previously written cache, or None."""
        raise NotImplementedError

    def write_calibration_cache(self, cache: bytes) -> None:
        """Store the cache."""
        raise NotImplementedError


class IInt8EntropyCalibrator2(IInt8Calibrator):
    """Entropy calibrator 2 (the one the DLA requires)."""

    _algorithm = CalibrationAlgoType.ENTROPY_CALIBRATION_2


class IInt8EntropyCalibrator(IInt8Calibrator):
    """Legacy entropy calibrator."""

    _algorithm = CalibrationAlgoType.ENTROPY_CALIBRATION


class IInt8MinMaxCalibrator(IInt8Calibrator):
    """MinMax calibrator: the range is the largest absolute value seen."""

    _algorithm = CalibrationAlgoType.MINMAX_CALIBRATION


class IInt8LegacyCalibrator(IInt8Calibrator):
    """Legacy calibrator: quantile / regression cutoff chosen by the application."""

    _algorithm = CalibrationAlgoType.LEGACY_CALIBRATION

    def get_quantile(self) -> float:
        """Quantile (0-1) of |x| that sets the range."""
        raise NotImplementedError

    def get_regression_cutoff(self) -> float:
        """Regression cutoff (0-1)."""
        raise NotImplementedError

    def read_histogram_cache(self, length: int) -> Optional[bytes]:
        """Return a previously written histogram cache, or None."""
        raise NotImplementedError

    def write_histogram_cache(self, data: bytes, length: int) -> None:
        """Store the histogram cache."""
        raise NotImplementedError


class IProfiler:
    """Application-implemented per-layer profiler: ``report_layer_time(layer_name, ms)``."""

    def __init__(self) -> None:
        self._trt_base_init = True

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        """Receive one layer's time."""
        raise NotImplementedError


class IProgressMonitor:
    """Application-implemented build progress reporting."""

    def __init__(self) -> None:
        self._trt_base_init = True

    def phase_start(self, phase_name: str, parent_phase: Optional[str], num_steps: int) -> None:
        """Receive the start of a phase."""
        raise NotImplementedError

    def step_complete(self, phase_name: str, step: int) -> bool:
        """Receive the end of a step; return False to cancel the build."""
        raise NotImplementedError

    def phase_finish(self, phase_name: str) -> None:
        """Receive the end of a phase."""
        raise NotImplementedError


class IHostMemory(bytes):
    """Serialized data owned by TensorRT (supports the buffer protocol)."""

    @property
    def nbytes(self) -> int:
        """Size in bytes."""
        return len(self)

    @property
    def dtype(self) -> DataType:
        """Element type (bytes)."""
        return DataType.UINT8


class ITimingCache:
    """A timing cache: layer key -> 'tactic', tagged with the TensorRT version and GPU."""

    MAGIC = 'trt-double-timing-cache'

    def __init__(self, entries: Optional[Dict[str, str]] = None, version: str = '',
                 gpu: str = '') -> None:
        self.entries = dict(entries or {})
        self.version = version or __version__
        self.gpu = gpu or HARDWARE.gpu_name
        self.hits = 0
        self.misses = 0

    def serialize(self) -> IHostMemory:
        """Return the cache as bytes."""
        return IHostMemory(json.dumps({'magic': self.MAGIC, 'version': self.version,
                                       'gpu': self.gpu, 'entries': self.entries}).encode())

    def combine(self, input_cache: 'ITimingCache', ignore_mismatch: bool) -> bool:
        """Merge another cache into this one."""
        if not ignore_mismatch and (input_cache.version, input_cache.gpu) != (self.version,
                                                                              self.gpu):
            return False
        self.entries.update(input_cache.entries)
        return True

    def reset(self) -> bool:
        """Empty the cache."""
        self.entries.clear()
        return True


# ----------------------------------------------------------------------------- builder

_INT8_LAYERS = {LayerType.CONVOLUTION, LayerType.DECONVOLUTION, LayerType.ACTIVATION,
                LayerType.POOLING, LayerType.ELEMENTWISE, LayerType.CONCATENATION,
                LayerType.SCALE, LayerType.MATRIX_MULTIPLY, LayerType.RESIZE}
_DLA_ACTIVATIONS = {'Relu', 'Clip', 'Sigmoid', 'Tanh', 'LeakyRelu'}
_ALGO_NAMES = {CalibrationAlgoType.ENTROPY_CALIBRATION_2: 'EntropyCalibration2',
               CalibrationAlgoType.ENTROPY_CALIBRATION: 'EntropyCalibration',
               CalibrationAlgoType.MINMAX_CALIBRATION: 'MinMaxCalibration',
               CalibrationAlgoType.LEGACY_CALIBRATION: 'LegacyCalibration'}


def _dla_supported(layer: ILayer) -> bool:
    """Apply the double's DLA rules (a simplification of the DLA support matrix)."""
    shape_of = [t.shape for t in layer._inputs] + [t.shape for t in layer._outputs]
    rank4 = all(len(s) == 4 for s in shape_of if s)
    if layer.type in (LayerType.CONVOLUTION, LayerType.DECONVOLUTION, LayerType.SCALE):
        return rank4
    if layer.type == LayerType.ACTIVATION:
        return layer.op_type in _DLA_ACTIVATIONS and rank4
    if layer.type == LayerType.POOLING:
        window = layer.attrs.get('kernel_shape', [1, 1])
        return max(window) <= 8 and rank4
    if layer.type == LayerType.ELEMENTWISE:
        return layer.op_type in ('Add', 'Sub', 'Mul', 'Max', 'Min') and rank4
    if layer.type == LayerType.CONCATENATION:
        return int(layer.attrs.get('axis', 1)) == 1 and rank4
    if layer.type in (LayerType.RESIZE, LayerType.SHUFFLE, LayerType.SOFTMAX):
        return rank4
    return False


class IBuilderConfig:
    """Build options."""

    def __init__(self) -> None:
        self._flags = set()
        self._pools: Dict[MemoryPoolType, int] = {}
        self._default_device = DeviceType.GPU
        self._dla_core = -1
        self._calibrator: Optional[IInt8Calibrator] = None
        self._device_of: Dict[int, DeviceType] = {}
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self._timing_cache: Optional[ITimingCache] = None
        self._progress: Optional[IProgressMonitor] = None
        self.avg_timing_iterations = 1
        self.builder_optimization_level = 3
        self.profiles: List[Any] = []

    def set_flag(self, flag: BuilderFlag) -> None:
        """Enable a builder flag."""
        if not isinstance(flag, BuilderFlag):
            raise TypeError('set_flag(): incompatible function arguments (expected '
                            'tensorrt.BuilderFlag)')
        _record('IBuilderConfig.set_flag', flag.name)
        self._flags.add(flag)

    def clear_flag(self, flag: BuilderFlag) -> None:
        """Disable a builder flag."""
        _record('IBuilderConfig.clear_flag', flag.name)
        self._flags.discard(flag)

    def get_flag(self, flag: BuilderFlag) -> bool:
        """Whether a flag is set."""
        return flag in self._flags

    @property
    def flags(self) -> int:
        """Flags as a bit mask."""
        return sum(1 << int(f) for f in self._flags)

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        """Limit a memory pool."""
        if not isinstance(pool, MemoryPoolType) or int(pool_size) < 0:
            raise TypeError('set_memory_pool_limit(pool: MemoryPoolType, pool_size: int)')
        _record('IBuilderConfig.set_memory_pool_limit', pool.name, int(pool_size))
        self._pools[pool] = int(pool_size)

    def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
        """Return a pool's limit (defaults to a large value)."""
        return self._pools.get(pool, 1 << 40)

    @property
    def default_device_type(self) -> DeviceType:
        """Device every layer runs on unless set per layer."""
        return self._default_device

    @default_device_type.setter
    def default_device_type(self, value: DeviceType) -> None:
        if not isinstance(value, DeviceType):
            raise TypeError('default_device_type must be a tensorrt.DeviceType')
        _record('IBuilderConfig.default_device_type', value.name)
        self._default_device = value

    @property
    def DLA_core(self) -> int:  # noqa: N802 - TensorRT's name
        """The DLA core the engine is built for (-1 = unset)."""
        return self._dla_core

    @DLA_core.setter
    def DLA_core(self, value: int) -> None:  # noqa: N802 - TensorRT's name
        _record('IBuilderConfig.DLA_core', int(value))
        self._dla_core = int(value)

    @property
    def int8_calibrator(self) -> Optional[IInt8Calibrator]:
        """The INT8 calibrator."""
        return self._calibrator

    @int8_calibrator.setter
    def int8_calibrator(self, value: Optional[IInt8Calibrator]) -> None:
        if value is not None:
            if not isinstance(value, IInt8Calibrator):
                raise TypeError('int8_calibrator must be an IInt8Calibrator')
            _require_base_init(value, type(value).__mro__[1].__name__)
        _record('IBuilderConfig.int8_calibrator', type(value).__mro__[1].__name__
                if value is not None else None)
        self._calibrator = value

    @property
    def progress_monitor(self) -> Optional[IProgressMonitor]:
        """Build progress monitor."""
        return self._progress

    @progress_monitor.setter
    def progress_monitor(self, value: Optional[IProgressMonitor]) -> None:
        if value is not None:
            if not isinstance(value, IProgressMonitor):
                raise TypeError('progress_monitor must be an IProgressMonitor')
            _require_base_init(value, 'IProgressMonitor')
        _record('IBuilderConfig.progress_monitor', value is not None)
        self._progress = value

    def set_device_type(self, layer: ILayer, device_type: DeviceType) -> None:
        """Run ``layer`` on ``device_type``."""
        _record('IBuilderConfig.set_device_type', layer.name, device_type.name)
        self._device_of[id(layer)] = device_type

    def get_device_type(self, layer: ILayer) -> DeviceType:
        """Device ``layer`` is assigned to (default device unless set)."""
        return self._device_of.get(id(layer), self._default_device)

    def is_device_type_set(self, layer: ILayer) -> bool:
        """Whether the layer's device was set explicitly."""
        return id(layer) in self._device_of

    def reset_device_type(self, layer: ILayer) -> None:
        """Forget the layer's device."""
        self._device_of.pop(id(layer), None)

    def can_run_on_DLA(self, layer: ILayer) -> bool:  # noqa: N802 - TensorRT's name
        """Whether the layer can run on the DLA."""
        _record('IBuilderConfig.can_run_on_DLA', layer.name)
        return _dla_supported(layer)

    def create_timing_cache(self, serialized_timing_cache: bytes) -> Optional[ITimingCache]:
        """Create a timing cache from bytes (empty bytes: a new cache)."""
        data = bytes(serialized_timing_cache)
        _record('IBuilderConfig.create_timing_cache', len(data))
        if not data:
            return ITimingCache()
        try:
            blob = json.loads(data.decode())
            if blob.get('magic') != ITimingCache.MAGIC:
                raise ValueError('bad magic')
        except (ValueError, UnicodeDecodeError):
            return None
        return ITimingCache(blob['entries'], blob['version'], blob['gpu'])

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        """Use ``cache``; False when it was made by another version or GPU."""
        _record('IBuilderConfig.set_timing_cache', bool(ignore_mismatch))
        if not isinstance(cache, ITimingCache):
            raise TypeError('set_timing_cache(cache: ITimingCache, ignore_mismatch: bool)')
        if not ignore_mismatch and (cache.version, cache.gpu) != (__version__,
                                                                  HARDWARE.gpu_name):
            return False
        self._timing_cache = cache
        return True

    def get_timing_cache(self) -> Optional[ITimingCache]:
        """Return the timing cache in use."""
        return self._timing_cache

    def add_optimization_profile(self, profile: Any) -> int:
        """Add an optimization profile (dynamic shapes)."""
        self.profiles.append(profile)
        return len(self.profiles) - 1


class Builder:
    """tensorrt.Builder."""

    def __init__(self, logger: ILogger) -> None:
        if not isinstance(logger, ILogger):
            raise TypeError('Builder(logger): logger must be a tensorrt.ILogger')
        _require_base_init(logger, 'ILogger')
        _record('Builder', type(logger).__name__)
        self.logger = logger
        self.max_threads = 0

    @property
    def platform_has_fast_fp16(self) -> bool:
        """Whether FP16 is fast here (deprecated in 10.5: query CUDA instead)."""
        _deprecated_since((10, 5, 0), 'platform_has_fast_fp16', 'query data type support '
                          'from CUDA directly')
        return HARDWARE.fast_fp16

    @property
    def platform_has_fast_int8(self) -> bool:
        """Whether INT8 is fast here (deprecated in 10.5: query CUDA instead)."""
        _deprecated_since((10, 5, 0), 'platform_has_fast_int8', 'query data type support '
                          'from CUDA directly')
        return HARDWARE.fast_int8

    @property
    def platform_has_tf32(self) -> bool:
        """Whether TF32 is available."""
        return HARDWARE.compute_capability >= (8, 0)

    @property
    def num_DLA_cores(self) -> int:  # noqa: N802 - TensorRT's name
        """Number of DLA cores."""
        return HARDWARE.num_dla_cores

    @property
    def max_DLA_batch_size(self) -> int:  # noqa: N802 - TensorRT's name
        """Largest DLA batch."""
        return 4096 if HARDWARE.num_dla_cores else 1

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        """Create an empty network."""
        _record('Builder.create_network', int(flags))
        if flags & (1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH)) and \
                _version_tuple() >= (10, 0, 0):
            _log(self.logger, _Severity.WARNING, 'NetworkDefinitionCreationFlag::kEXPLICIT_BATCH '
                 'is deprecated and has no effect (networks are always explicit batch).')
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        """Create a builder config."""
        _record('Builder.create_builder_config')
        return IBuilderConfig()

    def create_optimization_profile(self) -> Any:
        """Create an optimization profile."""
        return {}

    def build_serialized_network(self, network: INetworkDefinition,
                                 config: IBuilderConfig) -> Optional[IHostMemory]:
        """Build and serialize an engine; None (errors logged) on failure."""
        _record('Builder.build_serialized_network')
        try:
            return IHostMemory(_Build(self.logger, network, config).run())
        except _BuildError as exc:
            _log(self.logger, _Severity.ERROR, str(exc))
            return None


class _BuildError(Exception):
    pass


PLAN_MAGIC = b'TRTDBLPLAN1\0'


class _Build:
    """One build: checks, calibration, precision/device decisions, the plan."""

    def __init__(self, logger: ILogger, network: INetworkDefinition,
                 config: IBuilderConfig) -> None:
        self.logger, self.network, self.config = logger, network, config
        self.flags = config._flags

    def warn(self, msg: str) -> None:
        _log(self.logger, _Severity.WARNING, msg)

    def run(self) -> bytes:
        net, cfg, flags = self.network, self.config, self.flags
        if HARDWARE.build_delay_s:
            time.sleep(HARDWARE.build_delay_s)
        if not net.num_inputs or not net.num_outputs or not net.onnx_bytes:
            raise _BuildError('Network must have at least one input and one output (was the '
                              'ONNX model parsed?)')
        for tensor in net._inputs:
            if any(d < 0 for d in tensor.shape) and not cfg.profiles:
                raise _BuildError(f'Network has dynamic or shape inputs, but no optimization '
                                  f'profile has been defined (input {tensor.name} '
                                  f'{tuple(tensor.shape)}).')
        qdq = any(layer.type in (LayerType.QUANTIZE, LayerType.DEQUANTIZE)
                  for layer in net._layers)
        int8 = BuilderFlag.INT8 in flags
        fp16 = BuilderFlag.FP16 in flags
        if net.strongly_typed and (int8 or fp16):
            raise _BuildError('BuilderFlag::kFP16 / kINT8 cannot be used with a strongly typed '
                              'network.')
        if qdq and not int8 and not net.strongly_typed:
            raise _BuildError('Network contains Q/DQ layers (explicit quantization) but '
                              'BuilderFlag::kINT8 is not set.')
        devices = self.assign_devices(int8, fp16)
        scales = self.int8_scales(qdq, int8, devices)
        precisions = self.assign_precisions(qdq, int8, fp16, scales, devices)
        self.report_progress()
        self.use_timing_cache(precisions)
        layers = [{'name': layer.name, 'type': layer.type.name, 'device': devices[i].name,
                   'precision': precisions[i].name}
                  for i, layer in enumerate(net._layers) if layer.type != LayerType.CONSTANT]
        header = {
            'version': __version__, 'gpu': HARDWARE.gpu_name,
            'compute_capability': list(HARDWARE.compute_capability),
            'dla_core': cfg.DLA_core if any(d == DeviceType.DLA for d in devices) else -1,
            'io': [{'name': t.name, 'mode': 'INPUT', 'shape': list(t.shape),
                    'dtype': t.dtype.name} for t in net._inputs]
            + [{'name': t.name, 'mode': 'OUTPUT', 'shape': list(t.shape),
                'dtype': t.dtype.name} for t in net._outputs],
            'layers': layers, 'flags': sorted(f.name for f in flags),
            'quantization': 'explicit' if qdq else ('implicit' if int8 else 'none'),
            'scales': scales, 'profiling_verbosity': cfg.profiling_verbosity.name,
            'workspace': cfg.get_memory_pool_limit(MemoryPoolType.WORKSPACE),
        }
        head = json.dumps(header).encode()
        return (PLAN_MAGIC + struct.pack('<QQ', len(head), len(net.onnx_bytes)) + head
                + net.onnx_bytes)

    def assign_devices(self, int8: bool, fp16: bool) -> List[DeviceType]:
        net, cfg = self.network, self.config
        wanted = [cfg.get_device_type(layer) for layer in net._layers]
        if not any(d == DeviceType.DLA for d in wanted):
            return wanted
        if HARDWARE.num_dla_cores == 0:
            raise _BuildError('DLA is not available on this platform (0 DLA cores); cannot '
                              'build for DeviceType::kDLA.')
        if not 0 <= cfg.DLA_core < HARDWARE.num_dla_cores:
            raise _BuildError(f'DLA core {cfg.DLA_core} is out of range: this platform has '
                              f'{HARDWARE.num_dla_cores} DLA core(s).')
        if not (int8 or fp16):
            raise _BuildError('DLA supports only FP16 and INT8 precision: set '
                              'BuilderFlag::kFP16 or BuilderFlag::kINT8.')
        devices = []
        for layer, device in zip(net._layers, wanted):
            if device == DeviceType.DLA and not _dla_supported(layer):
                if layer.type == LayerType.CONSTANT:
                    devices.append(DeviceType.GPU)
                    continue
                if BuilderFlag.GPU_FALLBACK not in self.flags:
                    raise _BuildError(f'{layer.name} ({layer.type.name}) is not supported on '
                                      'DLA and falling back to GPU is not enabled '
                                      '(BuilderFlag::kGPU_FALLBACK).')
                self.warn(f'Layer {layer.name} ({layer.type.name}) is not supported on DLA, '
                          'falling back to GPU.')
                device = DeviceType.GPU
            devices.append(device)
        return devices

    def float_tensors(self) -> List[ITensor]:
        seen, out = set(), []
        for layer in self.network._layers:
            for tensor in list(layer._inputs) + list(layer._outputs):
                if tensor.dtype in (DataType.FLOAT, DataType.HALF) and tensor.name not in seen:
                    seen.add(tensor.name)
                    out.append(tensor)
        return out

    def int8_scales(self, qdq: bool, int8: bool, devices: List[DeviceType]
                    ) -> Dict[str, float]:
        cfg = self.config
        if not int8:
            return {}
        calibrator = cfg.int8_calibrator
        if qdq:
            if calibrator is not None:
                self.warn("Calibrator won't be used in explicit quantization mode. Use "
                          'quantization aware training to generate network with '
                          'Quantize/Dequantize nodes.')
            return {}
        scales: Dict[str, float] = {}
        if calibrator is not None:
            algorithm = calibrator.get_algorithm()
            if any(d == DeviceType.DLA for d in devices) and \
                    algorithm != CalibrationAlgoType.ENTROPY_CALIBRATION_2:
                raise _BuildError(f'DLA requires IInt8EntropyCalibrator2; got '
                                  f'{_ALGO_NAMES[algorithm]}.')
            scales = _Calibration(self, calibrator).run()
        for tensor in self.float_tensors():
            if tensor._range is not None:
                scales[tensor.name] = max(abs(tensor._range[0]), abs(tensor._range[1])) / 127.0
        if not scales:
            raise _BuildError('Calibration failure occurred with no scaling factors detected. '
                              'This could be due to no int8 calibrator or insufficient custom '
                              'scales for network layers.')
        for tensor in self.float_tensors():
            if tensor.name not in scales:
                self.warn(f'Missing scale and zero-point for tensor {tensor.name}, expect fall '
                          'back to non-int8 implementation for any layer consuming or '
                          'producing given tensor')
        return scales

    def assign_precisions(self, qdq: bool, int8: bool, fp16: bool, scales: Dict[str, float],
                          devices: List[DeviceType]) -> List[DataType]:
        obey = BuilderFlag.OBEY_PRECISION_CONSTRAINTS in self.flags
        prefer = BuilderFlag.PREFER_PRECISION_CONSTRAINTS in self.flags
        producers = {t.name: layer for layer in self.network._layers for t in layer._outputs}
        out: List[DataType] = []
        for layer, device in zip(self.network._layers, devices):
            requested = layer._precision
            if requested is not None and not (obey or prefer):
                self.warn(f'Layer {layer.name}: precision was set but neither '
                          'kOBEY_PRECISION_CONSTRAINTS nor kPREFER_PRECISION_CONSTRAINTS is '
                          'set; the constraint is ignored.')
                requested = None
            if requested == DataType.HALF and not fp16:
                if obey:
                    raise _BuildError(f'Layer {layer.name} is constrained to FP16 but '
                                      'BuilderFlag::kFP16 is not set.')
                self.warn(f'Layer {layer.name}: FP16 requested but kFP16 is not set; ignored.')
                requested = None
            if layer.type == LayerType.CONSTANT:
                precision = DataType.FLOAT
            elif requested is not None:
                precision = requested
            elif qdq:
                first = producers.get(layer._inputs[0].name) if layer._inputs else None
                precision = (DataType.INT8 if first is not None
                             and first.type == LayerType.DEQUANTIZE
                             and layer.type in _INT8_LAYERS
                             else (DataType.HALF if fp16 else DataType.FLOAT))
            elif int8 and layer.type in _INT8_LAYERS and all(
                    t.name in scales for t in list(layer._inputs) + list(layer._outputs)
                    if t.dtype in (DataType.FLOAT, DataType.HALF)):
                precision = DataType.INT8
            else:
                precision = DataType.HALF if fp16 else DataType.FLOAT
            if device == DeviceType.DLA and precision == DataType.FLOAT:
                raise _BuildError(f'DLA layer {layer.name} would run in FP32, which the DLA '
                                  'does not support (no INT8 scales and kFP16 not set).')
            out.append(precision)
        return out

    def report_progress(self) -> None:
        monitor = self.config.progress_monitor
        if monitor is None:
            return
        steps = max(1, self.network.num_layers)
        monitor.phase_start('Building engine', None, steps)
        try:
            for step in range(steps):
                if monitor.step_complete('Building engine', step) is False:
                    raise _BuildError('Build was cancelled by the progress monitor.')
        finally:
            monitor.phase_finish('Building engine')

    def use_timing_cache(self, precisions: List[DataType]) -> None:
        cache = self.config.get_timing_cache()
        if cache is None or BuilderFlag.DISABLE_TIMING_CACHE in self.flags:
            return
        for layer, precision in zip(self.network._layers, precisions):
            key = f'{layer.op_type}:{[tuple(t.shape) for t in layer._inputs]}:{precision.name}'
            if key in cache.entries:
                cache.hits += 1
            else:
                cache.misses += 1
                cache.entries[key] = 'tactic-0'


class _Calibration:
    """Implicit INT8 calibration: batches from the calibrator, statistics via ONNX Runtime."""

    BINS = 2048

    def __init__(self, build: _Build, calibrator: IInt8Calibrator) -> None:
        self.build, self.calibrator = build, calibrator
        self.algorithm = calibrator.get_algorithm()

    def header(self) -> str:
        major, minor, patch = _version_tuple()
        return f'TRT-{major * 1000 + minor * 100 + patch}-{_ALGO_NAMES[self.algorithm]}'

    def run(self) -> Dict[str, float]:
        _require_base_init(self.calibrator, 'IInt8Calibrator')
        cached = self.calibrator.read_calibration_cache()
        _record('IInt8Calibrator.read_calibration_cache', bool(cached))
        if cached:
            scales = self.parse_cache(bytes(cached))
            if scales is not None:
                return scales
        net = self.build.network
        batch = self.calibrator.get_batch_size()
        _record('IInt8Calibrator.get_batch_size', batch)
        dims = net._inputs[0].shape
        if int(batch) != int(dims[0]):
            raise _BuildError(f'Calibrator batch size {batch} does not match the network '
                              f'input batch dimension {dims[0]} (explicit batch).')
        names = [t.name for t in net._inputs]
        session, outputs = self.session()
        stats: Dict[str, List[np.ndarray]] = {}
        count = 0
        while True:
            pointers = self.calibrator.get_batch(names)
            _record('IInt8Calibrator.get_batch', list(names),
                    None if not pointers else len(pointers))
            if not pointers:
                break
            if len(pointers) != len(names):
                raise _BuildError(f'get_batch returned {len(pointers)} binding(s) for '
                                  f'{len(names)} input(s) {names}.')
            feeds = {}
            for tensor, pointer in zip(net._inputs, pointers):
                if not isinstance(pointer, int) or pointer == 0:
                    raise _BuildError(f'get_batch returned an invalid pointer {pointer!r} for '
                                      f'{tensor.name}.')
                nbytes = volume(tensor.shape) * tensor.dtype.itemsize
                try:
                    data = MEMORY.read(pointer, nbytes)
                except (ValueError, MemoryError) as exc:
                    raise _BuildError(f'calibration batch for {tensor.name}: cannot read '
                                      f'{nbytes} bytes at {pointer:#x} ({exc}).') from exc
                feeds[tensor.name] = np.frombuffer(data, nptype(tensor.dtype)).reshape(
                    tensor.shape).copy()
            values = session.run(outputs, feeds)
            for name, value in zip(outputs, values):
                stats.setdefault(name, []).append(np.abs(np.asarray(value, np.float32)).ravel())
            for name, value in feeds.items():
                stats.setdefault(name, []).append(np.abs(value.astype(np.float32)).ravel())
            count += 1
        _record('calibration.batches', count)
        if count == 0:
            raise _BuildError('Calibration failure occurred with no scaling factors detected: '
                              'the calibrator returned no batch.')
        scales = {name: self.amax(np.concatenate(chunks)) / 127.0
                  for name, chunks in stats.items()}
        scales = {name: (s if s > 0 else 1.0 / 127.0) for name, s in scales.items()}
        cache = (self.header() + '\n' + ''.join(
            f'{name}: {struct.pack(">f", s).hex()}\n' for name, s in sorted(scales.items())))
        self.calibrator.write_calibration_cache(cache.encode())
        _record('IInt8Calibrator.write_calibration_cache', len(cache))
        return scales

    def parse_cache(self, data: bytes) -> Optional[Dict[str, float]]:
        try:
            lines = data.decode().splitlines()
        except UnicodeDecodeError:
            lines = []
        if not lines or lines[0] != self.header():
            self.build.warn(f'Calibration cache header {lines[0] if lines else "<empty>"!r} '
                            f'does not match {self.header()!r}; recalibrating.')
            return None
        scales = {}
        for line in lines[1:]:
            name, _, value = line.rpartition(': ')
            scales[name] = struct.unpack('>f', bytes.fromhex(value))[0]
        return scales

    def amax(self, values: np.ndarray) -> float:
        top = float(values.max()) if values.size else 0.0
        if top == 0.0 or self.algorithm == CalibrationAlgoType.MINMAX_CALIBRATION:
            return top
        if self.algorithm == CalibrationAlgoType.LEGACY_CALIBRATION:
            quantile = float(self.calibrator.get_quantile())
            self.calibrator.get_regression_cutoff()
            _record('IInt8LegacyCalibrator.get_quantile', quantile)
            return float(np.quantile(values, quantile))
        hist, edges = np.histogram(values, bins=self.BINS, range=(0.0, top))
        return _entropy_threshold(hist.astype(np.float64), float(edges[1] - edges[0]))

    def session(self) -> Tuple[Any, List[str]]:
        import onnx
        import onnxruntime as ort

        model = onnx.load_model_from_string(self.build.network.onnx_bytes)
        model = onnx.shape_inference.infer_shapes(model)
        known = {o.name for o in model.graph.output}
        infos = {v.name: v for v in model.graph.value_info}
        for node in model.graph.node:
            for name in node.output:
                info = infos.get(name)
                if name and name not in known and info is not None and \
                        info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                    model.graph.output.append(info)
                    known.add(name)
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=['CPUExecutionProvider'])
        return session, [o.name for o in session.get_outputs()]


def _entropy_threshold(hist: np.ndarray, bin_width: float, target: int = 128) -> float:
    """TensorRT-style entropy calibration: the clip threshold minimising KL(P || Q)."""
    best_kl, best_i = np.inf, hist.size
    for i in range(target, hist.size + 1, 16):
        ref = hist[:i].copy()
        ref[-1] += hist[i:].sum()
        if ref.sum() == 0:
            continue
        candidate = hist[:i]
        starts = (np.arange(target) * i) // target
        totals = np.add.reduceat(candidate, starts)
        nonzero = np.add.reduceat((candidate > 0).astype(np.float64), starts)
        lengths = np.diff(np.append(starts, i))
        fill = np.repeat(np.divide(totals, nonzero, out=np.zeros_like(totals),
                                   where=nonzero > 0), lengths)
        expanded = np.where(candidate > 0, fill, 0.0)
        p = ref / ref.sum()
        q_sum = expanded.sum()
        if q_sum == 0:
            continue
        q = expanded / q_sum
        mask = p > 0
        kl = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return (best_i + 0.5) * bin_width


# ----------------------------------------------------------------------------- runtime

class Runtime:
    """tensorrt.Runtime."""

    def __init__(self, logger: ILogger) -> None:
        if not isinstance(logger, ILogger):
            raise TypeError('Runtime(logger): logger must be a tensorrt.ILogger')
        _require_base_init(logger, 'ILogger')
        _record('Runtime', type(logger).__name__)
        self.logger = logger
        self._dla_core = -1

    @property
    def DLA_core(self) -> int:  # noqa: N802 - TensorRT's name
        """DLA core used by engines deserialized from now on (-1 = as built)."""
        return self._dla_core

    @DLA_core.setter
    def DLA_core(self, value: int) -> None:  # noqa: N802 - TensorRT's name
        _record('Runtime.DLA_core', int(value))
        self._dla_core = int(value)

    @property
    def num_DLA_cores(self) -> int:  # noqa: N802 - TensorRT's name
        """Number of DLA cores."""
        return HARDWARE.num_dla_cores

    def deserialize_cuda_engine(self, serialized_engine: Any) -> Optional['ICudaEngine']:
        """Deserialize a plan; None (error logged) when it cannot be used here."""
        data = bytes(serialized_engine)
        _record('Runtime.deserialize_cuda_engine', len(data))
        error = self._check(data)
        if error:
            _log(self.logger, _Severity.ERROR, error)
            return None
        head_len, onnx_len = struct.unpack('<QQ', data[len(PLAN_MAGIC):len(PLAN_MAGIC) + 16])
        start = len(PLAN_MAGIC) + 16
        header = json.loads(data[start:start + head_len].decode())
        core = self._dla_core if self._dla_core >= 0 else header['dla_core']
        return ICudaEngine(header, data[start + head_len:], core)

    def _check(self, data: bytes) -> str:
        if not data.startswith(PLAN_MAGIC):
            return ('1: [stdArchiveReader.cpp::StdArchiveReader] Error Code 1: Serialization '
                    '(Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does '
                    'not match)')
        start = len(PLAN_MAGIC) + 16
        if len(data) < start:
            return 'Error Code 1: Serialization (plan is truncated)'
        head_len, onnx_len = struct.unpack('<QQ', data[len(PLAN_MAGIC):start])
        if len(data) != start + head_len + onnx_len:
            return (f'Error Code 1: Serialization (Serialization assertion size mismatch: '
                    f'expected {start + head_len + onnx_len} bytes, got {len(data)})')
        try:
            header = json.loads(data[start:start + head_len].decode())
            import onnx

            onnx.load_model_from_string(data[start + head_len:])
        except Exception as exc:  # json/onnx decoding errors of a corrupt plan
            return f'Error Code 1: Serialization (corrupt plan: {exc})'
        if header['version'] != __version__:
            return ('Error Code 6: API Usage Error (The engine plan file is not compatible '
                    f'with this version of TensorRT, expecting library version {__version__} '
                    f'got {header["version"]}, please rebuild.)')
        if tuple(header['compute_capability']) != tuple(HARDWARE.compute_capability) or \
                header['gpu'] != HARDWARE.gpu_name:
            return ('Error Code 6: API Usage Error (The engine plan file is generated on an '
                    f'incompatible device, expecting compute {HARDWARE.compute_capability} got '
                    f'compute {tuple(header["compute_capability"])}, please rebuild.)')
        if header['dla_core'] >= 0:
            core = self._dla_core if self._dla_core >= 0 else header['dla_core']
            if not 0 <= core < HARDWARE.num_dla_cores:
                return (f'Error Code 1: DLA core {core} is not available (this platform has '
                        f'{HARDWARE.num_dla_cores} DLA core(s)).')
        return ''


class ICudaEngine:
    """A deserialized engine."""

    def __init__(self, header: Dict[str, Any], onnx_bytes: bytes, dla_core: int) -> None:
        self.header = header
        self.onnx_bytes = onnx_bytes
        self.dla_core = dla_core
        self.name = 'double engine'
        self._io = {entry['name']: entry for entry in header['io']}
        self._order = [entry['name'] for entry in header['io']]

    @property
    def num_io_tensors(self) -> int:
        """Number of I/O tensors."""
        return len(self._order)

    def get_tensor_name(self, index: int) -> str:
        """Name of I/O tensor ``index``."""
        return self._order[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        """INPUT, OUTPUT, or NONE for an unknown name."""
        entry = self._io.get(name)
        return TensorIOMode[entry['mode']] if entry else TensorIOMode.NONE

    def get_tensor_shape(self, name: str) -> Dims:
        """Shape of an I/O tensor."""
        entry = self._io.get(name)
        return Dims(entry['shape']) if entry else Dims(())

    def get_tensor_dtype(self, name: str) -> DataType:
        """Return the data type of an I/O tensor."""
        entry = self._io.get(name)
        return DataType[entry['dtype']] if entry else DataType.FLOAT

    @property
    def num_layers(self) -> int:
        """Number of engine layers."""
        return len(self.header['layers'])

    @property
    def device_memory_size(self) -> int:
        """Scratch memory the engine needs."""
        return 1 << 20

    def create_execution_context(self) -> 'IExecutionContext':
        """Create an execution context."""
        _record('ICudaEngine.create_execution_context')
        return IExecutionContext(self)

    def create_engine_inspector(self) -> 'EngineInspector':
        """Create an inspector of the engine's layers."""
        return EngineInspector(self)

    def serialize(self) -> IHostMemory:
        """Serialize the engine again."""
        head = json.dumps(self.header).encode()
        return IHostMemory(PLAN_MAGIC + struct.pack('<QQ', len(head), len(self.onnx_bytes))
                           + head + self.onnx_bytes)


class EngineInspector:
    """tensorrt.EngineInspector (``engine.create_engine_inspector()``)."""

    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.execution_context: Optional[IExecutionContext] = None

    def get_layer_information(self, layer_index: int,
                              format: LayerInformationFormat) -> str:  # noqa: A002
        """Describe one engine layer (JSON or one line)."""
        layer = self.engine.header['layers'][layer_index]
        if self.engine.header['profiling_verbosity'] != 'DETAILED':
            return json.dumps(layer['name']) if format == LayerInformationFormat.JSON \
                else layer['name']
        info = {'Name': layer['name'], 'LayerType': layer['type'],
                'Precision': layer['precision'], 'Device': layer['device']}
        if format == LayerInformationFormat.JSON:
            return json.dumps(info)
        return ', '.join(f'{k}: {v}' for k, v in info.items())

    def get_engine_information(self, format: LayerInformationFormat) -> str:  # noqa: A002
        """Describe the whole engine."""
        layers = [json.loads(self.get_layer_information(i, LayerInformationFormat.JSON))
                  for i in range(self.engine.num_layers)]
        return json.dumps({'Layers': layers, 'Bindings': self.engine._order})


class IExecutionContext:
    """An execution context: I/O addresses, ``execute_async_v3``, profiler."""

    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self._addresses: Dict[str, int] = {}
        self._profiler: Optional[IProfiler] = None
        self.debug_sync = False
        self.enqueue_emits_profile = True
        self.name = ''
        self._session: Any = None
        self.logger: Optional[ILogger] = None

    @property
    def profiler(self) -> Optional[IProfiler]:
        """Per-layer profiler."""
        return self._profiler

    @profiler.setter
    def profiler(self, value: Optional[IProfiler]) -> None:
        if value is not None:
            if not isinstance(value, IProfiler):
                raise TypeError('profiler must be a tensorrt.IProfiler')
            _require_base_init(value, 'IProfiler')
        _record('IExecutionContext.profiler', value is not None)
        self._profiler = value

    def set_tensor_address(self, name: str, memory: int) -> bool:
        """Bind device memory to an I/O tensor; False for an unknown name or null pointer."""
        if not isinstance(memory, int):
            raise TypeError('set_tensor_address(name: str, memory: int)')
        _record('IExecutionContext.set_tensor_address', name, memory)
        if name not in self.engine._io:
            _log(self.logger, _Severity.ERROR, f'IExecutionContext::setTensorAddress: Error Code '
                 f'3: API Usage Error (Given invalid tensor name: {name}. Get valid tensor '
                 'names with getIOTensorName().)')
            return False
        if memory == 0:
            _log(self.logger, _Severity.ERROR, 'IExecutionContext::setTensorAddress: Error Code '
                 f'3: API Usage Error (Parameter check failed, condition: address != nullptr '
                 f'for tensor {name}.)')
            return False
        self._addresses[name] = memory
        return True

    def get_tensor_address(self, name: str) -> int:
        """Address bound to ``name`` (0 if none)."""
        return self._addresses.get(name, 0)

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        """Set an input's shape (static engines: must equal the built shape)."""
        entry = self.engine._io.get(name)
        return bool(entry and entry['mode'] == 'INPUT' and list(shape) == entry['shape'])

    def get_tensor_shape(self, name: str) -> Dims:
        """Shape of an I/O tensor."""
        return self.engine.get_tensor_shape(name)

    def execute_async_v3(self, stream_handle: int) -> bool:
        """Run the engine on ``stream_handle``: reads the inputs, writes the outputs."""
        if not isinstance(stream_handle, int):
            raise TypeError('execute_async_v3(stream_handle: int)')
        _record('IExecutionContext.execute_async_v3', stream_handle)
        for name in self.engine._order:
            if name not in self._addresses:
                _log(self.logger, _Severity.ERROR, 'IExecutionContext::enqueueV3: Error Code 3: '
                     f'API Usage Error (Address is not set for tensor {name}. Call '
                     'setTensorAddress or setOutputAllocator before enqueue/execute.)')
                return False
        if self._session is None:
            import onnxruntime as ort

            self._session = ort.InferenceSession(self.engine.onnx_bytes,
                                                 providers=['CPUExecutionProvider'])
        engine_sync = getattr(MEMORY, 'engine_sync', None)
        if engine_sync is not None:
            engine_sync(stream_handle)
        feeds, outputs = {}, []
        for name in self.engine._order:
            entry = self.engine._io[name]
            dtype = nptype(DataType[entry['dtype']])
            nbytes = volume(entry['shape']) * np.dtype(dtype).itemsize
            if entry['mode'] == 'INPUT':
                data = MEMORY.read(self._addresses[name], nbytes)
                feeds[name] = np.frombuffer(data, dtype).reshape(entry['shape'])
            else:
                outputs.append(name)
        start = time.perf_counter()
        results = self._session.run(outputs, feeds)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        for name, value in zip(outputs, results):
            entry = self.engine._io[name]
            array = np.ascontiguousarray(value, dtype=nptype(DataType[entry['dtype']]))
            MEMORY.write(self._addresses[name], array.tobytes())
        if self._profiler is not None and self.enqueue_emits_profile:
            self.report_to_profiler(elapsed_ms)
        return True

    def report_to_profiler(self, elapsed_ms: float = 0.0) -> bool:
        """Report per-layer times (the double spreads the measured run time evenly)."""
        if self._profiler is None:
            return False
        layers = self.engine.header['layers']
        for layer in layers:
            self._profiler.report_layer_time(layer['name'], elapsed_ms / max(1, len(layers)))
        return True


def get_plugin_registry() -> Any:
    """Present for API completeness (no plugins in the double)."""
    return None


def init_libnvinfer_plugins(logger: Any, namespace: str) -> bool:
    """Present for API completeness (no plugins in the double)."""
    del logger, namespace
    return True


_ = io  # keep the import list close to the real module's needs
