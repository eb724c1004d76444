"""TensorRT engine building: a YOLOX ONNX -> a serialized plan, FP32 / FP16 / INT8, GPU or DLA.

Contract of ``prepare_engine(settings, trt=None, memory=None, progress=None)``:

- Input: ``EngineSettings`` (from ``DetectorConfig``: model, precision, DLA core, GPU, INT8
  options, workspace, cache folder). Output: ``PreparedEngine`` (plan path in the engine cache,
  the build report, whether it was built now). The plan is cached (``engine_cache``) under a key
  of everything that changes it, so later starts load it in seconds and a stale one is rebuilt.
- Every version-dependent choice reads ``capabilities`` (one table, tested against the real
  API of 8.6.1, 10.3.0, 10.13.3.9, 10.16.1.11 and 11.4.0.106).
- Network: ``EXPLICIT_BATCH`` on 8.6 (deprecated and ignored in 10, gone in 11),
  ``STRONGLY_TYPED`` on 11; filled by ``trt.OnnxParser.parse_from_file``; parser errors are
  raised with TensorRT's messages. The I/O must be the YOLOX contract (``check_io_contract``).
- ``fp32`` clears ``BuilderFlag.TF32`` (TensorRT allows TF32 for FP32 layers by default on
  Ampere and newer), on every version; ``tf32: False`` is in the engine key.
- Precision, TensorRT 8.6 / 10.x (weakly typed): ``fp16`` sets ``BuilderFlag.FP16``; ``int8``
  sets ``INT8`` (+ ``FP16`` for the layers left in float). Where the hardware lacks the
  precision (``platform_has_fast_*`` before TensorRT 10.5, the compute capability from CUDA
  after) the build stops with a ParameterError naming ``precision``.
- Precision, TensorRT 11 (strongly typed networks only): it comes from the ONNX types. ``fp16``
  parses an FP16 copy of the model, ``int8`` a Q/DQ model with FP16 elsewhere
  (``quantization.strongly_typed``: NVIDIA ModelOpt where installed, else ONNX Runtime's
  quantizer; ``clip_value`` as fixed Q/DQ scales; ``quantize_first_layer`` /
  ``quantize_last_layer`` as excluded nodes); ``fp32`` parses the model as it is. The typed
  model is cached beside the engines and its hash is part of the engine key.
- Callbacks (logger, progress monitor, calibrator) catch every exception, a Ctrl-C included,
  record it (``common.CallbackErrors``) and stop the work; it is raised once TensorRT returns.
  A calibration that did not use every image keeps neither its cache nor the engine.
- INT8 scales, one of (``plan_int8`` chooses and says why; the report and log name the path):
  ``clip`` (``clip_value`` > 0: ``quantization.clip`` ranges, (0, 255) on the input),
  ``implicit`` (a TensorRT calibrator: ``calibration.make_calibrator``, with a calibration
  cache file), ``explicit`` (a Q/DQ ONNX from ``quantization.quantize_static_qdq`` with the
  same calibration method, parsed instead of the float model), ``ranges`` (per-tensor ranges
  from ONNX Runtime calibration, set with ``set_dynamic_range``), ``model-qdq`` (the model
  already has Q/DQ nodes). ``auto``: TensorRT < 10.1 -> implicit; >= 10.1 (implicit
  calibration deprecated) -> explicit on the GPU (implicit, with a warning, where ONNX Runtime
  is older than 1.32 and cannot write the Q/DQ model: Python 3.10); on the DLA (which takes
  only the Entropy2 calibrator) -> implicit for Entropy on < 10.1, else ranges, which keeps
  MinMax / percentile.
  TensorRT 11: ``typed-qdq`` (the Q/DQ model above); ``implicit`` / ``ranges`` are refused.
- ``quantize_first_layer`` / ``quantize_last_layer`` true (Autoware's meaning: "set the
  operating precision for the first (input) / last layer to be fp16"): those weighted layers
  stay in FP16 (layer precision + ``PREFER_PRECISION_CONSTRAINTS``; in the explicit path they
  are left out of the Q/DQ model instead). Both false (the default) quantize every layer.
- DLA: ``default_device_type = DLA``, ``DLA_core``, ``GPU_FALLBACK``; the layers that cannot
  run there (``can_run_on_DLA``) are listed in the report and the log. No DLA, a missing core,
  a TensorRT release without DLA support (10.8-10.16, 11.0-11.4.0; named in the message), or
  FP32 on the DLA stop with a ParameterError naming ``device`` / ``precision``.
- Batch (``max_batch`` > 1, GPU only: cross-camera batching): the model to parse is made
  batch-dynamic (``onnx_model.dynamic_batch``, cached beside the engines) and the engine gets one
  optimisation profile for batch 1..max_batch (opt = max_batch); implicit INT8 calibration
  runs at batch 1 through a calibration profile. ``max_batch`` is in the engine key and name.
- Workspace (``set_memory_pool_limit(WORKSPACE)``) and a timing cache file per TensorRT version
  and GPU in the cache folder. A build logs "building engine, this can take minutes" and reports
  calibration progress and TensorRT's build phases (``IProgressMonitor``) through ``progress``.
"""

import logging
import re
import time
import warnings
from dataclasses import asdict, dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...errors import ModelContractError, ParameterError
from ...params import DetectorConfig, ENGINE, KEY_INT8, KEY_VALUE, params_affecting
from ...quantization.images import fingerprint, list_calibration_images
from ...quantization.clip import CLIP_RECIPE_VERSION
from ...quantization.static import CALIBRATION_CACHE_ORT, CALIBRATION_VERSION
from ..base import check_io_contract
from ... import trust
from ...trust import write_atomic
from .calibration import IncompleteCalibration, make_calibrator
from .capabilities import dla_support, supports
from .common import (CallbackErrors, TensorRTError, check_supported, import_tensorrt,
                     make_logger, make_progress_monitor, trt_version, version_text)
from ...cuda.memory import compute_capability_supports, CudaMemory
from .dynamic_range import apply_clip_ranges, apply_tensor_ranges, boundary_layers, keep_in_fp16
from .engine_cache import EngineCache, engine_key, file_sha256

LOGGER = logging.getLogger(__name__)

CALIBRATOR_NAMES = {'Entropy': 'IInt8EntropyCalibrator2', 'MinMax': 'IInt8MinMaxCalibrator',
                    'Legacy': 'IInt8LegacyCalibrator'}


class _EngineSettingsMethods:
    """What ``EngineSettings`` adds to its fields."""

    __slots__ = ()

    @classmethod
    def from_config(cls, config: DetectorConfig) -> 'EngineSettings':
        """Take the ENGINE parameters of a validated config (the model path resolved)."""
        values = {spec.name: getattr(config, spec.name) for spec in ENGINE_PARAMS}
        values['model_path'] = config.resolved_model_path
        return cls(**values)

    @property
    def device(self) -> str:
        """'gpu', 'dla0' or 'dla1'."""
        core = getattr(self, 'dla_core_id')
        return 'gpu' if core < 0 else f'dla{core}'

    @property
    def cache_dir(self) -> Optional[Path]:
        """``engine_cache_dir`` as a path; None = the default cache folder."""
        folder = getattr(self, 'engine_cache_dir')
        return Path(folder).expanduser() if folder else None

    def key_fields(self, kinds: Tuple[str, ...] = (KEY_VALUE, KEY_INT8)) -> Dict[str, Any]:
        """Return the parameters of the engine cache key, by name (``ParamSpec.engine_key``).

        KEY_VALUE parameters always, KEY_INT8 ones under int8 (``kinds`` picks among the
        two); KEY_CONTENT ones are keyed by ``prepare_engine`` through what they name,
        KEY_NONE ones not at all.
        """
        int8 = getattr(self, 'precision') == 'int8'
        return {spec.name: getattr(self, spec.name) for spec in ENGINE_PARAMS
                if spec.engine_key in kinds and (spec.engine_key == KEY_VALUE or int8)}


#: The schema's ENGINE parameters: the fields of EngineSettings.
ENGINE_PARAMS = params_affecting(ENGINE)
#: Everything that decides how an engine is built: a frozen dataclass with one field per ENGINE
#: parameter (schema name and default; ``model_path`` first, a ``Path``, required).
EngineSettings = make_dataclass(
    'EngineSettings',
    [('model_path', Path)] + [(spec.name, spec.type, field(default=spec.default))
                              for spec in ENGINE_PARAMS if spec.name != 'model_path'],
    bases=(_EngineSettingsMethods,), frozen=True)
EngineSettings.__module__ = __name__
EngineSettings.__doc__ = ('Everything that decides how an engine is built: one field per '
                          'ENGINE parameter of ``params.PARAMS``.')


@dataclass(frozen=True)
class Int8Plan:
    """Which INT8 path runs, why, and whether it needs calibration images."""

    mode: str
    reason: str
    algorithm: str = ''
    needs_images: bool = False


@dataclass
class BuildReport:
    """What a build did (also stored in the engine cache sidecar)."""

    precision: str
    device: str
    trt_version: str
    gpu: str
    int8_path: str = ''
    int8_reason: str = ''
    calibration: str = ''
    calibration_images: int = 0
    fallback_layers: List[str] = field(default_factory=list)
    fp16_layers: List[str] = field(default_factory=list)
    typed_model_tool: str = ''
    ranges_set: int = 0
    ranges_missing: int = 0
    num_layers: int = 0
    max_batch: int = 1
    build_seconds: float = 0.0
    engine_bytes: int = 0
    warnings: int = 0

    def to_dict(self) -> Dict[str, Any]:
        """Return the report as a JSON-friendly dict."""
        return asdict(self)


class BuildProgress:
    """Progress sink of a build; this default logs (the console tool draws bars instead)."""

    def __init__(self) -> None:
        self._last: Dict[str, int] = {}

    def calibration(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` calibration images."""
        step = max(1, total // 10)
        if done == total or done % step == 0:
            LOGGER.info('calibration: %d / %d images', done, total)

    def phase(self, name: str, step: int, steps: int) -> None:
        """Report TensorRT build phase ``name`` at ``step`` of ``steps``."""
        quarter = max(1, steps // 4)
        if step == steps or step % quarter == 0:
            if self._last.get(name) != step:
                self._last[name] = step
                LOGGER.info('engine build: %s %d / %d', name, step, steps)

    def close(self) -> None:
        """Finish (nothing to do when logging)."""


@dataclass
class PreparedEngine:
    """A cached plan ready to deserialize."""

    path: Path
    report: Dict[str, Any]
    built: bool
    key: str
    name: str
    cache: EngineCache


def model_has_qdq(path: Path) -> bool:
    """Return whether the ONNX model already has QuantizeLinear / DequantizeLinear nodes."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for bad files
        raise ModelContractError(f'{path}: not a readable ONNX model: {exc}') from exc
    return any(n.op_type in ('QuantizeLinear', 'DequantizeLinear') for n in model.graph.node)


def plan_int8(settings: EngineSettings, version: Tuple[int, int, int],
              model_qdq: bool, qdq_writable: Optional[bool] = None) -> Int8Plan:
    """Choose the INT8 path (see the module contract) and say why.

    ``qdq_writable``: whether ONNX Runtime can write a Q/DQ model from calibrated ranges (None:
    ask the installed one). Where it cannot (ONNX Runtime < 1.32: Python 3.10), ``auto`` on
    TensorRT 10.1+ takes the implicit calibrator instead of ``explicit`` and warns.
    """
    dla = settings.dla_core_id >= 0
    algo = settings.calibration_algorithm
    mode = settings.int8_mode
    if model_qdq:
        return Int8Plan('model-qdq', 'the model already has Q/DQ nodes (explicit '
                        'quantization); no calibration')
    if settings.clip_value > 0 and supports(version, 'strongly_typed_only'):
        if mode != 'auto':
            raise ParameterError('int8_mode', f"'{mode}' contradicts clip_value "
                                 f'{settings.clip_value} > 0; set only one of them')
        return Int8Plan('typed-qdq', f'clip_value {settings.clip_value:g} > 0 on TensorRT '
                        f'{version_text(version)} (strongly typed): fixed Q/DQ scales (0, '
                        f'{settings.clip_value:g}) on the activations, (0, 255) on the input',
                        'clip', False)
    if settings.clip_value > 0:
        if mode != 'auto':
            raise ParameterError('int8_mode', f"'{mode}' contradicts clip_value "
                                 f'{settings.clip_value} > 0, which sets explicit ranges; '
                                 'set only one of them')
        return Int8Plan('clip', f'clip_value {settings.clip_value:g} > 0: dynamic range '
                        f'(0, {settings.clip_value:g}) on the layer outputs (residual sums: '
                        f'(0, {2 * settings.clip_value:g})) and (0, 255) on the input (the '
                        'ReLU6 DLA recipe)')
    vtext = version_text(version)
    if supports(version, 'strongly_typed_only'):
        if mode in ('implicit', 'ranges'):
            raise ParameterError('int8_mode', f"'{mode}' needs implicit INT8 quantization, "
                                 f'which TensorRT {vtext} removed (strongly typed networks '
                                 'only); use auto or explicit')
        return Int8Plan('typed-qdq', f'TensorRT {vtext} builds strongly typed networks only: a '
                        f'Q/DQ model ({algo}) with FP16 elsewhere, from the model\'s ONNX types',
                        algo, True)
    deprecated = not supports(version, 'implicit_int8_preferred')
    if mode == 'auto':
        if dla and algo == 'Entropy' and not deprecated:
            return Int8Plan('implicit', f'DLA with Entropy calibration on TensorRT {vtext}: '
                            'IInt8EntropyCalibrator2 (the calibrator the DLA requires)', algo,
                            True)
        if dla:
            return Int8Plan('ranges', 'the DLA takes only the Entropy2 calibrator'
                            + (f' and TensorRT {vtext} deprecates implicit calibration'
                               if deprecated else '')
                            + f': {algo} ranges calibrated by ONNX Runtime are set as explicit '
                            'dynamic ranges', algo, True)
        if deprecated and not _qdq_writable(qdq_writable):
            LOGGER.warning('int8_mode auto on TensorRT %s would write a Q/DQ model, which needs '
                           'onnxruntime>=%s (Python 3.11+; the newest for Python 3.10 is '
                           '1.23.2); using implicit calibration (deprecated since 10.1) instead',
                           vtext, CALIBRATION_CACHE_ORT)
            return Int8Plan('implicit', f'TensorRT {vtext}: explicit quantization needs '
                            f'onnxruntime>={CALIBRATION_CACHE_ORT}, not installed here: implicit '
                            f'calibration with {CALIBRATOR_NAMES[algo]} (deprecated since 10.1)',
                            algo, True)
        if deprecated:
            return Int8Plan('explicit', f'TensorRT {vtext} deprecates implicit calibration '
                            '(10.1+): explicit quantization with a Q/DQ model from ONNX Runtime '
                            f'static quantization ({algo})', algo, True)
        return Int8Plan('implicit', f'TensorRT {vtext} (< 10.1): implicit calibration with '
                        f'{CALIBRATOR_NAMES[algo]}', algo, True)
    if mode == 'implicit' and dla and algo != 'Entropy':
        raise ParameterError('calibration_algorithm', f'the DLA requires the Entropy '
                             f'(IInt8EntropyCalibrator2) calibrator, not {algo}; keep {algo} '
                             'with int8_mode ranges, use clip_value 6.0 with a ReLU6 model, or '
                             'set calibration_algorithm Entropy (it lost accuracy on YOLOX)')
    if mode == 'explicit' and dla:
        LOGGER.warning('int8_mode explicit on the DLA: Q/DQ layers the DLA cannot run fall back '
                       'to the GPU; this combination is not verified by this package')
    reasons = {'implicit': f'implicit calibration with {CALIBRATOR_NAMES[algo]}',
               'explicit': f'explicit quantization: Q/DQ model from ONNX Runtime ({algo})',
               'ranges': f'{algo} ranges calibrated by ONNX Runtime, set as dynamic ranges'}
    return Int8Plan(mode, f'int8_mode={mode} was requested: {reasons[mode]}', algo, True)


def _qdq_writable(known: Optional[bool]) -> bool:
    if known is not None:
        return known
    from ...quantization.static import calibration_cache_supported

    return calibration_cache_supported()


def _safe(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '-', text).strip('-') or 'x'


def check_hardware(builder: Any, settings: EngineSettings, gpu: Dict[str, Any],
                   version: Tuple[int, int, int]) -> Dict[str, bool]:
    """Raise ParameterError if this platform lacks the DLA core or the precision; return fast.

    Returns {'fp16': bool, 'int8': bool}: from ``platform_has_fast_*`` before TensorRT 10.5,
    from the compute capability after (the platform queries are deprecated there).
    """
    gpu_text = _gpu_text(gpu)
    if settings.dla_core_id >= 0:
        has_dla, why = dla_support(version)
        if not has_dla:
            raise ParameterError('device', f'{settings.device}: TensorRT '
                                 f'{version_text(version)} cannot build for a DLA ({why}); use '
                                 'device gpu')
        cores = int(builder.num_DLA_cores)
        if cores == 0:
            raise ParameterError('device', f'{settings.device}: this platform has no DLA '
                                 f'({gpu_text}); use device gpu')
        if settings.dla_core_id >= cores:
            raise ParameterError('device', f'{settings.device}: this platform has {cores} '
                                 f'DLA core(s) (dla0..dla{cores - 1})')
    if supports(version, 'platform_queries'):
        fast = {'fp16': bool(builder.platform_has_fast_fp16),
                'int8': bool(builder.platform_has_fast_int8)}
    else:
        fast = compute_capability_supports(gpu['compute_capability'])
    if settings.precision in fast and not fast[settings.precision]:
        raise ParameterError('precision', f'{settings.precision}: {gpu_text} has no fast '
                             f'{settings.precision.upper()}; use '
                             f"{'fp16' if settings.precision == 'int8' else 'fp32'}")
    return fast


def _gpu_text(gpu: Dict[str, Any]) -> str:
    major, minor = gpu['compute_capability']
    return f"{gpu['name']} (sm_{major}{minor})"


class EngineBuild:
    """One engine build (called by the engine cache under its lock)."""

    def __init__(self, settings: EngineSettings, trt: Any, memory: Any, gpu: Dict[str, Any],
                 plan: Optional[Int8Plan], images: Sequence[Path], image_key: str,
                 cache_dir: Path, progress: BuildProgress, builder: Any, logger: Any,
                 fast: Dict[str, bool], typed_model: Optional[Path] = None) -> None:
        self.settings, self.trt, self.memory, self.gpu = settings, trt, memory, gpu
        self.builder, self.logger, self.fast = builder, logger, fast
        self.errors: CallbackErrors = logger.callback_errors
        self.typed_model = typed_model
        self.plan, self.images, self.image_key = plan, list(images), image_key
        self.cache_dir, self.progress = cache_dir, progress
        self.version = trt_version(trt)
        self.report = BuildReport(settings.precision, settings.device,
                                  version_text(self.version), _gpu_text(gpu))
        if typed_model is not None:
            from ...quantization.strongly_typed import typed_model_tool

            self.report.typed_model_tool = typed_model_tool(typed_model)

    def _artifact(self, kind: str, suffix: str) -> Path:
        # The schema's KEY_INT8 parameters, and what the plan and the images decided.
        digest = engine_key({**self.settings.key_fields((KEY_INT8,)),
                             'model': file_sha256(self.settings.model_path), 'kind': kind,
                             'algorithm': self.plan.algorithm if self.plan else '',
                             'images': self.image_key,
                             'calibration_version': CALIBRATION_VERSION,
                             'trt': version_text(self.version[:2] + (0,))})[:12]
        return self.cache_dir / f'{_safe(self.settings.model_path.stem)}.{kind}-{digest}{suffix}'

    def run(self) -> Tuple[bytes, Dict[str, Any]]:
        """Build the plan; return (plan bytes, report dict)."""
        trt, settings = self.trt, self.settings
        start = time.perf_counter()
        LOGGER.warning('building engine for %s (%s on %s), this can take minutes',
                       settings.model_path.name, settings.precision, settings.device)
        logger, builder = self.logger, self.builder
        flags = 0
        if supports(self.version, 'explicit_batch_flag'):
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        if supports(self.version, 'strongly_typed_only'):
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        onnx_path = self._model_to_parse()
        if settings.max_batch > 1:
            onnx_path = self._dynamic_batch_model(onnx_path)
        if not parser.parse_from_file(str(onnx_path)):
            errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelContractError(f'{onnx_path}: TensorRT cannot parse the model: '
                                     f'{errors or logger.take_errors()}')
        input_tensor = self._check_network(network, onnx_path)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                     int(settings.workspace_size_mb) << 20)
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        timing_path = self._timing_cache(config)
        if settings.max_batch > 1:
            self._add_batch_profile(config, input_tensor)
        calibrator = self._set_precision(config, network, input_tensor)
        self._set_device(config, network)
        monitor = make_progress_monitor(trt, self.progress.phase, self.errors)
        if monitor is not None:
            config.progress_monitor = monitor
        self.report.num_layers = network.num_layers
        try:
            plan = builder.build_serialized_network(network, config)
        finally:
            if calibrator is not None:
                calibrator.release()
        self.errors.raise_pending()     # an error or Ctrl-C inside a callback, now
        if calibrator is not None and not calibrator.complete:
            raise IncompleteCalibration(
                f'calibration used {calibrator.count} of {calibrator.total} images; neither its '
                'cache nor the engine is kept')
        if calibrator is not None:
            self.report.calibration += (' (scales from its calibration cache)'
                                        if calibrator.used_cache else
                                        f' ({calibrator.count} images calibrated now)')
        if plan is None:
            raise TensorRTError(f'TensorRT could not build the engine for '
                                f'{settings.model_path}: '
                                f'{logger.take_errors() or "no error text"}')
        self._save_timing_cache(config, timing_path)
        data = bytes(memoryview(plan))
        self.report.build_seconds = round(time.perf_counter() - start, 3)
        self.report.engine_bytes = len(data)
        self.report.warnings = len(logger.warnings)
        LOGGER.info('engine built in %.1f s (%d bytes)', self.report.build_seconds, len(data))
        return data, self.report.to_dict()

    def _model_to_parse(self) -> Path:
        plan = self.plan
        if self.typed_model is not None:
            return self.typed_model
        if plan is None or plan.mode != 'explicit':
            return self.settings.model_path
        from ...quantization.static import quantize_static_qdq

        path = self._artifact('qdq', '.onnx')
        if trust.usable(path, 'Q/DQ model'):
            LOGGER.info('using cached Q/DQ model %s', path)
        else:
            LOGGER.info('quantizing %s (%s, %d images) for explicit quantization',
                        self.settings.model_path.name, plan.algorithm, len(self.images))
            with trust.staging(path) as tmp:
                quantize_static_qdq(
                    self.settings.model_path, tmp, self.images, plan.algorithm,
                    percentile=self.settings.percentile, target='tensorrt',
                    exclude_first_layer=self.settings.quantize_first_layer,
                    exclude_last_layer=self.settings.quantize_last_layer,
                    progress=self.progress.calibration)
        self.report.calibration = f'{plan.algorithm} (ONNX Runtime static quantization)'
        self.report.calibration_images = len(self.images)
        return path

    def _dynamic_batch_model(self, onnx_path: Path) -> Path:
        """Write (once) and return the batch-dynamic copy of ``onnx_path``."""
        from ...onnx_model.dynamic_batch import dynamic_batch_bytes

        digest = engine_key({'model': file_sha256(onnx_path), 'kind': 'dynamic-batch'})[:12]
        path = self.cache_dir / f'{_safe(onnx_path.stem)}.dynbatch-{digest}.onnx'
        if not trust.usable(path, 'batch-dynamic model'):
            write_atomic(path, dynamic_batch_bytes(onnx_path))
            LOGGER.info('batch-dynamic model for max_batch %d: %s', self.settings.max_batch,
                        path)
        return path

    def _add_batch_profile(self, config: Any, input_tensor: Any) -> None:
        """One optimisation profile for batch 1..max_batch (opt = max_batch)."""
        trt, top = self.trt, int(self.settings.max_batch)
        rest = [int(d) for d in input_tensor.shape][1:]
        profile = self.builder.create_optimization_profile()
        profile.set_shape(input_tensor.name, trt.Dims([1] + rest), trt.Dims([top] + rest),
                          trt.Dims([top] + rest))
        if config.add_optimization_profile(profile) < 0:
            raise TensorRTError(f'invalid optimisation profile for batch 1..{top}: '
                                f'{self.logger.take_errors()}')
        self.report.max_batch = top
        LOGGER.info('optimisation profile: %s batch 1..%d (opt %d)', input_tensor.name, top, top)

    def _calibration_profile(self, config: Any, input_tensor: Any) -> Tuple[int, ...]:
        """Calibrate a batch-dynamic network at batch 1; return the calibration shape."""
        shape = tuple(int(d) for d in input_tensor.shape)
        if shape[0] >= 0:
            return shape
        shape = (1,) + shape[1:]
        profile = self.builder.create_optimization_profile()
        profile.set_shape(input_tensor.name, self.trt.Dims(list(shape)),
                          self.trt.Dims(list(shape)), self.trt.Dims(list(shape)))
        with warnings.catch_warnings():     # deprecated from 10.1 with implicit INT8
            warnings.simplefilter('ignore', DeprecationWarning)
            accepted = config.set_calibration_profile(profile)
        if not accepted:
            raise TensorRTError(f'set_calibration_profile failed: {self.logger.take_errors()}')
        return shape

    def _check_network(self, network: Any, onnx_path: Path) -> Any:
        trt = self.trt
        if network.num_inputs != 1 or network.num_outputs != 1:
            check_io_contract((), (), str(onnx_path), network.num_inputs, network.num_outputs)
        tensor_in, tensor_out = network.get_input(0), network.get_output(0)
        in_shape = tuple(int(d) for d in tensor_in.shape)
        out_shape = tuple(int(d) for d in tensor_out.shape)
        if self.settings.max_batch > 1 and in_shape and in_shape[0] < 0:
            in_shape, out_shape = (1,) + in_shape[1:], (1,) + out_shape[1:]
        check_io_contract(in_shape, out_shape, str(onnx_path), 1, 1, tensor_in.name)
        if tensor_in.dtype not in (trt.float32, trt.float16):
            raise ModelContractError(f'{onnx_path}: input must be float32 or float16, got '
                                     f'{tensor_in.dtype}')
        return tensor_in

    def _timing_cache(self, config: Any) -> Path:
        major, minor = self.gpu['compute_capability']
        path = self.cache_dir / (f'timing-trt{version_text(self.version)}-'
                                 f"{_safe(self.gpu['name'])}-sm{major}{minor}.cache")
        blob = trust.read_verified(path, 'timing cache') or b''
        cache = config.create_timing_cache(blob)
        if cache is None and blob:
            LOGGER.warning('timing cache %s is unreadable; starting a new one', path)
            cache = config.create_timing_cache(b'')
        if cache is not None and not config.set_timing_cache(cache, False):
            LOGGER.warning('timing cache %s does not match this TensorRT/GPU; starting a new '
                           'one', path)
            config.set_timing_cache(config.create_timing_cache(b''), False)
        return path

    def _save_timing_cache(self, config: Any, path: Path) -> None:
        cache = config.get_timing_cache()
        if cache is not None:
            write_atomic(path, bytes(memoryview(cache.serialize())))

    def _clip_ranges(self) -> Dict[str, Tuple[float, float]]:
        import onnx

        from ...quantization.clip import clip_ranges

        model = onnx.load(str(self._model_to_parse()), load_external_data=False)
        return clip_ranges(model, self.settings.clip_value, residual_sums=True)

    def _set_precision(self, config: Any, network: Any, input_tensor: Any) -> Any:
        trt, settings = self.trt, self.settings
        precision = settings.precision
        if precision == 'fp32':
            # TensorRT allows TF32 (10-bit mantissa) for FP32 layers by default on Ampere and
            # newer: fp32 means IEEE FP32 here, and the checklist judges it so (1e-3).
            config.clear_flag(trt.BuilderFlag.TF32)
            LOGGER.info('fp32: BuilderFlag.TF32 cleared (IEEE FP32 math)')
            return None
        if supports(self.version, 'strongly_typed_only'):
            if self.plan is not None:
                self.report.int8_path, self.report.int8_reason = self.plan.mode, self.plan.reason
                LOGGER.info('INT8 path: %s (%s)', self.plan.mode, self.plan.reason)
            LOGGER.info('strongly typed network: %s from the ONNX types of %s', precision,
                        self._model_to_parse().name)
            return None
        if precision == 'fp16' or self.fast.get('fp16', False) or settings.dla_core_id >= 0:
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == 'fp16':
            return None
        config.set_flag(trt.BuilderFlag.INT8)
        plan = self.plan
        self.report.int8_path, self.report.int8_reason = plan.mode, plan.reason
        LOGGER.info('INT8 path: %s (%s)', plan.mode, plan.reason)
        calibrator = None
        if plan.mode == 'clip':
            self.report.ranges_set = apply_clip_ranges(
                trt, network, settings.clip_value, ranges=self._clip_ranges())
        elif plan.mode == 'ranges':
            self._set_calibrated_ranges(network)
        elif plan.mode == 'implicit':
            cache_path = self._artifact(f'calib-{plan.algorithm.lower()}', '.cache')
            calibrator = make_calibrator(
                trt, plan.algorithm, self.images, self._calibration_profile(config, input_tensor),
                np.float16 if input_tensor.dtype == trt.float16 else np.float32, cache_path,
                self.memory, settings.percentile, self.progress.calibration, self.errors)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', DeprecationWarning)
                config.int8_calibrator = calibrator
            self.report.calibration = (f'{CALIBRATOR_NAMES[plan.algorithm]} '
                                       f'(cache {cache_path.name})')
            self.report.calibration_images = len(self.images)
        if plan.mode in ('clip', 'ranges', 'implicit'):
            first, last = boundary_layers(trt, network)
            pinned = (first if settings.quantize_first_layer else []) + \
                (last if settings.quantize_last_layer else [])
            if pinned:
                self.report.fp16_layers = keep_in_fp16(trt, pinned)
                config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
                LOGGER.info('kept in FP16 (quantize_first_layer=%s, quantize_last_layer=%s): %s',
                            settings.quantize_first_layer, settings.quantize_last_layer,
                            ', '.join(self.report.fp16_layers))
        return calibrator

    def _set_calibrated_ranges(self, network: Any) -> None:
        import json

        from ...quantization.static import canonical_method, compute_tensor_ranges

        plan, settings = self.plan, self.settings
        path = self._artifact(f'ranges-{plan.algorithm.lower()}', '.json')
        saved = trust.load_json(path, 'calibrated ranges')
        if isinstance(saved, dict):
            LOGGER.info('using calibrated ranges %s', path)
            ranges = {k: tuple(v) for k, v in saved.items()}
        else:
            ranges = compute_tensor_ranges(settings.model_path, self.images,
                                           canonical_method(plan.algorithm),
                                           settings.percentile, self.progress.calibration)
            write_atomic(path, json.dumps(ranges, sort_keys=True).encode())
        count, missing = apply_tensor_ranges(self.trt, network, ranges)
        self.report.ranges_set, self.report.ranges_missing = count, len(missing)
        self.report.calibration = f'{plan.algorithm} ranges by ONNX Runtime ({path.name})'
        self.report.calibration_images = len(self.images)
        if missing:
            LOGGER.warning('%d float tensors have no calibrated range (they run in FP16): %s',
                           len(missing), ', '.join(missing[:10]))

    def _set_device(self, config: Any, network: Any) -> None:
        trt, settings = self.trt, self.settings
        if settings.dla_core_id < 0:
            return
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(settings.dla_core_id)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        fallback = []
        constant = getattr(trt.LayerType, 'CONSTANT', None)
        for index in range(network.num_layers):
            layer = network.get_layer(index)
            if layer.type == constant:
                continue  # weights / shape constants: no compute to place
            if not config.can_run_on_DLA(layer):
                fallback.append(f'{layer.name} ({layer.type.name})')
        self.report.fallback_layers = fallback
        if fallback:
            LOGGER.warning('%d of %d layers cannot run on %s and fall back to the GPU: %s',
                           len(fallback), network.num_layers, settings.device,
                           ', '.join(fallback))
        else:
            LOGGER.info('all %d layers run on %s', network.num_layers, settings.device)


TYPED_MODEL_VERSION = 1


def prepare_typed_model(settings: EngineSettings, plan: Optional[Int8Plan],
                        images: Sequence[Path], image_key: str, cache_dir: Path,
                        progress: BuildProgress) -> Optional[Path]:
    """Return the strongly typed ONNX to parse for ``settings`` (TensorRT 11), made once.

    None for fp32 or a model that already has Q/DQ nodes (parsed as it is). The model is
    cached in ``cache_dir`` under a key of the model, precision, quantization settings and
    the tool (with its version) that makes it (``strongly_typed.planned_tool``).
    """
    precision = settings.precision
    if precision == 'fp32' or (plan is not None and plan.mode == 'model-qdq'):
        return None
    from ...quantization import strongly_typed

    model = Path(settings.model_path)
    fields = {'model': file_sha256(model), 'precision': precision, 'version': TYPED_MODEL_VERSION,
              'calibration_version': CALIBRATION_VERSION, 'clip_recipe': CLIP_RECIPE_VERSION,
              'tool': strongly_typed.planned_tool(
                  precision, plan.algorithm if plan is not None else '')}
    if plan is not None:  # the schema's KEY_INT8 parameters, and what the plan decided
        fields.update(settings.key_fields((KEY_INT8,)), algorithm=plan.algorithm,
                      images=image_key)
    digest = engine_key(fields)[:12]
    path = cache_dir / f'{_safe(model.stem)}.typed-{precision}-{digest}.onnx'
    if trust.usable(path, 'strongly typed model'):
        LOGGER.info('using cached strongly typed model %s', path)
        return path
    with trust.staging(path) as tmp:
        if precision == 'fp16':
            result = strongly_typed.convert_fp16(model, tmp)
        else:
            assert plan is not None
            LOGGER.info('making the Q/DQ model for TensorRT (%s, %d images)', plan.algorithm,
                        len(images))
            result = strongly_typed.quantize_int8_qdq(
                model, tmp, list(images),
                method=plan.algorithm if plan.algorithm != 'clip' else 'MinMax',
                percentile=settings.percentile, clip_value=settings.clip_value,
                fp16_first_layer=settings.quantize_first_layer,
                fp16_last_layer=settings.quantize_last_layer, progress=progress.calibration)
        for note in result.notes:
            LOGGER.info('strongly typed model: %s', note)
        LOGGER.info('strongly typed %s model by %s in %.1f s: %s', precision, result.tool,
                    result.seconds, path.name)
    return path


def prepare_engine(settings: EngineSettings, trt: Any = None, memory: Any = None,
                   progress: Optional[BuildProgress] = None) -> PreparedEngine:
    """Return a cached engine for ``settings``, building it if needed; see the module contract."""
    trt = trt or import_tensorrt()
    version = trt_version(trt)
    check_supported(version)
    model = Path(settings.model_path)
    if not model.is_file():
        raise ModelContractError(f'model file not found: {model}')
    if settings.dla_core_id >= 0 and settings.precision == 'fp32':
        raise ParameterError('precision', f'fp32 cannot run on {settings.device}: the DLA runs '
                             'FP16 or INT8 only')
    memory = memory or CudaMemory(settings.gpu_id)
    gpu = memory.device_info()
    logger = make_logger(trt, CallbackErrors())
    builder = trt.Builder(logger)
    fast = check_hardware(builder, settings, gpu, version)
    plan = None
    images: List[Path] = []
    image_key = ''
    if settings.precision == 'int8':
        plan = plan_int8(settings, version, model_has_qdq(model))
        if plan.needs_images:
            images = list_calibration_images(settings.calibration_image_list_path,
                                             settings.calibration_num_images)
            image_key = fingerprint(images)
    # The schema's ENGINE parameters (settings.key_fields), then what KEY_CONTENT ones name
    # (model bytes, calibration images, GPU) and what the build itself decided.
    fields: Dict[str, Any] = {
        **settings.key_fields(), 'model_sha256': file_sha256(model),
        'device': 'dla' if settings.dla_core_id >= 0 else 'gpu',
        'trt_version': version_text(version), 'gpu': gpu['name'],
        'compute_capability': list(gpu['compute_capability'])}
    if settings.precision == 'fp32':
        fields['tf32'] = False      # BuilderFlag.TF32 cleared (engines before it allowed it)
    if plan is not None:
        fields.update(int8_path=plan.mode, int8_algorithm=plan.algorithm,
                      calibration_images=image_key, num_images=len(images))
        if plan.mode in ('explicit', 'ranges', 'typed-qdq'):  # made by quantization.*
            fields['calibration_version'] = CALIBRATION_VERSION
        if settings.clip_value > 0:
            fields['clip_recipe_version'] = CLIP_RECIPE_VERSION
    cache = EngineCache(settings.cache_dir)
    progress = progress or BuildProgress()
    typed_model = None
    if supports(version, 'strongly_typed_only'):
        typed_model = prepare_typed_model(settings, plan, images, image_key, cache.directory,
                                          progress)
        fields['strongly_typed'] = True
        if typed_model is not None:
            fields['typed_model_sha256'] = file_sha256(typed_model)
    if settings.max_batch > 1:
        if settings.dla_core_id >= 0:
            raise ParameterError('max_batch', f'{settings.max_batch} needs the GPU (engines on '
                                 f'{settings.device} keep batch 1)')
    key = engine_key(fields)
    name = f'{_safe(model.stem)}.{settings.precision}.{settings.device}'
    if settings.max_batch > 1:
        name += f'.b{settings.max_batch}'

    def build() -> Tuple[bytes, Dict[str, Any]]:
        return EngineBuild(settings, trt, memory, gpu, plan, images, image_key,
                           cache.directory, progress, builder, logger, fast, typed_model).run()

    try:
        entry = cache.get_or_build(name, key, fields, build)
    finally:
        progress.close()
    return PreparedEngine(entry.path, entry.metadata.get('report', {}), entry.built, key, name,
                          cache)
