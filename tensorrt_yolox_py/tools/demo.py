"""The package's main job in one command: detect on the bundled 3-camera bag and report.

    yolox_demo [--output yolox_demo_output] [--bag BAG] [--mode auto|ros|direct]
               [--model m.onnx] [--device cpu|gpu] [--max-frames N]

Plays the bundled sample bag (``data/sample/demo_bag``: 3 cameras x 6 frames of generated
driving scenes, 960x640 bgr8, with ground truth) through the detector and writes, in the
output folder: annotated frames (``frames/<camera>/<stamp>.jpg``), ``report.json``,
``summary.md`` (accuracy per class and latency per stage), ``pr_curves.png`` and
``latency_hist.png``; then prints where they are.

- ``--mode ros`` (the default ``auto`` picks it when rclpy and vision_msgs import): one
  detector node per camera, started by the multi-camera runner in this process, fed over real
  DDS (kept on this machine: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a private
  ROS_DOMAIN_ID, set here) and scored on what the nodes publish (``ros.dds_replay``).
- ``--mode direct``: the same ``pipeline.Detector`` called in-process on every image
  (``evaluation.replay``), for machines without ROS 2.

On a machine without a GPU everything runs on the CPU (ONNX Runtime); about a minute on 2
cores.
"""

import argparse
import importlib.util
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import YoloxError
from ..params import PACKAGE_DIR, make_config, PARAMS_BY_NAME

LOGGER = logging.getLogger('yolox_demo')
SAMPLE_BAG = PACKAGE_DIR / 'data' / 'sample' / 'demo_bag'
#: Scores are kept down to this for mAP; frames show detections from DISPLAY_THRESHOLD.
EVAL_SCORE_THRESHOLD = 0.01
DISPLAY_THRESHOLD = 0.35


def ros_available() -> bool:
    """Return True when rclpy and vision_msgs can be imported."""
    try:
        return (importlib.util.find_spec('rclpy') is not None
                and importlib.util.find_spec('vision_msgs') is not None)
    except (ImportError, ValueError):
        return False


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(prog='yolox_demo', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', default='yolox_demo_output', help='output folder')
    parser.add_argument('--bag', default=str(SAMPLE_BAG), help='rosbag2 with ground truth')
    parser.add_argument('--gt', help='ground truth (default: <bag>/ground_truth.json)')
    parser.add_argument('--mode', choices=('auto', 'ros', 'direct'), default='auto')
    parser.add_argument('--model', help='ONNX model (default: the bundled demo model)')
    parser.add_argument('--device', choices=PARAMS_BY_NAME['device'].choices, default='cpu')
    parser.add_argument('--max-frames', type=int, help='stop after N images')
    parser.add_argument('--threads', type=int, default=1,
                        help='ONNX Runtime threads per detector (default 1: one per camera)')
    parser.add_argument('--no-progress', action='store_true')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry point ``yolox_demo``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] %(name)s: %(message)s')
    from ..evaluation.report import accuracy_table, latency_summary, latency_table
    from .evaluate_bag import commit_output, new_run_id, prepare_output, write_outputs

    bag = Path(args.bag)
    gt_path = Path(args.gt) if args.gt else bag / 'ground_truth.json'
    try:
        ground_truth = json.loads(gt_path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as exc:
        LOGGER.error('cannot read the ground truth %s: %s', gt_path, exc)
        return 2
    mode = args.mode
    if mode == 'auto':
        mode = 'ros' if ros_available() else 'direct'
        LOGGER.info('mode: %s (%s)', mode, 'rclpy and vision_msgs found' if mode == 'ros'
                    else 'rclpy or vision_msgs not importable')
    params: Dict[str, Any] = {'device': args.device, 'score_threshold': EVAL_SCORE_THRESHOLD,
                              'num_threads': args.threads, 'preprocess_on_gpu':
                              args.device != 'cpu'}
    if args.model:
        params['model_path'] = str(Path(args.model).resolve())
    out_dir = Path(args.output)
    run_id = new_run_id()
    partial: Optional[Path] = None
    start = time.perf_counter()
    try:
        config = make_config(params)
        partial = prepare_output(out_dir, run_id)     # the outputs replace out_dir as a whole
        frames_dir = partial / 'frames'
        labels = _labels(config)
        if mode == 'ros':
            from ..ros.dds_replay import dds_replay

            replay = dds_replay(bag, ground_truth, params, labels, max_frames=args.max_frames,
                                annotate_dir=frames_dir, annotate_threshold=DISPLAY_THRESHOLD,
                                progress=not args.no_progress)
        else:
            from ..evaluation.replay import replay_bag
            from ..pipeline import Detector

            with Detector.from_config(config) as detector:
                replay = replay_bag(bag, detector, ground_truth, max_frames=args.max_frames,
                                    annotate_dir=frames_dir, progress=not args.no_progress,
                                    annotate_threshold=DISPLAY_THRESHOLD)
                replay.info['backend'] = detector.backend.describe()
    except YoloxError as exc:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        LOGGER.error('%s', exc)
        return 2
    report = replay.to_dict()
    report['info'].update({'run_id': run_id, 'mode': mode,
                           'model': str(config.resolved_model_path),
                           'ground_truth': str(gt_path), 'device': args.device,
                           'score_threshold': EVAL_SCORE_THRESHOLD,
                           'display_threshold': DISPLAY_THRESHOLD,
                           'date': time.strftime('%Y-%m-%d %H:%M:%S %z')})
    paths = write_outputs(report, replay, partial, f'yolox_demo ({mode} mode) on {bag.name}')
    commit_output(partial, out_dir, run_id)
    paths = [out_dir / p.relative_to(partial) for p in paths]
    frames_dir = out_dir / 'frames'
    acc = replay.result
    print(f'\n{replay.frames} frames from {len(replay.per_topic)} cameras ({mode} mode, '
          f'{args.device}) in {time.perf_counter() - start:.1f} s')
    print(accuracy_table(acc))
    print(f'\nmAP50 {acc.mAP50:.3f}   mAP {acc.mAP:.3f}\n')
    print(latency_table(latency_summary(replay.samples)))
    print(f'\nannotated frames: {frames_dir.resolve()}')
    print('evaluation summary: ' + ', '.join(str(p.resolve()) for p in paths))
    return 0


def _labels(config) -> List[str]:
    from ..labels import load_labels

    return load_labels(config.resolved_label_path)


if __name__ == '__main__':
    sys.exit(main())
