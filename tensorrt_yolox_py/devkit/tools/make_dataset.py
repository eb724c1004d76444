"""Generate the package's driving-scene data: COCO folders, rosbag2 recordings, previews.

    yolox_make_dataset coco OUT [--split train|val|test] [--frames N] [--size H W]
    yolox_make_dataset bag OUT [--cameras 3] [--frames 10] [--size H W] [--seed S]
                               [--storage mcap|sqlite3] [--no-compress]
    yolox_make_dataset preview OUT [--split test] [--frames 6]

Frames are rendered at 1920x1280 (``data.scene``) and, with ``--size``, resized to H x W
(boxes scaled alike); the same seeds always give the same frames. ``coco`` writes
``OUT/images/*.png`` + ``OUT/annotations.json`` (``yolox_train --data`` reads it); ``bag``
writes a rosbag2 with one ``sensor_msgs/Image`` topic per camera plus
``OUT/ground_truth.json`` (what ``yolox_evaluate`` scores against); ``preview`` writes JPEGs
with the labelled boxes drawn (green) and the ignored ones (red).
"""

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

from ..dataset import (TEST_SEED, TRAIN_SEED, VAL_SEED, frame_seed, generate_frames,
                       write_coco)
from ..sprites import CLASS_NAMES

SPLITS = {'train': TRAIN_SEED, 'val': VAL_SEED, 'test': TEST_SEED}
LOGGER = logging.getLogger('yolox_make_dataset')


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(prog='yolox_make_dataset', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    for name in ('coco', 'bag', 'preview'):
        p = sub.add_parser(name)
        p.add_argument('out', help='output folder (must not exist for bag)')
        p.add_argument('--size', nargs=2, type=int, metavar=('H', 'W'), default=None,
                       help='resize frames to H x W (default: 1280 x 1920)')
        p.add_argument('--workers', type=int, default=0, help='processes (0: all cores)')
        if name == 'bag':
            p.add_argument('--cameras', type=int, default=3)
            p.add_argument('--frames', type=int, default=10, help='frames per camera')
            p.add_argument('--seed', type=int, default=0)
            p.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
            p.add_argument('--no-compress', action='store_true')
        else:
            p.add_argument('--split', choices=sorted(SPLITS), default='train' if name == 'coco'
                           else 'test')
            p.add_argument('--frames', type=int, default=100 if name == 'coco' else 6)
            p.add_argument('--start', type=int, default=0, help='first frame index')
            if name == 'coco':
                p.add_argument('--jpeg', action='store_true', help='JPEG (q95) instead of PNG')
    return parser


def _preview(frames, out: Path) -> List[Path]:
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for frame in frames:
        image = frame.image.copy()
        scale = max(image.shape[1] / 960, 1.0)
        for boxes, labels, colour in ((frame.boxes, frame.labels, (0, 220, 0)),
                                      (frame.ignored_boxes, frame.ignored_labels, (0, 0, 230))):
            for box, label in zip(boxes.astype(int), labels):
                cv2.rectangle(image, (box[0], box[1]), (box[2] - 1, box[3] - 1), colour,
                              max(int(scale), 1))
                cv2.putText(image, CLASS_NAMES[int(label)], (box[0], max(box[1] - 4, 10)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, colour, max(int(scale), 1))
        path = out / f'{frame.seed:012d}.jpg'
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def main(argv: Optional[List[str]] = None) -> int:
    """Console entry point ``yolox_make_dataset``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] %(name)s: %(message)s')
    size = tuple(args.size) if args.size else None
    if size is not None and (size[0] < 32 or size[1] < 32):
        LOGGER.error('--size must be at least 32 x 32, got %s', size)
        return 2
    if args.frames < 1:
        LOGGER.error('--frames must be at least 1')
        return 2
    out = Path(args.out)
    start = time.perf_counter()
    if args.command == 'bag':
        from ...data.rosbag_io import GROUND_TRUTH_NAME
        from ..scene_bag import write_scene_bag

        if out.exists():
            LOGGER.error('%s exists already; rosbag2 writers never overwrite a bag', out)
            return 2
        write_scene_bag(out, args.cameras, args.frames, args.seed, size,
                        compress=not args.no_compress, storage=args.storage)
        size_mb = sum(p.stat().st_size for p in out.iterdir()) / 1e6
        print(f'wrote {out} ({args.cameras} cameras x {args.frames} frames, {size_mb:.1f} MB, '
              f'{time.perf_counter() - start:.1f} s) and {out / GROUND_TRUTH_NAME}')
        return 0
    seeds = [frame_seed(SPLITS[args.split], args.start + i) for i in range(args.frames)]
    frames = generate_frames(seeds, size, args.workers)
    if args.command == 'coco':
        path = write_coco(frames, str(out), '.jpg' if args.jpeg else '.png', progress=True)
        print(f'wrote {len(seeds)} {args.split} frames and {path} '
              f'({time.perf_counter() - start:.1f} s)')
    else:
        paths = _preview(frames, out)
        print(f'wrote {len(paths)} previews to {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
