r"""Build (and calibrate) a TensorRT engine ahead of time, into the engine cache the node uses.

    yolox_build_engine --model yolox.onnx --precision int8 --device dla0 \\
        --calibration-images calib_list.txt [--calibration-algorithm MinMax] \\
        [--int8-mode auto] [--clip-value 6.0] [--cache-dir ~/.cache/tensorrt_yolox_py] \\
        [--params-file config/yolox.param.yaml] [--param name=value ...] [--json report.json]

The same parameters as the node (``build_only`` mode): a node started later with the same
parameters finds the engine in the cache and starts in seconds. Shows a progress bar for
calibration and TensorRT's build phases, then a summary: precision, device, INT8 path and why,
layers that fell back from the DLA to the GPU, layers kept in FP16, build time, engine size.
Exit status: 0 built or found, 2 bad parameters / model / a cache folder others could write
(``trust.check_folder``), 3 TensorRT or CUDA failure.
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import MissingDependencyError, ModelContractError, ParameterError, YoloxError
from ..params import DEVICES, make_config, PARAMS_BY_NAME
from .cli import add_param_options, param_values
from ..trust import UntrustedPathError

LOGGER = logging.getLogger('yolox_build_engine')


class BarProgress:
    """tqdm bars for calibration images and TensorRT build phases (thread-safe enough)."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._calibration = None
        self._phases: Dict[str, Any] = {}

    def calibration(self, done: int, total: int) -> None:
        """Advance the calibration bar."""
        if self._calibration is None:
            self._calibration = self._tqdm(total=total, desc='calibration', unit='img')
        self._calibration.n = done
        self._calibration.refresh()
        if done >= total:
            self._calibration.close()
            self._calibration = None

    def phase(self, name: str, step: int, steps: int) -> None:
        """Advance the bar of TensorRT build phase ``name``."""
        bar = self._phases.get(name)
        if bar is None:
            if step >= steps:
                return
            bar = self._phases[name] = self._tqdm(total=steps, desc=name[:40], unit='step',
                                                  leave=False)
        bar.n = min(step, steps)
        bar.refresh()
        if step >= steps:
            bar.close()
            self._phases.pop(name, None)

    def close(self) -> None:
        """Close any bar still open."""
        for bar in list(self._phases.values()):
            bar.close()
        self._phases.clear()
        if self._calibration is not None:
            self._calibration.close()
            self._calibration = None


def summary_lines(path: Path, report: Dict[str, Any], built: bool) -> List[str]:
    """Return the human-readable summary of a prepared engine."""
    size = report.get('engine_bytes') or (path.stat().st_size if path.is_file() else 0)
    lines = [f'engine      : {path} ({size / 1e6:.2f} MB, '
             f'{"built now" if built else "found in the cache"})',
             f"TensorRT    : {report.get('trt_version', '?')} on {report.get('gpu', '?')}",
             f"precision   : {report.get('precision', '?')}",
             f"device      : {report.get('device', '?')}"]
    if report.get('int8_path'):
        lines.append(f"INT8 path   : {report['int8_path']} - {report.get('int8_reason', '')}")
    if report.get('calibration'):
        lines.append(f"calibration : {report['calibration']}, "
                     f"{report.get('calibration_images', 0)} images")
    if report.get('ranges_set'):
        lines.append(f"ranges      : {report['ranges_set']} tensors set, "
                     f"{report.get('ranges_missing', 0)} without a range")
    if report.get('device', 'gpu') != 'gpu':
        fallback = report.get('fallback_layers', [])
        lines.append(f'GPU fallback: {len(fallback)} of {report.get("num_layers", "?")} layers'
                     + (': ' + ', '.join(fallback) if fallback else ''))
    if report.get('fp16_layers'):
        lines.append(f"FP16 layers : {', '.join(report['fp16_layers'])}")
    lines.append(f"build time  : {report.get('build_seconds', 0.0):.1f} s"
                 + ('' if built else ' (when it was built)'))
    lines.append(f"warnings    : {report.get('warnings', 0)} TensorRT warnings (see the log)")
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', help='YOLOX ONNX model (default: the bundled demo model)')
    parser.add_argument('--precision', choices=PARAMS_BY_NAME['precision'].choices)
    parser.add_argument('--device', choices=[d for d in DEVICES if d != 'cpu'])
    parser.add_argument('--calibration-images',
                        help='text file listing calibration images, or a folder of images')
    parser.add_argument('--calibration-algorithm',
                        choices=PARAMS_BY_NAME['calibration_algorithm'].choices)
    parser.add_argument('--int8-mode', choices=PARAMS_BY_NAME['int8_mode'].choices)
    parser.add_argument('--clip-value', type=float)
    parser.add_argument('--cache-dir', help='engine cache folder (engine_cache_dir)')
    add_param_options(parser)
    parser.add_argument('--json', help='also write the build report to this JSON file')
    parser.add_argument('--no-progress', action='store_true', help='log instead of bars')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] %(name)s: %(message)s')

    values = param_values(args, shortcuts={
        'model_path': args.model, 'precision': args.precision, 'device': args.device,
        'calibration_image_list_path': args.calibration_images,
        'calibration_algorithm': args.calibration_algorithm, 'int8_mode': args.int8_mode,
        'clip_value': args.clip_value, 'engine_cache_dir': args.cache_dir})
    values['build_only'] = True
    if values.get('device') == 'cpu':
        LOGGER.error('device cpu uses ONNX Runtime: there is no TensorRT engine to build')
        return 2
    try:
        config = make_config(values)
        from ..backends.tensorrt.builder import BuildProgress, EngineSettings, prepare_engine

        progress = BuildProgress() if args.no_progress else BarProgress()
        prepared = prepare_engine(EngineSettings.from_config(config), progress=progress)
    except (ParameterError, ModelContractError, MissingDependencyError,
            UntrustedPathError) as exc:
        LOGGER.error('%s', exc)
        return 2
    except YoloxError as exc:
        LOGGER.error('%s', exc)
        return 3
    for line in summary_lines(prepared.path, prepared.report, prepared.built):
        print(line)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {'engine': str(prepared.path), 'built': prepared.built, 'key': prepared.key,
             'report': prepared.report}, indent=2, sort_keys=True) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
