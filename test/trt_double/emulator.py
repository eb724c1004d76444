"""The TensorRT double's ``tensorrt`` module, executed anew for each version mode.

``control.build_module`` executes this file with ``_CONTROL`` (the test-side controller),
``_API`` (the real manifest of the emulated version's API surface, ``trt_api.api``) and
``__version__`` set, then ``conform`` deletes every public name and member that real version
lacks and wraps every method to check calls against its real pybind11 signatures. What stays
is no more permissive than the real module:

- names, classes, members and enum values are the real ones of that version (the enums are
  built from the manifest, strict as pybind11's: equal only to members of the same enum, no
  arithmetic, ``int()`` / ``index()`` work); TensorRT 11 mode has no ``BuilderFlag.FP16`` /
  ``INT8`` / ``PREFER_PRECISION_CONSTRAINTS``, no ``int8_calibrator``, no ``IInt8*Calibrator``,
  no ``set_dynamic_range``, no layer ``precision`` / ``set_output_type``, no
  ``platform_has_fast_*``, no ``EXPLICIT_BATCH``, and every network is strongly typed;
- callbacks (logger, progress monitor, profiler, calibrators) are called the way the real
  trampolines call them: any exception raised inside one, ``KeyboardInterrupt`` included, is
  caught, printed (``[ERROR] Exception caught in get_batch(): ...``) and replaced by the real
  default (``get_batch`` -> no more data, ``step_complete`` -> cancel the build,
  ``read_calibration_cache`` -> no cache, ``get_batch_size`` -> -1);
- ``write_calibration_cache`` receives a read-only ``memoryview`` that is released when the
  call returns; ``IHostMemory`` has the buffer protocol, ``nbytes`` and ``dtype`` only;
- deprecation warnings as the binding sources issue them ("Use <text> instead."):
  ``int8_calibrator``, ``set_dynamic_range`` / ``dynamic_range`` / ``reset_dynamic_range``,
  ``set_calibration_profile`` / ``get_calibration_profile`` from 10.1; layer ``precision``
  setter, ``precision_is_set``, ``reset_precision``, ``set_output_type`` and friends from
  10.12; ``platform_has_fast_*`` never warn;
- ``set_tensor_address(name, 0)`` resets the address; any other address must be 256-byte
  aligned; ``ParserError.code()`` returns an ``ErrorCode``;
- the engine inspector answers in TensorRT's DETAILED JSON shape (``Name``, ``LayerType`` such
  as ``CaskConvolution``, ``Inputs`` / ``Outputs`` with ``Format/Datatype``, ``TacticName``,
  ``Metadata``, ``Weights`` with the compute type on weighted layers; DLA subgraphs as one
  ``{ForeignNode[first...last]}`` layer); from 11 the tensors' ``Format/Datatype`` is split
  into ``Format`` and ``Datatype``; the engine information lists ``Bindings`` (names) before
  11 and ``I/O Tensors`` (objects with ``Name``, ``IOMode``, ``DataType``, ...) from 11.

What it does: parses the ONNX file with the ``onnx`` package into layers and tensors,
"builds" a plan (a header with the build decisions + the ONNX bytes) that deserializes back,
calibrates by running the ONNX with ONNX Runtime on the batches the calibrator hands over
(reading them through ``_CONTROL.memory``), and "runs" by executing the ONNX with ONNX Runtime
on the bytes behind the bound input address, writing the output to the bound output address.
It rejects misuse the way TensorRT does: errors go to the ILogger and
``build_serialized_network`` / ``deserialize_cuda_engine`` return ``None``;
``set_tensor_address`` / ``execute_async_v3`` return ``False``.

What it does NOT model: kernels, tactics, real timings, real layer fusion, INT8 arithmetic
(the run is float32), and DLA support beyond the simple ``can_run_on_DLA`` rules. Passing
these tests says the calls are right; only a run on real TensorRT
(scripts/check_tensorrt_on_hardware.py) says the engine is.
"""

from __future__ import annotations

import builtins as _builtins
import ctypes as _ctypes
import json as _json
import struct as _struct
import sys as _sys
import time as _time
import warnings as _warnings
from pathlib import Path as _Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as _np

_bool = _builtins.bool   # the module defines `bool` (DataType.BOOL) as the real one does
# Set by control.build_module before this file runs:
_CONTROL: Any = globals()['_CONTROL']        # the test-side controller
_API: Any = globals()['_API']                # trt_api.api.Api of the emulated surface
__version__: str = globals()['__version__']  # the emulated version


def _record(*entry: Any) -> None:
    _CONTROL.record(*entry)


def _hw() -> Any:
    return _CONTROL.hardware


def _version_tuple() -> Tuple[int, int, int]:
    parts = [int(p) for p in __version__.split('.')[:3]]
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


def _deprecated_since(version: Tuple[int, int, int], what: str, text: str) -> None:
    """Warn as the real bindings' utils::deprecate does, from ``version`` on."""
    if _version_tuple() >= version:
        _record('DeprecationWarning', what)
        _warnings.warn(f'Use {text} instead.', DeprecationWarning, stacklevel=3)


_EXPLICIT_QUANT = 'Deprecated in TensorRT 10.1. Superseded by explicit quantization.'
_STRONG_TYPING = 'Deprecated in TensorRT 10.12. Superseded by strong typing.'


def _deprecated_implicit(what: str) -> None:
    _deprecated_since((10, 1, 0), what, _EXPLICIT_QUANT)


def _deprecated_weak(what: str) -> None:
    _deprecated_since((10, 12, 0), what, _STRONG_TYPING)


def _strongly_typed_only() -> bool:
    """Return whether networks are always strongly typed (TensorRT 11)."""
    return _version_tuple() >= (11, 0, 0)


def _require_base_init(obj: Any, base: str) -> None:
    if not getattr(obj, '_trt_base_init', False):
        raise TypeError(f'{type(obj).__name__}.__init__() must be called when overriding '
                        f'__init__ (call {base}.__init__(self))')


def _callback(obj: Any, name: str, default: Any, *args: Any) -> Any:
    """Call an application callback the way the real trampolines do (see the docstring)."""
    try:
        return getattr(obj, name)(*args)
    except BaseException as exc:  # noqa: B902 - the real trampolines catch everything
        _CONTROL.callback_errors.append((name, exc))
        _sys.stderr.write(f'[ERROR] Exception caught in {name}(): {type(exc).__name__}: '
                          f'{exc}\n')
        return default


# ----------------------------------------------------------------------------- enums

class _EnumValue:
    """A pybind11 enum member: strict equality, no arithmetic, int() / index()."""

    __slots__ = ('_value',)
    __members__: Dict[str, Any] = {}

    def __init__(self, value: int) -> None:
        if isinstance(value, _EnumValue) or not isinstance(value, int):
            raise TypeError(f'__init__(): incompatible constructor arguments: {value!r}')
        self._value = int(value)

    @property
    def value(self) -> int:
        return self._value

    @property
    def name(self) -> str:
        for key, member in type(self).__members__.items():
            if member._value == self._value:
                return key
        return '???'

    def __int__(self) -> int:
        return self._value

    def __index__(self) -> int:
        return self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and other._value == self._value

    def __ne__(self, other: Any) -> bool:
        return not self == other

    def _order(self, other: Any) -> int:
        if type(other) is not type(self):
            raise TypeError('Expected an enumeration of matching type!')
        return other._value

    def __lt__(self, other: Any) -> bool:
        return self._value < self._order(other)

    def __le__(self, other: Any) -> bool:
        return self._value <= self._order(other)

    def __gt__(self, other: Any) -> bool:
        return self._value > self._order(other)

    def __ge__(self, other: Any) -> bool:
        return self._value >= self._order(other)

    def __repr__(self) -> str:
        return f'<{type(self).__name__}.{self.name}: {self._value}>'

    def __str__(self) -> str:
        return f'{type(self).__name__}.{self.name}'


_ITEMSIZE = {'FLOAT': 4, 'HALF': 2, 'BF16': 2, 'INT8': 1, 'INT32': 4, 'INT64': 8, 'BOOL': 1,
             'UINT8': 1, 'FP8': 1, 'INT4': 1, 'FP4': 1, 'E8M0': 1}


def _enum(qualname: str) -> Any:
    """Build the real enum ``qualname`` of this version from its manifest (None if absent)."""
    entry = _API.enums.get(qualname)
    if entry is None:
        return None
    short = qualname.rpartition('.')[2]
    namespace: Dict[str, Any] = {'__slots__': (), '__qualname__': qualname,
                                 '__module__': 'tensorrt'}
    if 'itemsize' in entry.get('extra', {}):
        namespace['itemsize'] = property(lambda self: _ITEMSIZE.get(self.name, 1))
    cls = type(short, (_EnumValue,), namespace)
    members = {}
    for name, value in entry['members'].items():
        members[name] = cls(value)
        setattr(cls, name, members[name])
    cls.__members__ = members
    return cls


def _member(enum_cls: Any, name: str) -> Any:
    """Return ``enum_cls.name`` or None where this version lacks it."""
    return getattr(enum_cls, name, None) if enum_cls is not None else None


DataType = _enum('DataType')
BuilderFlag = _enum('BuilderFlag')
NetworkDefinitionCreationFlag = _enum('NetworkDefinitionCreationFlag')
MemoryPoolType = _enum('MemoryPoolType')
DeviceType = _enum('DeviceType')
ProfilingVerbosity = _enum('ProfilingVerbosity')
TensorIOMode = _enum('TensorIOMode')
LayerInformationFormat = _enum('LayerInformationFormat')
CalibrationAlgoType = _enum('CalibrationAlgoType')
LayerType = _enum('LayerType')
ErrorCode = _enum('ErrorCode')
OnnxParserFlag = _enum('OnnxParserFlag')
_Severity = _enum('ILogger.Severity')

_DTYPE_ALIASES = {'float32': 'FLOAT', 'float16': 'HALF', 'bfloat16': 'BF16', 'int8': 'INT8',
                  'int32': 'INT32', 'int64': 'INT64', 'bool': 'BOOL', 'uint8': 'UINT8',
                  'fp8': 'FP8', 'int4': 'INT4', 'fp4': 'FP4', 'e8m0': 'E8M0'}
for _alias, _name in _DTYPE_ALIASES.items():
    if _alias in _API.data['module'] and hasattr(DataType, _name):
        globals()[_alias] = getattr(DataType, _name)

_NP = {'FLOAT': _np.float32, 'HALF': _np.float16, 'INT8': _np.int8, 'INT32': _np.int32,
       'BOOL': _np.bool_, 'UINT8': _np.uint8, 'INT64': _np.int64}


def nptype(trt_type: Any) -> type:
    """Return the numpy type of a DataType (tensorrt.nptype)."""
    return _NP[trt_type.name]


def volume(iterable: Sequence[int]) -> int:
    """Return the product of the dimensions (tensorrt.volume)."""
    out = 1
    for dim in iterable:
        out *= int(dim)
    return out


# ----------------------------------------------------------------------------- logging

class ILogger:
    """Application-implemented logger: subclasses override ``log(severity, msg)``."""

    Severity = _Severity
    INTERNAL_ERROR, ERROR, WARNING = _Severity.INTERNAL_ERROR, _Severity.ERROR, _Severity.WARNING
    INFO, VERBOSE = _Severity.INFO, _Severity.VERBOSE

    def __init__(self) -> None:
        self._trt_base_init = True

    def log(self, severity: Any, msg: str) -> None:
        """Receive one message (pure virtual)."""
        raise RuntimeError('Tried to call pure virtual function "ILogger::log"')


class Logger(ILogger):
    """The built-in logger: prints messages at or above ``min_severity``."""

    def __init__(self, min_severity: Any = _Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity: Any, msg: str) -> None:
        """Print the message if it is severe enough."""
        if severity <= self.min_severity:
            _sys.stderr.write(f'[TRT] {msg}\n')


def _log(logger: Any, severity: Any, msg: str) -> None:
    _record('ILogger.log', severity.name, msg)
    if logger is not None:
        _callback(logger, 'log', None, severity, msg)


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
        _deprecated_implicit('set_dynamic_range')
        _record('ITensor.set_dynamic_range', self.name, float(min), float(max))
        if not (_np.isfinite(min) and _np.isfinite(max)) or min > max:
            return False
        self._range = (float(min), float(max))
        return True

    @property
    def dynamic_range(self) -> Optional[Tuple[float, float]]:
        """The tensor's dynamic range, or None."""
        _deprecated_implicit('dynamic_range')
        return self._range

    def reset_dynamic_range(self) -> None:
        """Forget the dynamic range."""
        _deprecated_implicit('reset_dynamic_range')
        self._range = None


class ILayer:
    """A network layer (one per ONNX node)."""

    def __init__(self, name: str, layer_type: LayerType, op_type: str,
                 inputs: List[ITensor], outputs: List[ITensor], attrs: Dict[str, Any]) -> None:
        self.name = name
        self.type = layer_type
        self._op_type = op_type
        self._inputs = inputs
        self._outputs = outputs
        self._attrs = attrs
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
        _deprecated_weak('ILayer.precision')
        network = _NETWORK_OF.get(id(self))
        if network is not None and network._strongly_typed:
            _log(network._logger, _Severity.ERROR, f'Error Code 3: API Usage Error (Parameter '
                 f'check failed, condition: !mNetwork->usingStronglyTyped(). setPrecision '
                 f'cannot be called on layer {self.name} of a strongly typed network.)')
            return
        _record('ILayer.precision', self.name, value.name)
        self._precision = value

    @property
    def precision_is_set(self) -> bool:
        """Whether a precision was requested."""
        _deprecated_weak('ILayer.precision_is_set')
        return self._precision is not None

    def reset_precision(self) -> None:
        """Forget the requested precision."""
        _deprecated_weak('ILayer.reset_precision')
        self._precision = None

    def set_output_type(self, index: int, dtype: DataType) -> None:
        """Request output ``index``'s type."""
        _deprecated_weak('ILayer.set_output_type')
        if not 0 <= index < len(self._outputs):
            raise IndexError(index)
        _record('ILayer.set_output_type', self.name, index, dtype.name)
        self._output_types[index] = dtype

    def get_output_type(self, index: int) -> DataType:
        """Return the requested output type (FLOAT when unset)."""
        return self._output_types.get(index, DataType.FLOAT)

    def output_type_is_set(self, index: int) -> bool:
        """Whether output ``index``'s type was requested."""
        _deprecated_weak('ILayer.output_type_is_set')
        return index in self._output_types


_NETWORK_OF: Dict[int, 'INetworkDefinition'] = {}


class INetworkDefinition:
    """A network definition (filled by OnnxParser)."""

    def __init__(self, flags: int, logger: Any = None) -> None:
        self._flags = int(flags)
        typed = _member(NetworkDefinitionCreationFlag, 'STRONGLY_TYPED')
        self._strongly_typed = _strongly_typed_only() or _bool(
            typed is not None and flags & (1 << int(typed)))
        self._logger = logger
        self._layers: List[ILayer] = []
        self._inputs: List[ITensor] = []
        self._outputs: List[ITensor] = []
        self._onnx_bytes = b''
        self.name = ''

    @property
    def flags(self) -> int:
        """Return the creation bit mask (NetworkDefinitionCreationFlag bits)."""
        return self._flags

    def get_flag(self, network_definition_creation_flag: Any) -> bool:
        """Whether a creation flag is set."""
        return _bool(self._flags & (1 << int(network_definition_creation_flag)))

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
    'Expand': LayerType.SLICE,   # onnx-tensorrt imports Expand as a broadcast slice
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
_ONNX_TO_TRT = {onnx_type: getattr(DataType, name) for onnx_type, name in (
    (1, 'FLOAT'), (10, 'HALF'), (3, 'INT8'), (2, 'UINT8'), (6, 'INT32'), (7, 'INT64'),
    (9, 'BOOL')) if hasattr(DataType, name)}


class ParserError:
    """One ONNX parser error."""

    def __init__(self, desc: str, node: int = -1, node_name: str = '',
                 node_operator: str = '') -> None:
        self._desc, self._node = desc, node
        self._node_name, self._node_operator = node_name, node_operator

    def desc(self) -> str:
        """Error description."""
        return self._desc

    def code(self) -> Any:
        """Return the ErrorCode (always INVALID_NODE here)."""
        return ErrorCode.INVALID_NODE

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
        self._network = network
        self._logger = logger
        self._errors: List[ParserError] = []
        self._flags: set = set()

    def set_flag(self, flag: Any) -> None:
        """Set a parser flag (recorded; the double's parse does not depend on it)."""
        _record('OnnxParser.set_flag', flag.name)
        self._flags.add(flag)

    def clear_flag(self, flag: Any) -> None:
        """Clear a parser flag."""
        _record('OnnxParser.clear_flag', flag.name)
        self._flags.discard(flag)

    def get_flag(self, flag: Any) -> bool:
        """Whether a parser flag is set."""
        return flag in self._flags

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
            data = _Path(model).read_bytes()
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
        _log(self._logger, _Severity.ERROR, str(error))

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
        network = self._network
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
        network._onnx_bytes = data
        network.name = graph.name
        return True

    @staticmethod
    def _check_qdq(node: Any, inits: Dict[str, Any], numpy_helper: Any) -> str:
        if len(node.input) > 2 and node.input[2]:
            zero = inits.get(node.input[2])
            if zero is None:
                return 'zero point must be a constant initializer'
            values = numpy_helper.to_array(zero)
            if values.dtype != _np.int8:
                return (f'{node.op_type}: quantized type {values.dtype} is not supported '
                        '(TensorRT quantizes to signed INT8)')
            if _np.any(values != 0):
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

    _algorithm_name = 'ENTROPY_CALIBRATION_2'

    def __init__(self) -> None:
        self._trt_base_init = True

    def get_algorithm(self) -> Any:
        """Which algorithm TensorRT runs with this calibrator."""
        return getattr(CalibrationAlgoType, self._algorithm_name)

    def get_batch_size(self) -> int:
        """Calibration batch size (pure virtual; deprecated from Python in TensorRT 10)."""
        _deprecated_since((10, 0, 0), 'get_batch_size',
                          'Implicit batch dimensions support has been removed')
        raise RuntimeError('Tried to call pure virtual function "IInt8Calibrator::getBatchSize"')

    def get_batch(self, names: List[str]) -> Optional[List[int]]:
        """Return one device pointer per input name, or None when the data is exhausted."""
        raise RuntimeError('Tried to call pure virtual function "get_batch"')

    def read_calibration_cache(self) -> Any:
        """Return a previously written cache (a buffer), or None."""
        raise RuntimeError('Tried to call pure virtual function "read_calibration_cache"')

    def write_calibration_cache(self, cache: Any) -> None:
        """Store the cache (a memoryview valid during the call only)."""
        raise RuntimeError('Tried to call pure virtual function "write_calibration_cache"')


class IInt8EntropyCalibrator2(IInt8Calibrator):
    """Entropy calibrator 2 (the one the DLA requires)."""

    _algorithm_name = 'ENTROPY_CALIBRATION_2'


class IInt8EntropyCalibrator(IInt8Calibrator):
    """Legacy entropy calibrator."""

    _algorithm_name = 'ENTROPY_CALIBRATION'


class IInt8MinMaxCalibrator(IInt8Calibrator):
    """MinMax calibrator: the range is the largest absolute value seen."""

    _algorithm_name = 'MINMAX_CALIBRATION'


class IInt8LegacyCalibrator(IInt8Calibrator):
    """Legacy calibrator: quantile / regression cutoff chosen by the application."""

    _algorithm_name = 'LEGACY_CALIBRATION'

    def get_quantile(self) -> float:
        """Quantile (0-1) of |x| that sets the range."""
        raise RuntimeError('Tried to call pure virtual function "get_quantile"')

    def get_regression_cutoff(self) -> float:
        """Regression cutoff (0-1)."""
        raise RuntimeError('Tried to call pure virtual function "get_regression_cutoff"')

    def read_histogram_cache(self, length: int) -> Any:
        """Return a previously written histogram cache, or None."""
        raise RuntimeError('Tried to call pure virtual function "read_histogram_cache"')

    def write_histogram_cache(self, data: Any, length: int) -> None:
        """Store the histogram cache."""
        raise RuntimeError('Tried to call pure virtual function "write_histogram_cache"')


class IProfiler:
    """Application-implemented per-layer profiler: ``report_layer_time(layer_name, ms)``."""

    def __init__(self) -> None:
        self._trt_base_init = True

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        """Receive one layer's time."""
        raise RuntimeError('Tried to call pure virtual function "IProfiler::reportLayerTime"')


class IProgressMonitor:
    """Application-implemented build progress reporting."""

    def __init__(self) -> None:
        self._trt_base_init = True

    def phase_start(self, phase_name: str, parent_phase: Optional[str], num_steps: int) -> None:
        """Receive the start of a phase."""
        raise RuntimeError('Tried to call pure virtual function "phase_start"')

    def step_complete(self, phase_name: str, step: int) -> bool:
        """Receive the end of a step; return False to cancel the build."""
        raise RuntimeError('Tried to call pure virtual function "step_complete"')

    def phase_finish(self, phase_name: str) -> None:
        """Receive the end of a phase."""
        raise RuntimeError('Tried to call pure virtual function "phase_finish"')


class IHostMemory:
    """Memory owned by TensorRT: the buffer protocol, ``nbytes`` and ``dtype`` only."""

    __slots__ = ()

    @property
    def nbytes(self) -> int:
        """Size in bytes."""
        return _ctypes.sizeof(self)

    @property
    def dtype(self) -> Any:
        """Element type (bytes)."""
        return DataType.UINT8

    def __len__(self) -> int:
        raise TypeError("object of type 'tensorrt.tensorrt.IHostMemory' has no len()")

    def __getitem__(self, key: Any) -> Any:
        raise TypeError("'tensorrt.tensorrt.IHostMemory' object is not subscriptable")

    def __iter__(self) -> Any:
        raise TypeError("'tensorrt.tensorrt.IHostMemory' object is not iterable")


def _host_memory(data: bytes) -> IHostMemory:
    """Wrap ``data`` in an IHostMemory (ctypes storage gives the buffer protocol)."""
    cls = type('IHostMemory', (IHostMemory, _ctypes.c_ubyte * len(data)), {'__slots__': ()})
    return cls.from_buffer_copy(data)


class ITimingCache:
    """A timing cache: layer key -> 'tactic', tagged with the TensorRT version and GPU."""

    _MAGIC = 'trt-double-timing-cache'

    def __init__(self, entries: Optional[Dict[str, str]] = None, version: str = '',
                 gpu: str = '') -> None:
        self._entries = dict(entries or {})
        self._version = version or __version__
        self._gpu = gpu or _hw().gpu_name
        self._hits = 0
        self._misses = 0

    def serialize(self) -> IHostMemory:
        """Return the cache as bytes."""
        return _host_memory(_json.dumps({'magic': self._MAGIC, 'version': self._version,
                                         'gpu': self._gpu, 'entries': self._entries}).encode())

    def combine(self, input_cache: 'ITimingCache', ignore_mismatch: bool) -> bool:
        """Merge another cache into this one."""
        if not ignore_mismatch and (input_cache._version, input_cache._gpu) != (self._version,
                                                                                self._gpu):
            return False
        self._entries.update(input_cache._entries)
        return True

    def reset(self) -> bool:
        """Empty the cache."""
        self._entries.clear()
        return True


# ----------------------------------------------------------------------------- builder

_INT8_LAYERS = {LayerType.CONVOLUTION, LayerType.DECONVOLUTION, LayerType.ACTIVATION,
                LayerType.POOLING, LayerType.ELEMENTWISE, LayerType.CONCATENATION,
                LayerType.SCALE, LayerType.MATRIX_MULTIPLY, LayerType.RESIZE}
_DLA_ACTIVATIONS = {'Relu', 'Clip', 'Sigmoid', 'Tanh', 'LeakyRelu'}
_ALGO_NAMES = {'ENTROPY_CALIBRATION_2': 'EntropyCalibration2',
               'ENTROPY_CALIBRATION': 'EntropyCalibration',
               'MINMAX_CALIBRATION': 'MinMaxCalibration',
               'LEGACY_CALIBRATION': 'LegacyCalibration'}


def _dla_supported(layer: ILayer) -> bool:
    """Apply the double's DLA rules (a simplification of the DLA support matrix)."""
    shape_of = [t.shape for t in layer._inputs] + [t.shape for t in layer._outputs]
    rank4 = all(len(s) == 4 for s in shape_of if s)
    if layer.type in (LayerType.CONVOLUTION, LayerType.DECONVOLUTION, LayerType.SCALE):
        return rank4
    if layer.type == LayerType.ACTIVATION:
        return layer._op_type in _DLA_ACTIVATIONS and rank4
    if layer.type == LayerType.POOLING:
        window = layer._attrs.get('kernel_shape', [1, 1])
        return max(window) <= 8 and rank4
    if layer.type == LayerType.ELEMENTWISE:
        return layer._op_type in ('Add', 'Sub', 'Mul', 'Max', 'Min') and rank4
    if layer.type == LayerType.CONCATENATION:
        return int(layer._attrs.get('axis', 1)) == 1 and rank4
    if layer.type in (LayerType.RESIZE, LayerType.SHUFFLE, LayerType.SOFTMAX):
        return rank4
    return False


class IOptimizationProfile:
    """tensorrt.IOptimizationProfile: min / opt / max shapes of the dynamic inputs."""

    def __init__(self) -> None:
        self._shapes: Dict[str, Tuple[Tuple[int, ...], ...]] = {}
        self._valid = True

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002
        """Set the shapes of ``input``; an inconsistent set makes the profile invalid."""
        shapes = tuple(tuple(int(d) for d in dims) for dims in (min, opt, max))
        _record('IOptimizationProfile.set_shape', input, *shapes)
        low, mid, high = shapes
        if not (len(low) == len(mid) == len(high)) or any(
                not 0 <= a <= b <= c for a, b, c in zip(low, mid, high)):
            self._valid = False   # the real API logs nothing here; the profile is invalid
            return
        self._shapes[input] = shapes

    def get_shape(self, input: str) -> List[Any]:  # noqa: A002
        """Return [min, opt, max] of ``input`` (empty when not set)."""
        shapes = self._shapes.get(input)
        return [Dims(dims) for dims in shapes] if shapes else []

    def __bool__(self) -> _bool:
        return self._valid

    __nonzero__ = __bool__


def _profile_errors(profile: IOptimizationProfile, inputs: Sequence['ITensor']) -> List[str]:
    """List what is wrong with ``profile`` for the network inputs (empty: usable)."""
    if not profile:
        return ['the optimization profile is invalid (set_shape with min > opt > max?)']
    errors = []
    for tensor in inputs:
        shapes = profile._shapes.get(tensor.name)
        if shapes is None:
            if any(d < 0 for d in tensor.shape):
                errors.append(f'no shapes set for dynamic input {tensor.name}')
            continue
        for dims in shapes:
            if len(dims) != len(tensor.shape) or any(
                    want >= 0 and got != want for got, want in zip(dims, tensor.shape)):
                errors.append(f'profile shape {dims} of {tensor.name} does not match the '
                              f'network input {tuple(tensor.shape)}')
    return errors


class IBuilderConfig:
    """Build options."""

    def __init__(self) -> None:
        self._flags = {BuilderFlag.TF32}   # TensorRT allows TF32 for FP32 layers by default
        self._pools: Dict[Any, int] = {}
        self._default_device = DeviceType.GPU
        self._dla_core = -1
        self._calibrator: Optional[IInt8Calibrator] = None
        self._device_of: Dict[int, Any] = {}
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self._timing_cache: Optional[ITimingCache] = None
        self._progress: Optional[IProgressMonitor] = None
        self.avg_timing_iterations = 1
        self.builder_optimization_level = 3
        self._profiles: List[Any] = []
        self._calibration_profile: Optional[IOptimizationProfile] = None

    def set_flag(self, flag: Any) -> None:
        """Enable a builder flag."""
        _record('IBuilderConfig.set_flag', flag.name)
        self._flags.add(flag)

    def clear_flag(self, flag: Any) -> None:
        """Disable a builder flag."""
        _record('IBuilderConfig.clear_flag', flag.name)
        self._flags.discard(flag)

    def get_flag(self, flag: Any) -> bool:
        """Whether a flag is set."""
        return flag in self._flags

    @property
    def flags(self) -> int:
        """Flags as a bit mask."""
        return sum(1 << int(f) for f in self._flags)

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        """Limit a memory pool."""
        _record('IBuilderConfig.set_memory_pool_limit', pool.name, int(pool_size))
        self._pools[pool] = int(pool_size)

    def get_memory_pool_limit(self, pool: Any) -> int:
        """Return a pool's limit (defaults to a large value)."""
        return self._pools.get(pool, 1 << 40)

    @property
    def default_device_type(self) -> Any:
        """Device every layer runs on unless set per layer."""
        return self._default_device

    @default_device_type.setter
    def default_device_type(self, value: Any) -> None:
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
        _deprecated_implicit('int8_calibrator')
        return self._calibrator

    @int8_calibrator.setter
    def int8_calibrator(self, value: Optional[IInt8Calibrator]) -> None:
        _deprecated_implicit('int8_calibrator')
        if value is not None:
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
            _require_base_init(value, 'IProgressMonitor')
        _record('IBuilderConfig.progress_monitor', value is not None)
        self._progress = value

    def set_device_type(self, layer: ILayer, device_type: Any) -> None:
        """Run ``layer`` on ``device_type``."""
        _record('IBuilderConfig.set_device_type', layer.name, device_type.name)
        self._device_of[id(layer)] = device_type

    def get_device_type(self, layer: ILayer) -> Any:
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

    def create_timing_cache(self, serialized_timing_cache: Any) -> Optional[ITimingCache]:
        """Create a timing cache from a buffer (empty: a new cache)."""
        data = bytes(memoryview(serialized_timing_cache))
        _record('IBuilderConfig.create_timing_cache', len(data))
        if not data:
            return ITimingCache()
        try:
            blob = _json.loads(data.decode())
            if blob.get('magic') != ITimingCache._MAGIC:
                raise ValueError('bad magic')
        except (ValueError, UnicodeDecodeError):
            return None
        return ITimingCache(blob['entries'], blob['version'], blob['gpu'])

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        """Use ``cache``; False when it was made by another version or GPU."""
        _record('IBuilderConfig.set_timing_cache', _bool(ignore_mismatch))
        if not ignore_mismatch and (cache._version, cache._gpu) != (__version__,
                                                                    _hw().gpu_name):
            return False
        self._timing_cache = cache
        return True

    def get_timing_cache(self) -> Optional[ITimingCache]:
        """Return the timing cache in use."""
        return self._timing_cache

    def add_optimization_profile(self, profile: Any) -> int:
        """Add an optimization profile (dynamic shapes); -1 for an invalid one."""
        _record('IBuilderConfig.add_optimization_profile', dict(profile._shapes))
        if not profile:
            return -1
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def set_calibration_profile(self, profile: Any) -> _bool:
        """Use ``profile``'s opt shapes for implicit INT8 calibration (8.6-10.x)."""
        _deprecated_implicit('set_calibration_profile')   # binding source, release/10.1
        _record('IBuilderConfig.set_calibration_profile', dict(profile._shapes))
        if not profile:
            return False
        self._calibration_profile = profile
        return True

    def get_calibration_profile(self) -> Any:
        """Return the calibration profile (None when not set)."""
        _deprecated_implicit('get_calibration_profile')
        return self._calibration_profile


class Builder:
    """tensorrt.Builder."""

    def __init__(self, logger: ILogger) -> None:
        _require_base_init(logger, 'ILogger')
        _record('Builder', type(logger).__name__)
        self._logger = logger
        self.max_threads = 0

    @property
    def logger(self) -> ILogger:
        """The logger given at construction."""
        return self._logger

    @property
    def platform_has_fast_fp16(self) -> bool:
        """Whether FP16 is fast here (no Python warning in any version; gone in 11)."""
        return _hw().fast_fp16

    @property
    def platform_has_fast_int8(self) -> bool:
        """Whether INT8 is fast here (no Python warning in any version; gone in 11)."""
        return _hw().fast_int8

    @property
    def platform_has_tf32(self) -> bool:
        """Whether TF32 is available."""
        return _hw().compute_capability >= (8, 0)

    @property
    def num_DLA_cores(self) -> int:  # noqa: N802 - TensorRT's name
        """Number of DLA cores."""
        return _hw().num_dla_cores

    @property
    def max_DLA_batch_size(self) -> int:  # noqa: N802 - TensorRT's name
        """Largest DLA batch."""
        return 4096 if _hw().num_dla_cores else 1

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        """Create an empty network."""
        _record('Builder.create_network', int(flags))
        explicit = _member(NetworkDefinitionCreationFlag, 'EXPLICIT_BATCH')
        if explicit is not None and flags & (1 << int(explicit)) and \
                _version_tuple() >= (10, 0, 0):
            _log(self._logger, _Severity.WARNING, 'NetworkDefinitionCreationFlag::'
                 'kEXPLICIT_BATCH is deprecated and has no effect (networks are always '
                 'explicit batch).')
        return INetworkDefinition(flags, self._logger)

    def create_builder_config(self) -> IBuilderConfig:
        """Create a builder config."""
        _record('Builder.create_builder_config')
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        """Create an optimization profile."""
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition,
                                 config: IBuilderConfig) -> Optional[IHostMemory]:
        """Build and serialize an engine; None (errors logged) on failure."""
        _record('Builder.build_serialized_network')
        try:
            return _host_memory(_Build(self._logger, network, config).run())
        except _BuildError as exc:
            _log(self._logger, _Severity.ERROR, str(exc))
            return None


class _BuildError(Exception):
    pass


_PLAN_MAGIC = b'TRTDBLPLAN1\0'


class _Build:
    """One build: checks, calibration, precision/device decisions, the plan."""

    def __init__(self, logger: ILogger, network: INetworkDefinition,
                 config: IBuilderConfig) -> None:
        self.logger, self.network, self.config = logger, network, config
        self.flags = config._flags

    def has(self, name: str) -> bool:
        """Whether builder flag ``name`` is set (False where this version lacks it)."""
        flag = _member(BuilderFlag, name)
        return flag is not None and flag in self.flags

    def warn(self, msg: str) -> None:
        _log(self.logger, _Severity.WARNING, msg)

    def run(self) -> bytes:
        net, cfg, flags = self.network, self.config, self.flags
        if _hw().build_delay_s:
            _time.sleep(_hw().build_delay_s)
        if not net.num_inputs or not net.num_outputs or not net._onnx_bytes:
            raise _BuildError('Network must have at least one input and one output (was the '
                              'ONNX model parsed?)')
        for tensor in net._inputs:
            if any(d < 0 for d in tensor.shape) and not cfg._profiles:
                raise _BuildError(f'Network has dynamic or shape inputs, but no optimization '
                                  f'profile has been defined (input {tensor.name} '
                                  f'{tuple(tensor.shape)}).')
        for index, profile in enumerate(cfg._profiles):
            errors = _profile_errors(profile, net._inputs)
            if errors:
                raise _BuildError(f'Optimization profile {index} is invalid: '
                                  + '; '.join(errors) + '.')
        qdq = any(layer.type in (LayerType.QUANTIZE, LayerType.DEQUANTIZE)
                  for layer in net._layers)
        int8 = self.has('INT8')
        fp16 = self.has('FP16')
        if net._strongly_typed and (int8 or fp16):
            raise _BuildError('BuilderFlag::kFP16 / kINT8 cannot be used with a strongly typed '
                              'network.')
        if qdq and not int8 and not net._strongly_typed:
            raise _BuildError('Network contains Q/DQ layers (explicit quantization) but '
                              'BuilderFlag::kINT8 is not set.')
        devices = self.assign_devices(int8, fp16)
        scales = self.int8_scales(qdq, int8, devices)
        precisions = self.assign_precisions(qdq, int8, fp16, scales, devices)
        self.report_progress()
        self.use_timing_cache(precisions)
        layers = [{'name': layer.name, 'type': layer.type.name, 'device': devices[i].name,
                   'precision': precisions[i].name,
                   'inputs': [[t.name, list(t.shape)] for t in layer._inputs],
                   'outputs': [[t.name, list(t.shape)] for t in layer._outputs]}
                  for i, layer in enumerate(net._layers) if layer.type != LayerType.CONSTANT]
        header = {
            'version': __version__, 'gpu': _hw().gpu_name,
            'compute_capability': list(_hw().compute_capability),
            'dla_core': cfg.DLA_core if any(d == DeviceType.DLA for d in devices) else -1,
            'io': [{'name': t.name, 'mode': 'INPUT', 'shape': list(t.shape),
                    'dtype': t.dtype.name} for t in net._inputs]
            + [{'name': t.name, 'mode': 'OUTPUT', 'shape': list(t.shape),
                'dtype': t.dtype.name} for t in net._outputs],
            'layers': layers, 'flags': sorted(f.name for f in flags),
            'quantization': 'explicit' if qdq else ('implicit' if int8 else 'none'),
            'scales': scales, 'profiling_verbosity': cfg.profiling_verbosity.name,
            'workspace': cfg.get_memory_pool_limit(MemoryPoolType.WORKSPACE),
            'profiles': [{name: [list(d) for d in shapes]
                          for name, shapes in profile._shapes.items()}
                         for profile in cfg._profiles],
        }
        head = _json.dumps(header).encode()
        return (_PLAN_MAGIC + _struct.pack('<QQ', len(head), len(net._onnx_bytes)) + head
                + net._onnx_bytes)

    def assign_devices(self, int8: bool, fp16: bool) -> List[DeviceType]:
        net, cfg = self.network, self.config
        wanted = [cfg.get_device_type(layer) for layer in net._layers]
        if not any(d == DeviceType.DLA for d in wanted):
            return wanted
        if _hw().num_dla_cores == 0:
            raise _BuildError('DLA is not available on this platform (0 DLA cores); cannot '
                              'build for DeviceType::kDLA.')
        if not 0 <= cfg.DLA_core < _hw().num_dla_cores:
            raise _BuildError(f'DLA core {cfg.DLA_core} is out of range: this platform has '
                              f'{_hw().num_dla_cores} DLA core(s).')
        if not (int8 or fp16 or net._strongly_typed):
            raise _BuildError('DLA supports only FP16 and INT8 precision: set '
                              'BuilderFlag::kFP16 or BuilderFlag::kINT8.')
        devices = []
        for layer, device in zip(net._layers, wanted):
            if device == DeviceType.DLA and not _dla_supported(layer):
                if layer.type == LayerType.CONSTANT:
                    devices.append(DeviceType.GPU)
                    continue
                if not self.has('GPU_FALLBACK'):
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
        calibrator = cfg._calibrator
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
                    algorithm.name != 'ENTROPY_CALIBRATION_2':
                raise _BuildError(f'DLA requires IInt8EntropyCalibrator2; got '
                                  f'{_ALGO_NAMES[algorithm.name]}.')
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
        obey = self.has('OBEY_PRECISION_CONSTRAINTS')
        prefer = self.has('PREFER_PRECISION_CONSTRAINTS')
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
            elif self.network._strongly_typed:
                first = producers.get(layer._inputs[0].name) if layer._inputs else None
                tensors = list(layer._inputs) + list(layer._outputs)
                if first is not None and first.type == LayerType.DEQUANTIZE and \
                        layer.type in _INT8_LAYERS:
                    precision = DataType.INT8
                elif any(t.dtype == DataType.HALF for t in tensors):
                    precision = DataType.HALF
                else:
                    precision = DataType.FLOAT
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
        monitor = self.config._progress
        if monitor is None:
            return
        steps = max(1, self.network.num_layers)
        _callback(monitor, 'phase_start', None, 'Building engine', None, steps)
        try:
            for step in range(steps):
                if not _callback(monitor, 'step_complete', False, 'Building engine', step):
                    raise _BuildError('Build was cancelled by the progress monitor.')
        finally:
            _callback(monitor, 'phase_finish', None, 'Building engine')

    def use_timing_cache(self, precisions: List[DataType]) -> None:
        cache = self.config.get_timing_cache()
        if cache is None or self.has('DISABLE_TIMING_CACHE'):
            return
        for layer, precision in zip(self.network._layers, precisions):
            shapes = [tuple(t.shape) for t in layer._inputs]
            key = f'{layer._op_type}:{shapes}:{precision.name}'
            if key in cache._entries:
                cache._hits += 1
            else:
                cache._misses += 1
                cache._entries[key] = 'tactic-0'


class _Calibration:
    """Implicit INT8 calibration: batches from the calibrator, statistics via ONNX Runtime."""

    BINS = 2048

    def __init__(self, build: _Build, calibrator: IInt8Calibrator) -> None:
        self.build, self.calibrator = build, calibrator
        self.algorithm = _callback(calibrator, 'get_algorithm',
                                   CalibrationAlgoType.LEGACY_CALIBRATION)

    def header(self) -> str:
        major, minor, patch = _version_tuple()
        return f'TRT-{major * 1000 + minor * 100 + patch}-{_ALGO_NAMES[self.algorithm.name]}'

    def run(self) -> Dict[str, float]:
        _require_base_init(self.calibrator, 'IInt8Calibrator')
        cached = _callback(self.calibrator, 'read_calibration_cache', None)
        if cached is not None:
            try:
                cached = bytes(memoryview(cached))
            except TypeError as exc:   # the real trampoline casts to py::buffer
                _CONTROL.callback_errors.append(('read_calibration_cache', exc))
                _sys.stderr.write(f'[ERROR] Exception caught in read_calibration_cache(): '
                                  f'{exc}\n')
                cached = None
        _record('IInt8Calibrator.read_calibration_cache', _bool(cached))
        if cached:
            scales = self.parse_cache(cached)
            if scales is not None:
                return scales
        net = self.build.network
        batch = _callback(self.calibrator, 'get_batch_size', -1)
        _record('IInt8Calibrator.get_batch_size', batch)
        shapes = self.input_shapes()
        dims = shapes[net._inputs[0].name]
        if int(batch) != int(dims[0]):
            raise _BuildError(f'Calibrator batch size {batch} does not match the network '
                              f'input batch dimension {dims[0]} (explicit batch).')
        names = [t.name for t in net._inputs]
        session, outputs = self.session()
        stats: Dict[str, List[_np.ndarray]] = {}
        count = 0
        while True:
            pointers = _callback(self.calibrator, 'get_batch', None, names)
            if pointers is not None and not (isinstance(pointers, (list, tuple)) and all(
                    isinstance(p, int) for p in pointers)):
                # the real trampoline casts to std::vector<size_t>: a cast error ends the data
                _CONTROL.callback_errors.append(('get_batch', TypeError(repr(pointers))))
                _sys.stderr.write('[ERROR] Exception caught in get_batch(): Unable to cast '
                                  'Python instance to C++ type\n')
                pointers = None
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
                nbytes = volume(shapes[tensor.name]) * tensor.dtype.itemsize
                try:
                    data = _CONTROL.memory.read(pointer, nbytes)
                except (ValueError, MemoryError) as exc:
                    raise _BuildError(f'calibration batch for {tensor.name}: cannot read '
                                      f'{nbytes} bytes at {pointer:#x} ({exc}).') from exc
                feeds[tensor.name] = _np.frombuffer(data, nptype(tensor.dtype)).reshape(
                    shapes[tensor.name]).copy()
            values = session.run(outputs, feeds)
            for name, value in zip(outputs, values):
                stats.setdefault(name, []).append(_np.abs(_np.asarray(value, _np.float32)).ravel())
            for name, value in feeds.items():
                stats.setdefault(name, []).append(_np.abs(value.astype(_np.float32)).ravel())
            count += 1
        _record('calibration.batches', count)
        if count == 0:
            raise _BuildError('Calibration failure occurred with no scaling factors detected: '
                              'the calibrator returned no batch.')
        scales = {name: self.amax(_np.concatenate(chunks)) / 127.0
                  for name, chunks in stats.items()}
        scales = {name: (s if s > 0 else 1.0 / 127.0) for name, s in scales.items()}
        cache = (self.header() + '\n' + ''.join(
            f'{name}: {_struct.pack(">f", s).hex()}\n' for name, s in sorted(scales.items())))
        view = memoryview(cache.encode())   # TensorRT's memory, valid during the call only
        _callback(self.calibrator, 'write_calibration_cache', None, view)
        try:
            view.release()
        except BufferError as exc:
            raise _BuildError('write_calibration_cache kept a view of TensorRT\'s cache memory '
                              f'after returning ({exc}); copy it (bytes(cache)) instead') from exc
        _record('IInt8Calibrator.write_calibration_cache', len(cache))
        return scales

    def input_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Calibration input shapes: static ones, dynamic ones at the calibration profile's opt."""
        net, cfg = self.build.network, self.build.config
        profile = cfg._calibration_profile
        shapes = {}
        for tensor in net._inputs:
            if all(d >= 0 for d in tensor.shape):
                shapes[tensor.name] = tuple(tensor.shape)
            elif profile is None or tensor.name not in profile._shapes:
                raise _BuildError(f'Calibration profile must be set (setCalibrationProfile) to '
                                  f'calibrate a network with dynamic input {tensor.name} '
                                  f'{tuple(tensor.shape)}.')
            else:
                shapes[tensor.name] = profile._shapes[tensor.name][1]
        return shapes

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
            scales[name] = _struct.unpack('>f', bytes.fromhex(value))[0]
        return scales

    def amax(self, values: _np.ndarray) -> float:
        top = float(values.max()) if values.size else 0.0
        if top == 0.0 or self.algorithm.name == 'MINMAX_CALIBRATION':
            return top
        if self.algorithm.name == 'LEGACY_CALIBRATION':
            quantile = float(self.calibrator.get_quantile())
            self.calibrator.get_regression_cutoff()
            _record('IInt8LegacyCalibrator.get_quantile', quantile)
            return float(_np.quantile(values, quantile))
        hist, edges = _np.histogram(values, bins=self.BINS, range=(0.0, top))
        return _entropy_threshold(hist.astype(_np.float64), float(edges[1] - edges[0]))

    def session(self) -> Tuple[Any, List[str]]:
        import onnx
        import onnxruntime as ort

        model = onnx.load_model_from_string(self.build.network._onnx_bytes)
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


def _entropy_threshold(hist: _np.ndarray, bin_width: float, target: int = 128) -> float:
    """TensorRT-style entropy calibration: the clip threshold minimising KL(P || Q)."""
    best_kl, best_i = _np.inf, hist.size
    for i in range(target, hist.size + 1, 16):
        ref = hist[:i].copy()
        ref[-1] += hist[i:].sum()
        if ref.sum() == 0:
            continue
        candidate = hist[:i]
        starts = (_np.arange(target) * i) // target
        totals = _np.add.reduceat(candidate, starts)
        nonzero = _np.add.reduceat((candidate > 0).astype(_np.float64), starts)
        lengths = _np.diff(_np.append(starts, i))
        fill = _np.repeat(_np.divide(totals, nonzero, out=_np.zeros_like(totals),
                                     where=nonzero > 0), lengths)
        expanded = _np.where(candidate > 0, fill, 0.0)
        p = ref / ref.sum()
        q_sum = expanded.sum()
        if q_sum == 0:
            continue
        q = expanded / q_sum
        mask = p > 0
        kl = float(_np.sum(p[mask] * _np.log(p[mask] / _np.maximum(q[mask], 1e-12))))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return (best_i + 0.5) * bin_width


# ----------------------------------------------------------------------------- runtime

class Runtime:
    """tensorrt.Runtime."""

    def __init__(self, logger: ILogger) -> None:
        _require_base_init(logger, 'ILogger')
        _record('Runtime', type(logger).__name__)
        self._logger = logger
        self._dla_core = -1

    @property
    def logger(self) -> ILogger:
        """The logger given at construction."""
        return self._logger

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
        return _hw().num_dla_cores

    def deserialize_cuda_engine(self, serialized_engine: Any) -> Optional['ICudaEngine']:
        """Deserialize a plan; None (error logged) when it cannot be used here."""
        data = bytes(memoryview(serialized_engine))
        _record('Runtime.deserialize_cuda_engine', len(data))
        error = self._check(data)
        if error:
            _log(self._logger, _Severity.ERROR, error)
            return None
        head_len, onnx_len = _struct.unpack('<QQ', data[len(_PLAN_MAGIC):len(_PLAN_MAGIC) + 16])
        start = len(_PLAN_MAGIC) + 16
        header = _json.loads(data[start:start + head_len].decode())
        core = self._dla_core if self._dla_core >= 0 else header['dla_core']
        return ICudaEngine(header, data[start + head_len:], core, self._logger)

    def _check(self, data: bytes) -> str:
        if not data.startswith(_PLAN_MAGIC):
            return ('1: [stdArchiveReader.cpp::StdArchiveReader] Error Code 1: Serialization '
                    '(Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does '
                    'not match)')
        start = len(_PLAN_MAGIC) + 16
        if len(data) < start:
            return 'Error Code 1: Serialization (plan is truncated)'
        head_len, onnx_len = _struct.unpack('<QQ', data[len(_PLAN_MAGIC):start])
        if len(data) != start + head_len + onnx_len:
            return (f'Error Code 1: Serialization (Serialization assertion size mismatch: '
                    f'expected {start + head_len + onnx_len} bytes, got {len(data)})')
        try:
            header = _json.loads(data[start:start + head_len].decode())
            import onnx

            onnx.load_model_from_string(data[start + head_len:])
        except Exception as exc:  # json/onnx decoding errors of a corrupt plan
            return f'Error Code 1: Serialization (corrupt plan: {exc})'
        if header['version'] != __version__:
            return ('Error Code 6: API Usage Error (The engine plan file is not compatible '
                    f'with this version of TensorRT, expecting library version {__version__} '
                    f'got {header["version"]}, please rebuild.)')
        if tuple(header['compute_capability']) != tuple(_hw().compute_capability) or \
                header['gpu'] != _hw().gpu_name:
            return ('Error Code 6: API Usage Error (The engine plan file is generated on an '
                    f'incompatible device, expecting compute {_hw().compute_capability} got '
                    f'compute {tuple(header["compute_capability"])}, please rebuild.)')
        if header['dla_core'] >= 0:
            core = self._dla_core if self._dla_core >= 0 else header['dla_core']
            if not 0 <= core < _hw().num_dla_cores:
                return (f'Error Code 1: DLA core {core} is not available (this platform has '
                        f'{_hw().num_dla_cores} DLA core(s)).')
        return ''


#: Kernel families the inspector names for the double's GPU layers (real: CaskConvolution...).
_KERNEL_OF = {'CONVOLUTION': 'CaskConvolution', 'DECONVOLUTION': 'CaskDeconvolution',
              'ACTIVATION': 'PointWiseV2', 'ELEMENTWISE': 'PointWiseV2', 'UNARY': 'PointWiseV2',
              'POOLING': 'CaskPooling', 'CONCATENATION': 'NoOp', 'SHUFFLE': 'Shuffle',
              'RESIZE': 'Resize', 'SLICE': 'Slice', 'SCALE': 'Scale', 'SOFTMAX': 'SoftMax',
              'MATRIX_MULTIPLY': 'CaskGemmMatrixMultiply', 'QUANTIZE': 'Reformat',
              'DEQUANTIZE': 'Reformat', 'CAST': 'Cast', 'GATHER': 'Gather',
              'REDUCE': 'Reduce', 'IDENTITY': 'Reformat', 'SHAPE': 'Shape'}
_FORMAT_OF = {'FLOAT': 'Row major linear FP32', 'HALF': 'Channel major FP16 format where '
              'channel % 8 == 0', 'INT8': 'Channel major INT8 format where channel % 32 == 0'}


#: DataType names as the inspector spells them (weights "Type", 11.x tensor "Datatype").
_TYPE_TEXT = {'FLOAT': 'Float', 'HALF': 'Half', 'INT8': 'Int8', 'INT32': 'Int32',
              'INT64': 'Int64', 'BOOL': 'Bool', 'BF16': 'BFloat16'}
_WEIGHTED = ('CONVOLUTION', 'DECONVOLUTION', 'MATRIX_MULTIPLY')


def _engine_layers(header: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Return the engine's layers in TensorRT's DETAILED inspector shape (DLA runs merged).

    A layer reads its inputs in its compute type and writes its outputs in the type its
    consumer computes in (an INT8 convolution feeding an FP16 layer writes FP16; a network
    output is written in FP32), as real engines do. Weighted layers carry ``Weights`` with
    their compute type. Tensors have ``Format/Datatype`` before TensorRT 11 and ``Format`` +
    ``Datatype`` from 11 (NVIDIA's 11.x migration guide and trt-perf-analysis schema).
    """
    out: List[Dict[str, Any]] = []
    run: List[Dict[str, Any]] = []
    split = _version_tuple() >= (11, 0, 0)
    consumer: Dict[str, str] = {}
    for layer in header['layers']:
        for name, _ in layer['inputs']:
            consumer.setdefault(name, layer['precision'])

    def entry(name: str, dims: Any, precision: str) -> Dict[str, Any]:
        text = _FORMAT_OF.get(precision, 'Row major linear FP32')
        if split:
            return {'Name': name, 'Location': 'Device', 'Dimensions': dims, 'Format': text,
                    'Datatype': _TYPE_TEXT.get(precision, 'Float')}
        return {'Name': name, 'Location': 'Device', 'Dimensions': dims, 'Format/Datatype': text}

    def inputs(layer: Dict[str, Any]) -> List[Dict[str, Any]]:
        return [entry(name, dims, layer['precision']) for name, dims in layer['inputs']]

    def outputs(layer: Dict[str, Any]) -> List[Dict[str, Any]]:
        own = layer['precision'] if layer['precision'] != 'INT8' else 'FLOAT'
        return [entry(name, dims, consumer.get(name, own)) for name, dims in layer['outputs']]

    def flush() -> None:
        if run:
            name = run[0]['name'] if len(run) == 1 else f"{run[0]['name']}...{run[-1]['name']}"
            out.append({'Name': f'{{ForeignNode[{name}]}}', 'LayerType': 'DLA',
                        'Inputs': inputs(run[0]), 'Outputs': outputs(run[-1]),
                        'TacticName': 'DLA', 'StreamId': 0,
                        'Metadata': ''.join(f"[ONNX Layer: {layer['name']}]" for layer in run)})
            run.clear()

    for layer in header['layers']:
        if layer['device'] == 'DLA':
            run.append(layer)
            continue
        flush()
        kind = _KERNEL_OF.get(layer['type'], 'Myelin')
        precision = layer['precision']
        item = {'Name': layer['name'], 'LayerType': kind, 'Inputs': inputs(layer),
                'Outputs': outputs(layer),
                'ParameterType': layer['type'].title().replace('_', '')}
        if layer['type'] in _WEIGHTED:
            item['Weights'] = {'Type': _TYPE_TEXT.get(precision, 'Float')}
        item.update({'TacticName': f"double_{kind.lower()}_{precision.lower()}",
                     'TacticValue': '0x0000000000000000', 'StreamId': 0,
                     'Metadata': f"[ONNX Layer: {layer['name']}]"})
        out.append(item)
    flush()
    return out


class ICudaEngine:
    """A deserialized engine."""

    def __init__(self, header: Dict[str, Any], onnx_bytes: bytes, dla_core: int,
                 logger: Any) -> None:
        self._header = header
        self._onnx = onnx_bytes
        self._dla_core = dla_core
        self._logger = logger
        self._layers = _engine_layers(header)
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

    def get_tensor_mode(self, name: str) -> Any:
        """INPUT, OUTPUT, or NONE for an unknown name."""
        entry = self._io.get(name)
        return getattr(TensorIOMode, entry['mode']) if entry else TensorIOMode.NONE

    def get_tensor_shape(self, name: str) -> Any:
        """Shape of an I/O tensor."""
        entry = self._io.get(name)
        return Dims(entry['shape']) if entry else Dims(())

    @property
    def num_optimization_profiles(self) -> int:
        """Number of optimization profiles (1 for an engine without dynamic shapes)."""
        return max(1, len(self._header.get('profiles', [])))

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> List[Any]:
        """[min, opt, max] of input ``name`` in profile ``profile_index``."""
        profiles = self._header.get('profiles', [])
        entry = self._io.get(name)
        if entry is None or entry['mode'] != 'INPUT':
            return []
        if not profiles:
            return [Dims(entry['shape'])] * 3 if profile_index == 0 else []
        if not 0 <= profile_index < len(profiles) or name not in profiles[profile_index]:
            return []
        return [Dims(dims) for dims in profiles[profile_index][name]]

    def get_tensor_dtype(self, name: str) -> Any:
        """Return the data type of an I/O tensor."""
        entry = self._io.get(name)
        return getattr(DataType, entry['dtype']) if entry else DataType.FLOAT

    @property
    def num_layers(self) -> int:
        """Number of engine layers (after the double's DLA merging)."""
        return len(self._layers)

    @property
    def device_memory_size(self) -> int:
        """Scratch memory the engine needs."""
        return 1 << 20

    @property
    def profiling_verbosity(self) -> Any:
        """The verbosity the engine was built with."""
        return getattr(ProfilingVerbosity, self._header['profiling_verbosity'])

    def create_execution_context(self) -> 'IExecutionContext':
        """Create an execution context."""
        _record('ICudaEngine.create_execution_context')
        return IExecutionContext(self)

    def create_engine_inspector(self) -> 'EngineInspector':
        """Create an inspector of the engine's layers."""
        return EngineInspector(self)

    def serialize(self) -> IHostMemory:
        """Serialize the engine again."""
        head = _json.dumps(self._header).encode()
        return _host_memory(_PLAN_MAGIC + _struct.pack('<QQ', len(head), len(self._onnx))
                            + head + self._onnx)


class EngineInspector:
    """tensorrt.EngineInspector (``engine.create_engine_inspector()``)."""

    def __init__(self, engine: ICudaEngine) -> None:
        self._engine = engine
        self.execution_context: Optional[IExecutionContext] = None

    def get_layer_information(self, layer_index: int, format: Any) -> str:  # noqa: A002
        """Describe one engine layer: DETAILED JSON, or the name only below DETAILED."""
        layer = self._engine._layers[layer_index]
        if self._engine._header['profiling_verbosity'] != 'DETAILED':
            return _json.dumps(layer['Name']) if format == LayerInformationFormat.JSON \
                else layer['Name']
        if format == LayerInformationFormat.JSON:
            return _json.dumps(layer)
        return ', '.join(f'{k}: {v}' for k, v in layer.items())

    def get_engine_information(self, format: Any) -> str:  # noqa: A002
        """Describe the whole engine (``Bindings``; ``I/O Tensors`` from TensorRT 11)."""
        layers = [_json.loads(self.get_layer_information(i, LayerInformationFormat.JSON))
                  for i in range(self._engine.num_layers)]
        if _version_tuple() < (11, 0, 0):
            return _json.dumps({'Layers': layers, 'Bindings': self._engine._order})
        tensors = []    # NVIDIA's 11.x migration guide: a list of objects
        for name in self._engine._order:
            entry = self._engine._io[name]
            shape = list(entry['shape'])
            tensors.append({'Name': name, 'IOMode': entry['mode'].title(),
                            'DataType': _TYPE_TEXT.get(entry['dtype'], 'Float'),
                            'Dimensions': shape, 'Location': 'Device',
                            'IsShapeInferenceIO': False,
                            'ProfileInfo': [{'MinShape': shape, 'OptShape': shape,
                                             'MaxShape': shape,
                                             'Format': _FORMAT_OF.get(entry['dtype'],
                                                                      'Row major linear FP32')
                                             }] if entry['mode'] == 'INPUT' else []})
        return _json.dumps({'Layers': layers, 'I/O Tensors': tensors})


#: TensorRT requires I/O addresses aligned to this many bytes.
_ALIGNMENT = 256


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
        self._shapes: Dict[str, List[int]] = {}

    def _error(self, text: str) -> None:
        _log(self.engine._logger, _Severity.ERROR, text)

    @property
    def profiler(self) -> Optional[IProfiler]:
        """Per-layer profiler."""
        return self._profiler

    @profiler.setter
    def profiler(self, value: Optional[IProfiler]) -> None:
        if value is not None:
            _require_base_init(value, 'IProfiler')
        _record('IExecutionContext.profiler', value is not None)
        self._profiler = value

    def set_tensor_address(self, name: str, memory: int) -> bool:
        """Bind device memory to an I/O tensor; 0 resets it; False for a bad name/alignment."""
        _record('IExecutionContext.set_tensor_address', name, memory)
        if name not in self.engine._io:
            self._error(f'IExecutionContext::setTensorAddress: Error Code 3: API Usage Error '
                        f'(Given invalid tensor name: {name}. Get valid tensor names with '
                        'getIOTensorName().)')
            return False
        if memory == 0:
            self._addresses.pop(name, None)
            return True
        if memory % _ALIGNMENT:
            self._error(f'IExecutionContext::setTensorAddress: Error Code 3: API Usage Error '
                        f'(Parameter check failed, condition: (reinterpret_cast<uintptr_t>'
                        f'(data) % alignment) == 0. Address {memory:#x} of tensor {name} is '
                        f'not aligned to {_ALIGNMENT} bytes.)')
            return False
        self._addresses[name] = memory
        return True

    def get_tensor_address(self, name: str) -> int:
        """Address bound to ``name`` (0 if none)."""
        return self._addresses.get(name, 0)

    def set_input_shape(self, name: str, shape: Any) -> bool:
        """Set an input's shape: the built one, or one inside the profile's [min, max]."""
        _record('IExecutionContext.set_input_shape', name, tuple(int(d) for d in shape))
        entry = self.engine._io.get(name)
        if not entry or entry['mode'] != 'INPUT':
            self._error(f'IExecutionContext::setInputShape: Error Code 3: API Usage Error '
                        f'(Given invalid tensor name: {name}.)')
            return False
        shape = [int(d) for d in shape]
        built = entry['shape']
        if all(d >= 0 for d in built):
            return _bool(shape == built)
        low, _, high = [list(d) for d in self.engine.get_tensor_profile_shape(name, 0)]
        if len(shape) != len(built) or any(
                not lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
            self._error(f'IExecutionContext::setInputShape: Error Code 3: API Usage Error '
                        f'(Parameter check failed, condition: satisfyProfile. Set dimension '
                        f'{shape} for tensor {name} does not satisfy any optimization profile. '
                        f'Supported range for dimension is [{low}, {high}].)')
            return False
        self._shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> Any:
        """Shape of an I/O tensor (-1 where an input shape is not set yet)."""
        return Dims(self._shape(name))

    def _shape(self, name: str) -> List[int]:
        entry = self.engine._io.get(name)
        if entry is None:
            return []
        if entry['mode'] == 'INPUT':
            return list(self._shapes.get(name, entry['shape']))
        batch = next((self._shapes[n][0] for n in self.engine._order if n in self._shapes),
                     -1)
        return [batch if d < 0 else d for d in entry['shape']]

    def execute_async_v3(self, stream_handle: int) -> bool:
        """Run the engine on ``stream_handle``: reads the inputs, writes the outputs."""
        _record('IExecutionContext.execute_async_v3', stream_handle)
        for name in self.engine._order:
            if name not in self._addresses:
                self._error('IExecutionContext::enqueueV3: Error Code 3: API Usage Error '
                            f'(Address is not set for tensor {name}. Call setTensorAddress or '
                            'setOutputAllocator before enqueue/execute.)')
                return False
        for name in self.engine._order:
            if any(d < 0 for d in self._shape(name)):
                self._error('IExecutionContext::enqueueV3: Error Code 3: API Usage Error '
                            f'(Parameter check failed, condition: allInputDimensionsSpecified. '
                            f'Shape of tensor {name} is not specified: call setInputShape.)')
                return False
        if self._session is None:
            import onnxruntime as ort

            self._session = ort.InferenceSession(self.engine._onnx,
                                                 providers=['CPUExecutionProvider'])
        memory = _CONTROL.memory
        engine_sync = getattr(memory, 'engine_sync', None)
        if engine_sync is not None:
            engine_sync(stream_handle)
        feeds, outputs = {}, []
        for name in self.engine._order:
            entry = self.engine._io[name]
            dtype = nptype(getattr(DataType, entry['dtype']))
            shape = self._shape(name)
            nbytes = volume(shape) * _np.dtype(dtype).itemsize
            if entry['mode'] == 'INPUT':
                data = memory.read(self._addresses[name], nbytes)
                feeds[name] = _np.frombuffer(data, dtype).reshape(shape)
            else:
                outputs.append(name)
        start = _time.perf_counter()
        results = self._session.run(outputs, feeds)
        elapsed_ms = (_time.perf_counter() - start) * 1e3
        for name, value in zip(outputs, results):
            entry = self.engine._io[name]
            array = _np.ascontiguousarray(value, dtype=nptype(getattr(DataType, entry['dtype'])))
            memory.write(self._addresses[name], array.tobytes())
        if self._profiler is not None and self.enqueue_emits_profile:
            self._report(elapsed_ms)
        return True

    def report_to_profiler(self) -> bool:
        """Report the last run's per-layer times (when enqueue_emits_profile is False)."""
        return self._report(0.0)

    def _report(self, elapsed_ms: float) -> bool:
        if self._profiler is None:
            return False
        layers = self.engine._layers
        for layer in layers:
            _callback(self._profiler, 'report_layer_time', None, layer['Name'],
                      elapsed_ms / max(1, len(layers)))
        return True


def get_plugin_registry() -> Any:
    """Present for API completeness (no plugins in the double)."""
    return None


def init_libnvinfer_plugins(logger: Any, namespace: str) -> bool:
    """Present for API completeness (no plugins in the double)."""
    del logger, namespace
    return True
