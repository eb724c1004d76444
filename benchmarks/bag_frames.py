"""Export the bundled bag's frames to one .npz, for machines without ``rosbags`` (the H100).

``rosbags`` needs binary compression wheels (lz4, zstd) that the GPU machine lacks; the GPU
equality test (test/test_gpu_torch.py) reads this file there instead of the bag. Written
here, where rosbags is installed; git-ignored (20 MB), so it goes to the GPU machine through
the device tool's carry list.

    .venv/bin/python benchmarks/bag_frames.py [--out bag_frames.npz]
"""

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BAG = ROOT / 'tensorrt_yolox_py' / 'data' / 'sample' / 'demo_bag'
DEFAULT_OUT = ROOT / 'bag_frames.npz'


def write(out: Path = DEFAULT_OUT, bag: Path = BAG) -> int:
    """Write every image of ``bag`` (in log order) to ``out``; return the frame count."""
    sys.path.insert(0, str(ROOT))
    from tensorrt_yolox_py.data.rosbag_io import read_images

    arrays: Dict[str, np.ndarray] = {}
    meta: List[str] = []
    for index, frame in enumerate(read_images(bag)):
        arrays[f'image{index}'] = np.ascontiguousarray(frame.image)
        meta.append(f'{frame.topic}\t{frame.encoding}\t{frame.stamp_ns}')
    np.savez_compressed(out, meta=np.array(meta), **arrays)
    return len(meta)


def load(path: Path = DEFAULT_OUT) -> List[Tuple[np.ndarray, str]]:
    """Return [(image, encoding)] from a file written by ``write``."""
    with np.load(path) as data:
        meta = [str(m).split('\t') for m in data['meta']]
        return [(data[f'image{i}'], m[1]) for i, m in enumerate(meta)]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    count = write(args.out)
    sys.stdout.write(f'{count} frames -> {args.out} ({args.out.stat().st_size} bytes)\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
