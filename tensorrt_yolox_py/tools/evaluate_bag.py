"""Replay a rosbag2 through the detector and report COCO accuracy and per-stage latency.

    yolox_evaluate BAG [--gt BAG/ground_truth.json] [--output out/eval] [--model m.onnx]
        [--device cpu] [--topics T ...] [--max-frames N] [--annotate] [--dds]
        [--param name=value]

Reads the bag with the pure-Python ``rosbags`` package (mcap or sqlite3; no ROS install
needed), runs ``pipeline.Detector`` on every ``sensor_msgs/Image`` of each camera topic and
scores the detections with pycocotools against the ground truth (a COCO JSON whose image
entries carry ``topic`` and ``stamp_ns``; ``yolox_make_dataset bag`` writes one into the
bag folder). With ``--dds`` the images go over real DDS into one detector node per topic
instead (``ros.dds_replay``; latency is then the publish-to-answer round trip and the
node's processing time). Writes ``report.json``, ``summary.md``, ``pr_curves.png``,
``latency_hist.png`` (and, with ``--annotate``, annotated frames) and ``run.json`` to the output
folder and prints the tables.

The outputs of one run are replaced together: they are written into a private folder beside
the output folder, which then replaces the output folder as a whole (``trust.replace_folder``),
so a killed run leaves the previous run's complete set, never a mixture. Each carries the run
id (``report.json`` ``info.run_id``, the first lines of ``summary.md``, ``run.json`` with the
sha256 of every file). An output folder holding anything else than these outputs is refused
(exit status 2), never replaced.

The score threshold defaults to 0.01 here (COCO mAP integrates the whole precision-recall
curve; the node's 0.35 would cut it short); pass ``--param score_threshold=0.35`` to score
what the node publishes.
"""

import argparse
import json
import logging
import platform
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import __version__
from ..errors import FileError, YoloxError
from ..params import make_config, PARAMS_BY_NAME
from .cli import add_param_options, param_values

LOGGER = logging.getLogger('yolox_evaluate')
EVAL_SCORE_THRESHOLD = 0.01


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(prog='yolox_evaluate', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('bag', help='rosbag2 folder (or .mcap / .db3 file)')
    parser.add_argument('--gt', help='COCO ground truth (default: <bag>/ground_truth.json)')
    parser.add_argument('--output', default='output/evaluate', help='output folder')
    parser.add_argument('--model', help='ONNX model (default: the bundled demo model)')
    parser.add_argument('--device', choices=PARAMS_BY_NAME['device'].choices,
                        help='gpu / dla0 / dla1 / cpu (default: the schema default)')
    parser.add_argument('--topics', nargs='+', help='image topics (default: all)')
    parser.add_argument('--max-frames', type=int, help='stop after N messages')
    parser.add_argument('--annotate', action='store_true', help='write annotated frames')
    parser.add_argument('--dds', action='store_true',
                        help='replay over DDS into one detector node per topic (needs rclpy '
                             'and vision_msgs) instead of calling the Detector directly')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_param_options(parser)
    return parser


#: Everything an evaluation writes to its output folder.
OUTPUT_NAMES = ('report.json', 'summary.md', 'pr_curves.png', 'latency_hist.png', 'frames',
                'run.json')


def new_run_id() -> str:
    """Return a unique, sortable run id (UTC time + random)."""
    return time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()) + '-' + secrets.token_hex(4)


def prepare_output(out_dir: Path, run_id: str) -> Path:
    """Check ``out_dir`` may be replaced; return the private folder this run writes to."""
    from .. import trust

    out_dir = out_dir.absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    trust.recover_folder(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise FileError(out_dir, f'--output {out_dir} is not a folder')
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in OUTPUT_NAMES)
        if foreign:
            raise FileError(out_dir, f'--output {out_dir} holds files that are not evaluation '
                            f'outputs ({", ".join(foreign[:5])}); the outputs of a run replace '
                            'the whole folder, so choose a new or empty folder')
    return trust.partial_folder(out_dir, run_id)


def commit_output(partial: Path, out_dir: Path, run_id: str) -> None:
    """Record every file's sha256 in run.json, then put the run's folder in place."""
    from .. import trust

    files = {str(p.relative_to(partial)): trust.file_sha256(p)
             for p in sorted(partial.rglob('*')) if p.is_file()}
    trust.write_atomic(partial / 'run.json', json.dumps(
        {'run_id': run_id, 'files': files}, indent=1, sort_keys=True).encode(), digest=False)
    trust.replace_folder(partial, out_dir.absolute())


def write_outputs(report: Dict[str, Any], replay, out_dir: Path, title: str) -> List[Path]:
    """Write report.json, summary.md and the two plots; return their paths."""
    from ..evaluation.report import (accuracy_table, latency_summary, latency_table,
                                     plot_latency_histogram, plot_pr_curves, write_json)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [write_json(report, out_dir / 'report.json')]
    latency = latency_summary(replay.samples)
    acc = replay.result
    md = [f'# {title}', '', f"Run `{report.get('info', {}).get('run_id', '-')}`.", '',
          f"mAP50 **{acc.mAP50:.3f}**, mAP (0.50:0.95) **{acc.mAP:.3f}**, mAP75 "
          f"{acc.mAP75:.3f} on {acc.num_images} frames, {acc.num_ground_truths} objects, "
          f"{acc.num_detections} detections.", '', accuracy_table(acc, markdown=True), '',
          '## Latency (ms per frame)', '', latency_table(latency, markdown=True), '']
    summary = out_dir / 'summary.md'
    summary.write_text('\n'.join(md), encoding='utf-8')
    paths.append(summary)
    if acc.pr_curves:
        paths.append(plot_pr_curves(acc, out_dir / 'pr_curves.png'))
    if replay.samples:
        paths.append(plot_latency_histogram(replay.samples, out_dir / 'latency_hist.png'))
    return paths


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry point ``yolox_evaluate``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] %(name)s: %(message)s')
    from ..evaluation.replay import replay_bag
    from ..evaluation.report import accuracy_table, latency_summary, latency_table
    from ..pipeline import Detector

    bag = Path(args.bag)
    if not bag.exists():
        LOGGER.error('bag not found: %s', bag)
        return 2
    gt_path = Path(args.gt) if args.gt else (bag if bag.is_dir() else bag.parent) / \
        'ground_truth.json'
    try:
        with open(gt_path, encoding='utf-8') as f:
            ground_truth = json.load(f)
    except (OSError, ValueError) as exc:
        LOGGER.error('cannot read the ground truth %s: %s', gt_path, exc)
        return 2
    values = param_values(args, defaults={'score_threshold': EVAL_SCORE_THRESHOLD},
                          shortcuts={'model_path': args.model, 'device': args.device})
    try:
        config = make_config(values)
        detector = Detector.from_config(config)
    except YoloxError as exc:
        LOGGER.error('%s', exc)
        return 2
    out_dir = Path(args.output)
    run_id = new_run_id()
    try:
        partial = prepare_output(out_dir, run_id)
    except YoloxError as exc:
        detector.close()
        LOGGER.error('%s', exc)
        return 2
    annotate_dir = partial / 'frames' if args.annotate else None
    try:
        with detector:
            backend = detector.backend.describe()
            labels = list(detector.labels)
            if not args.dds:
                replay = replay_bag(bag, detector, ground_truth, topics=args.topics,
                                    max_frames=args.max_frames, annotate_dir=annotate_dir,
                                    progress=not args.no_progress)
        if args.dds:
            from ..ros.dds_replay import dds_replay

            replay = dds_replay(bag, ground_truth, values, labels, topics=args.topics,
                                max_frames=args.max_frames, annotate_dir=annotate_dir,
                                progress=not args.no_progress)
    except YoloxError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        LOGGER.error('%s', exc)
        return 2
    report = replay.to_dict()
    report['info'].update({
        'run_id': run_id, 'ground_truth': str(gt_path), 'model': str(config.resolved_model_path),
        'backend': backend, 'score_threshold': config.score_threshold,
        'nms_threshold': config.nms_threshold, 'machine': platform.node(),
        'processor': platform.processor() or platform.machine(),
        'python': platform.python_version(), 'package_version': __version__,
        'date': time.strftime('%Y-%m-%d %H:%M:%S %z')})
    paths = write_outputs(report, replay, partial, f'Evaluation of {bag.name}')
    commit_output(partial, out_dir, run_id)
    paths = [out_dir / p.relative_to(partial) for p in paths] + [out_dir / 'run.json']
    acc = replay.result
    print(f'\n{bag}: {replay.frames} frames ({replay.scored} scored) in {replay.wall_s:.1f} s')
    print(accuracy_table(acc))
    print(f'\nmAP50 {acc.mAP50:.4f}   mAP {acc.mAP:.4f}   mAP75 {acc.mAP75:.4f}\n')
    print(latency_table(latency_summary(replay.samples)))
    print('\nwrote ' + ', '.join(str(p) for p in paths))
    return 0


if __name__ == '__main__':
    sys.exit(main())
