"""The one parameter schema of the detector: names, types, defaults, ranges, descriptions.

Everything that takes parameters reads them from here: the ROS node declares exactly these
(with ``ParameterDescriptor`` ranges), the console tools build their argparse options from them,
``config/yolox.param.yaml`` holds the defaults, and the README table is generated from
``markdown_table()`` (a test checks that the YAML and the README agree with this module).

``PARAMS`` is the one list. What is derived from it, never restated:

- ``DetectorConfig`` (one field per parameter, its default);
- ``backends.tensorrt.builder.EngineSettings`` (the ``ENGINE`` parameters) and the engine cache
  key (each ``ENGINE`` parameter enters as its ``engine_key`` says);
- ``batching.group_key`` (every ``ENGINE`` and ``DETECTOR`` parameter: cameras that differ in
  one never share a detector).

Each parameter says what it affects (``affects``): ``ENGINE`` (how a TensorRT engine is built),
``DETECTOR`` (what a detector loads or computes, not the engine) or ``NODE`` (only the node or
process). The ``backend`` choices are the backend registry's (``backends.base.param_choices``):
this module imports nothing of ``backends``.

Names and meanings follow Autoware's ``tensorrt_yolox`` where the meaning is the same.
"""

from dataclasses import dataclass, field, make_dataclass, replace as replace_fields
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

from .errors import FileError, ParameterError

ParamValue = Union[bool, int, float, str]

PACKAGE_DIR = Path(__file__).resolve().parent
#: Files shipped inside the Python package (they also install to share/ through setup.py).
DEFAULT_MODEL_PATH = PACKAGE_DIR / 'model' / 'data' / 'yolox_demo.onnx'
DEFAULT_LABEL_PATH = PACKAGE_DIR / 'model' / 'data' / 'label.txt'
#: Where inference can run, and the DLA core each means (-1 = none): the one device list.
DEVICE_TO_DLA_CORE = {'gpu': -1, 'dla0': 0, 'dla1': 1, 'cpu': -1}
DEVICES = tuple(DEVICE_TO_DLA_CORE)
#: Devices that only TensorRT serves.
DLA_DEVICES = tuple(d for d, core in DEVICE_TO_DLA_CORE.items() if core >= 0)

#: What a parameter affects (``ParamSpec.affects``).
ENGINE = 'engine'        # how a TensorRT engine is built: a field of EngineSettings
DETECTOR = 'detector'    # what a detector loads or computes (not the engine)
NODE = 'node'            # only the node or process, never the detector
AFFECTS = (ENGINE, DETECTOR, NODE)
#: How an ``ENGINE`` parameter enters the engine cache key (``ParamSpec.engine_key``).
KEY_VALUE = 'value'      # its value
KEY_INT8 = 'int8'        # its value, when precision is int8 (else it changes nothing)
KEY_CONTENT = 'content'  # what it names: the model's sha256, the calibration images'
#                          fingerprint, the GPU's name and compute capability
KEY_NONE = 'none'        # where engines are kept, not what they are
ENGINE_KEYS = (KEY_VALUE, KEY_INT8, KEY_CONTENT, KEY_NONE)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its type, default, allowed values or range, and what it means."""

    name: str
    type: type
    default: ParamValue
    description: str
    choices: Optional[Tuple[str, ...]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    #: ENGINE, DETECTOR or NODE (module docstring); every entry must say.
    affects: str = ''
    #: For ENGINE parameters: KEY_VALUE, KEY_INT8, KEY_CONTENT or KEY_NONE.
    engine_key: Optional[str] = None

    def __post_init__(self) -> None:
        """Check the schema entry itself (a wrong tag fails at import, not in a camera)."""
        if self.affects not in AFFECTS:
            raise ValueError(f'{self.name}: say what it affects: affects= one of {AFFECTS}')
        if (self.affects == ENGINE) != (self.engine_key is not None) or \
                (self.engine_key is not None and self.engine_key not in ENGINE_KEYS):
            raise ValueError(f'{self.name}: an ENGINE parameter needs engine_key (one of '
                             f'{ENGINE_KEYS}), and only it')

    def validate(self, value: Any) -> ParamValue:
        """Return ``value`` converted to this parameter's type, or raise ParameterError."""
        if self.type is bool:
            if not isinstance(value, bool):
                raise ParameterError(self.name, f'expected true/false, got {value!r}')
            return value
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParameterError(self.name, f'expected an integer, got {value!r}')
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(self.name, f'expected a number, got {value!r}')
            value = float(value)
        elif self.type is str:
            if not isinstance(value, str):
                raise ParameterError(self.name, f'expected a string, got {value!r}')
        if self.choices is not None and value not in self.choices:
            raise ParameterError(
                self.name, f'{value!r} is not one of {", ".join(self.choices)}')
        if self.min is not None and value < self.min:
            raise ParameterError(self.name, f'{value!r} is below the minimum {self.min}')
        if self.max is not None and value > self.max:
            raise ParameterError(self.name, f'{value!r} is above the maximum {self.max}')
        return value

    def default_text(self) -> str:
        """Return the default as written in YAML and in the README table."""
        if isinstance(self.default, bool):
            return 'true' if self.default else 'false'
        if isinstance(self.default, str):
            return f'"{self.default}"'
        return repr(self.default)

    def range_text(self) -> str:
        """Return the allowed values as shown in the README table."""
        if self.choices is not None:
            return ' / '.join(self.choices)
        if self.min is not None or self.max is not None:
            low = '-inf' if self.min is None else _num(self.min)
            high = 'inf' if self.max is None else _num(self.max)
            return f'[{low}, {high}]'
        return ''


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


PARAMS: Tuple[ParamSpec, ...] = (
    ParamSpec('model_path', str, '',
              'YOLOX ONNX model (raw head [1,N,5+C] or decoded output); '
              'empty = the bundled demo model', affects=ENGINE, engine_key=KEY_CONTENT),
    ParamSpec('label_path', str, '',
              'label file, one class name per line; empty = the bundled label file '
              '(the 8 Autoware classes)', affects=DETECTOR),
    ParamSpec('score_threshold', float, 0.35,
              'drop detections whose score (objectness x class) is below this',
              min=0.0, max=1.0, affects=DETECTOR),
    ParamSpec('nms_threshold', float, 0.7,
              'class-aware NMS: suppress a box whose IoU with a kept box exceeds this',
              min=0.0, max=1.0, affects=DETECTOR),
    ParamSpec('max_detections', int, 100,
              'keep at most this many detections per image (highest scores)',
              min=1, max=10000, affects=DETECTOR),
    ParamSpec('output_format', str, 'auto',
              'model output form: raw YOLOX head, already decoded boxes, or auto-detect',
              choices=('auto', 'raw', 'decoded'), affects=DETECTOR),
    ParamSpec('device', str, 'gpu',
              'where inference runs: gpu, dla0, dla1 (TensorRT) or cpu (ONNX Runtime); '
              'sets dla_core_id', choices=DEVICES, affects=DETECTOR),
    ParamSpec('allow_cpu_fallback', bool, False,
              'when device is gpu / dla0 / dla1 and no backend can use it here: false = refuse '
              'to start (exit status 2, with the reason); true = run on the CPU (ONNX Runtime) '
              'with a WARN line and WARN diagnostics', affects=DETECTOR),
    ParamSpec('backend', str, 'auto',
              'inference backend; auto = TensorRT where it can be imported and device is '
              'not cpu, else torch (captured on the GPU) where torch sees a CUDA GPU, else ONNX '
              'Runtime; the log says which and why', affects=DETECTOR),
    ParamSpec('precision', str, 'int8',
              'TensorRT engine precision; the torch backend runs fp16 (int8 falls back to '
              'fp16 on a GPU) or fp32 (always fp32 on the CPU)',
              choices=('fp32', 'fp16', 'int8'), affects=ENGINE, engine_key=KEY_VALUE),
    ParamSpec('calibration_algorithm', str, 'MinMax',
              'INT8 calibration (MinMax is the safe default for YOLOX; Entropy loses '
              'accuracy); Legacy = percentile', choices=('MinMax', 'Entropy', 'Legacy'),
              affects=ENGINE, engine_key=KEY_INT8),
    ParamSpec('calibration_image_list_path', str, '',
              'text file listing calibration images, one path per line (or a folder)',
              affects=ENGINE, engine_key=KEY_CONTENT),
    ParamSpec('calibration_num_images', int, 1000,
              'use at most this many calibration images', min=1, max=100000,
              affects=ENGINE, engine_key=KEY_INT8),
    ParamSpec('percentile', float, 99.9999,
              'percentile for the Legacy (percentile) calibrator', min=90.0, max=100.0,
              affects=ENGINE, engine_key=KEY_INT8),
    ParamSpec('int8_mode', str, 'auto',
              'how INT8 scales are made: auto (by TensorRT version and device, see '
              'docs/tensorrt.md), implicit (TensorRT calibrator), explicit (Q/DQ model from '
              'ONNX Runtime static quantization), ranges (per-tensor ranges calibrated by ONNX '
              'Runtime, set with set_dynamic_range); clip_value > 0 overrides it; TensorRT 11 '
              '(strongly typed) takes only auto / explicit: a Q/DQ model with FP16 elsewhere',
              choices=('auto', 'implicit', 'explicit', 'ranges'),
              affects=ENGINE, engine_key=KEY_INT8),
    ParamSpec('clip_value', float, 0.0,
              'if > 0: fixed INT8 ranges instead of calibration: [0, clip_value] on the layer '
              'outputs, [0, 2 x clip_value] on residual sums (6.0 for the ReLU6 DLA recipe)',
              min=0.0, max=1.0e6, affects=ENGINE, engine_key=KEY_INT8),
    ParamSpec('quantize_first_layer', bool, False,
              "under int8, true keeps the first (input) layer in fp16 (Autoware's meaning)",
              affects=ENGINE, engine_key=KEY_INT8),
    ParamSpec('quantize_last_layer', bool, False,
              "under int8, true keeps the last (output) layers in fp16 (Autoware's meaning)",
              affects=ENGINE, engine_key=KEY_INT8),
    ParamSpec('dla_core_id', int, -1,
              '-1 = GPU; 0 / 1 = that DLA core with GPU fallback (set by device)',
              min=-1, max=1, affects=ENGINE, engine_key=KEY_VALUE),
    ParamSpec('gpu_id', int, 0, 'CUDA device index', min=0, max=63,
              affects=ENGINE, engine_key=KEY_CONTENT),
    ParamSpec('preprocess_on_gpu', bool, True,
              'fused CUDA preprocessing kernel; false (or no GPU) = CPU reference',
              affects=DETECTOR),
    ParamSpec('profile_per_layer', bool, False,
              'TensorRT per-layer timing report (development only; slows inference)',
              affects=DETECTOR),
    ParamSpec('build_only', bool, False,
              'build / calibrate the TensorRT engine, then exit', affects=NODE),
    ParamSpec('engine_cache_dir', str, '',
              'folder for cached TensorRT engines; empty = ~/.cache/tensorrt_yolox_py. It must '
              'be yours and writable by nobody else (else refused at start-up)',
              affects=ENGINE, engine_key=KEY_NONE),
    ParamSpec('require_verified_model', bool, False,
              'true: refuse an ONNX model without a valid checksum of this package (missing, '
              'stamped by another producer or wrong); false: load it with a warning (a wrong '
              'checksum is always refused)', affects=DETECTOR),
    ParamSpec('workspace_size_mb', int, 2048,
              'TensorRT builder workspace limit in MiB', min=16, max=1 << 20,
              affects=ENGINE, engine_key=KEY_VALUE),
    ParamSpec('num_threads', int, 0,
              'ONNX Runtime intra-op threads; 0 = ONNX Runtime default', min=0, max=256,
              affects=DETECTOR),
    ParamSpec('cuda_graph', bool, True,
              'torch backend on a GPU: capture network + decode once per batch size as a CUDA '
              'graph and replay it (the static converter; models it cannot convert fall back '
              'to onnx2torch, the log says why)', affects=DETECTOR),
    ParamSpec('torch_compile', str, 'off',
              'torch backend on a GPU: torch.compile (inductor) the network before capture; '
              'cached per model, torch and GPU under engine_cache_dir',
              choices=('off', 'default', 'max-autotune-no-cudagraphs'), affects=DETECTOR),
    ParamSpec('max_batch', int, 1,
              'cross-camera batching: most frames per inference call; > 1 makes the model '
              'batch dynamic (ONNX Runtime, torch) or builds a TensorRT profile for batch '
              '1..max_batch; DLA engines keep 1', min=1, max=64,
              affects=ENGINE, engine_key=KEY_VALUE),
    ParamSpec('batch_wait_ms', float, 5.0,
              'cross-camera batching: longest time a frame waits for other cameras before '
              'its batch runs', min=0.0, max=1000.0, affects=DETECTOR),
)

PARAMS_BY_NAME: Dict[str, ParamSpec] = {spec.name: spec for spec in PARAMS}


class _ConfigMethods:
    """What ``DetectorConfig`` adds to its fields (one per ``PARAMS`` entry)."""

    __slots__ = ()

    @property
    def resolved_model_path(self) -> Path:
        """The model file to load (the bundled demo model when model_path is empty)."""
        model_path = getattr(self, 'model_path')
        return Path(model_path).expanduser() if model_path else DEFAULT_MODEL_PATH

    @property
    def resolved_label_path(self) -> Path:
        """The label file to load (the bundled label file when label_path is empty)."""
        label_path = getattr(self, 'label_path')
        return Path(label_path).expanduser() if label_path else DEFAULT_LABEL_PATH

    def values(self) -> Dict[str, ParamValue]:
        """Return every parameter's value, by name (schema order)."""
        return {spec.name: getattr(self, spec.name) for spec in PARAMS}

    def detector_values(self) -> Dict[str, ParamValue]:
        """Return the values of every ENGINE and DETECTOR parameter, the file paths resolved.

        What two cameras must agree in to share one detector (``batching.group_key``).
        """
        values = {spec.name: getattr(self, spec.name)
                  for spec in params_affecting(ENGINE, DETECTOR)}
        values.update(model_path=str(self.resolved_model_path),
                      label_path=str(self.resolved_label_path))
        return values

    def replace(self, **changes: Any) -> 'DetectorConfig':
        """Return a validated copy with ``changes`` applied."""
        values = self.values()
        values.update(changes)
        return make_config(values)


#: Validated detector parameters (one object instead of many constructor arguments): a frozen
#: dataclass with one field per ``PARAMS`` entry, in schema order, with its default.
DetectorConfig = make_dataclass(
    'DetectorConfig', [(spec.name, spec.type, field(default=spec.default)) for spec in PARAMS],
    bases=(_ConfigMethods,), frozen=True)
DetectorConfig.__module__ = __name__
DetectorConfig.__doc__ = ('Validated detector parameters: one field per ``params.PARAMS`` '
                          'entry, with its default.')


def params_affecting(*what: str) -> Tuple[ParamSpec, ...]:
    """Return the parameters whose ``affects`` is one of ``what`` (schema order)."""
    return tuple(spec for spec in PARAMS if spec.affects in what)


def make_config(values: Mapping[str, Any], *, device_given: Optional[bool] = None
                ) -> DetectorConfig:
    """Validate ``values`` (name -> value) against the schema and return a DetectorConfig.

    Unknown names raise ParameterError. Missing names take their defaults. ``device`` and
    ``dla_core_id`` are reconciled: ``device`` sets the DLA core; an explicit ``dla_core_id``
    that contradicts an explicit ``device`` is an error naming both. ``device_given`` says
    whether ``device`` was set by the user (default: whether it is in ``values``).
    """
    unknown = sorted(set(values) - set(PARAMS_BY_NAME))
    if unknown:
        raise ParameterError(unknown[0], 'unknown parameter (known: '
                             + ', '.join(PARAMS_BY_NAME) + ')')
    checked = {spec.name: spec.validate(values.get(spec.name, spec.default))
               for spec in PARAMS}
    if device_given is None:
        device_given = 'device' in values
    device = checked['device']
    expected_core = DEVICE_TO_DLA_CORE[device]
    if 'dla_core_id' in values and device_given and checked['dla_core_id'] != expected_core:
        raise ParameterError(
            'dla_core_id', f"{checked['dla_core_id']} contradicts device '{device}' "
            f'(which means dla_core_id {expected_core}); set only one of them')
    if 'dla_core_id' in values and not device_given:
        checked['device'] = next(d for d, core in DEVICE_TO_DLA_CORE.items()
                                 if core == checked['dla_core_id'])
    else:
        checked['dla_core_id'] = expected_core
    if checked['device'] in DLA_DEVICES and checked['max_batch'] > 1:
        raise ParameterError('max_batch', f"{checked['max_batch']} needs device gpu or cpu "
                             f"(engines on {checked['device']} keep batch 1)")
    if checked['device'] == 'cpu' and checked['backend'] == 'tensorrt':
        raise ParameterError('backend', "'tensorrt' cannot run with device 'cpu'")
    return DetectorConfig(**checked)


def defaults() -> Dict[str, ParamValue]:
    """Return every parameter's default value, by name."""
    return {spec.name: spec.default for spec in PARAMS}


def load_param_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a ROS 2 parameter file (``/**: ros__parameters: {...}``) and return the dict.

    Accepts the wildcard node name ``/**`` or a single node entry. Raises FileError naming
    the file when it is missing, unreadable or malformed.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise FileError(path, f'cannot read parameter file {path}: {exc}') from exc
    except yaml.YAMLError as exc:
        raise FileError(path, f'parameter file {path} is not valid YAML: {exc}') from exc
    if not isinstance(data, dict) or len(data) != 1:
        raise FileError(path, f'parameter file {path}: expected one node entry such as /**')
    node_entry = next(iter(data.values()))
    if not isinstance(node_entry, dict) or not isinstance(
            node_entry.get('ros__parameters'), dict):
        raise FileError(path, f'parameter file {path}: expected a ros__parameters mapping')
    return dict(node_entry['ros__parameters'])


def markdown_table(specs: Iterable[ParamSpec] = PARAMS,
                   choices: Optional[Callable[[ParamSpec], Optional[Tuple[str, ...]]]] = None
                   ) -> str:
    """Render the parameter table for the README (generated, and checked by a test).

    ``choices(spec)`` gives the allowed values where they are not the schema's own (the
    backend registry's names: ``backends.base.param_choices``).
    """
    lines = ['| name | type | default | range | description |',
             '|---|---|---|---|---|']
    for spec in specs:
        allowed = choices(spec) if choices is not None else spec.choices
        shown = spec if allowed == spec.choices else replace_fields(spec, choices=allowed)
        lines.append(f'| `{spec.name}` | {spec.type.__name__} | {spec.default_text()} | '
                     f'{shown.range_text()} | {spec.description} |')
    return '\n'.join(lines) + '\n'
