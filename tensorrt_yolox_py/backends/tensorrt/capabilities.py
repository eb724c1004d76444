"""What each TensorRT version can do: the one table every version decision reads.

Contract:

- ``CAPABILITIES``: name -> ``Capability`` (first version that has it, first version that no
  longer has it, what it means, and the TensorRT API names only that capability may use).
  Every version comparison in this package goes through ``supports(version, name)``; a test
  checks each ``api_names`` entry against the real API manifests of 8.6.1, 10.3.0, 10.13.3.9,
  10.16.1.11 and 11.4.0.106 (present exactly where the capability says so), and that every
  TensorRT name the package uses either exists in all of them or is listed here.
- ``SUPPORTED``: the versions this package drives ([8.6, 12.0)); ``check_supported`` raises
  for the others. TensorRT 8.5 (JetPack 5.1) is refused for its platform, not its API: the
  named-tensor API exists in 8.5 (NVIDIA/TensorRT tag 8.5.2 ``python/src``; the names-only
  manifest ``test/trt_api/manifests/source-tensorrt-8.5.2.json``), but JetPack 5.1's bindings
  are for Python 3.8 (the package's floor is 3.10) and its CUDA 11.4 predates cuda.core's.
- ``dla_support(version) -> (bool, reason)``: whether that TensorRT release drives a DLA
  (NVIDIA's support matrices: 8.6 and 10.0-10.7 on JetPack 6 Orin; none in 10.8-10.16 and
  11.0-11.4.0; 11.4.1+ on AGX Orin with JetPack 7.2.2+, strongly typed networks only).
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

Version = Tuple[int, int, int]


@dataclass(frozen=True)
class Capability:
    """One version-dependent behaviour of TensorRT's Python API."""

    since: Version
    until: Optional[Version]   # first version without it; None = still there
    meaning: str
    api_names: Tuple[str, ...] = ()


CAPABILITIES: Dict[str, Capability] = {
    'explicit_batch_flag': Capability(
        (8, 6, 0), (10, 0, 0),
        'networks must be created with NetworkDefinitionCreationFlag.EXPLICIT_BATCH '
        '(deprecated and ignored from 10.0, gone in 11)',
        ('NetworkDefinitionCreationFlag.EXPLICIT_BATCH',)),
    'weak_typing': Capability(
        (8, 6, 0), (11, 0, 0),
        'precision chosen by builder flags (FP16 / INT8) and per-layer precision pins; '
        'TensorRT 11 builds strongly typed networks only',
        ('BuilderFlag.FP16', 'BuilderFlag.INT8', 'BuilderFlag.PREFER_PRECISION_CONSTRAINTS',
         'ILayer.precision', 'ILayer.set_output_type')),
    'implicit_int8': Capability(
        (8, 6, 0), (11, 0, 0),
        'implicit INT8 quantization: IInt8*Calibrator calibrators and explicit dynamic '
        'ranges (deprecated from 10.1, removed in 11)',
        ('IInt8EntropyCalibrator2', 'IInt8MinMaxCalibrator', 'IInt8LegacyCalibrator',
         'IBuilderConfig.int8_calibrator', 'ITensor.set_dynamic_range',
         'IBuilderConfig.set_calibration_profile')),
    'implicit_int8_preferred': Capability(
        (8, 6, 0), (10, 1, 0),
        'implicit calibration is not yet deprecated (10.1 supersedes it by explicit '
        'quantization): the auto INT8 path calibrates implicitly'),
    'platform_queries': Capability(
        (8, 6, 0), (10, 5, 0),
        'Builder.platform_has_fast_fp16 / _int8 are the way to ask for fast precisions '
        '(deprecated from 10.5 in favour of CUDA queries, removed in 11)',
        ('Builder.platform_has_fast_fp16', 'Builder.platform_has_fast_int8')),
    'progress_monitor': Capability(
        (10, 0, 0), None, 'IProgressMonitor reports build phases',
        ('IProgressMonitor', 'IBuilderConfig.progress_monitor')),
    'strongly_typed_flag': Capability(
        (10, 0, 0), None, 'NetworkDefinitionCreationFlag.STRONGLY_TYPED exists',
        ('NetworkDefinitionCreationFlag.STRONGLY_TYPED',)),
    'strongly_typed_only': Capability(
        (11, 0, 0), None,
        'only strongly typed networks: precision comes from the ONNX tensor types (FP16 '
        'model, Q/DQ INT8 model)'),
    'inspector_io_tensors_key': Capability(
        (11, 0, 0), None,
        "the engine inspector's engine information lists I/O tensors under 'I/O Tensors' "
        "(before: 'Bindings')"),
}

#: Versions this package drives: [first, end).
SUPPORTED = ((8, 6, 0), (12, 0, 0))


def supports(version: Version, name: str) -> bool:
    """Return whether TensorRT ``version`` has capability ``name``."""
    cap = CAPABILITIES[name]
    return tuple(version) >= cap.since and (cap.until is None or tuple(version) < cap.until)


def version_text(version: Version) -> str:
    """Return 'major.minor.patch'."""
    return '.'.join(str(v) for v in version)


def unsupported_reason(version: Version) -> str:
    """Return why this package cannot drive ``version`` ('' when it can)."""
    first, end = SUPPORTED
    if tuple(version)[:2] == (8, 5):
        return (f'TensorRT {version_text(version)} (JetPack 5.1) is not supported: its Python '
                'API has every call this package makes (NVIDIA\'s 8.5.2 binding '
                'sources), but JetPack 5.1\'s TensorRT bindings are built for Python 3.8 '
                '(this package needs 3.10 or newer) and its CUDA 11.4 is older than the '
                'CUDA 12 that cuda.core needs; use JetPack 6 (TensorRT 8.6 / 10.3) '
                '(docs/tensorrt.md, "JetPack 5.1")')
    if tuple(version) < first:
        return (f'TensorRT {version_text(version)} is too old: this package needs TensorRT 8.6 '
                'or newer (execute_async_v3, named I/O tensors)')
    if tuple(version) >= end:
        return (f'TensorRT {version_text(version)} is newer than any version this package '
                'was checked against (8.6 to 11.x)')
    return ''


#: (first, end, has DLA, why) by release range, from NVIDIA's support matrices.
DLA_RELEASES = (
    ((8, 6, 0), (10, 0, 0), True, 'TensorRT 8.6 (JetPack 6.0) drives the Orin DLA'),
    ((10, 0, 0), (10, 8, 0), True, 'TensorRT 10.0-10.7 (JetPack 6.1/6.2: 10.3) drive the '
     'Orin DLA'),
    ((10, 8, 0), (11, 0, 0), False, 'TensorRT 10.8-10.16 have no DLA support'),
    ((11, 0, 0), (11, 4, 1), False, 'TensorRT 11.0-11.4.0 have no DLA support (11.4.1 brings '
     'it back on AGX Orin, JetPack 7.2.2+)'),
    ((11, 4, 1), (12, 0, 0), True, 'TensorRT 11.4.1+ drives the AGX Orin DLA (JetPack '
     '7.2.2+), strongly typed networks only'),
)


def dla_support(version: Version) -> Tuple[bool, str]:
    """Return (whether this TensorRT release drives a DLA, why)."""
    for first, end, has, why in DLA_RELEASES:
        if first <= tuple(version) < end:
            return has, why
    return False, f'TensorRT {version_text(version)} is not supported'
