"""Run the detector on image files and write annotated images and a JSON of detections.

    yolox_detect IMAGE_OR_FOLDER [...] --output out/ [--model m.onnx] [--device cpu]
        [--param name=value ...]

Every parameter of the schema can be given with ``--param name=value`` (or a ROS parameter
file with ``--params-file``); unknown or invalid ones stop the tool with a message naming them.
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from ..errors import YoloxError
from ..image import SourceImage
from ..params import make_config, PARAMS_BY_NAME
from .cli import add_param_options, param_values

LOGGER = logging.getLogger('yolox_detect')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


def collect_images(paths: List[str]) -> List[Path]:
    """Expand folders into their image files (sorted); keep files as given."""
    images: List[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            images += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            images.append(item)
    return images


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', nargs='+', help='image files or folders')
    parser.add_argument('--output', default='output/detect', help='output folder')
    parser.add_argument('--model', help='ONNX model (default: the bundled demo model)')
    parser.add_argument('--device', choices=PARAMS_BY_NAME['device'].choices)
    add_param_options(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] %(name)s: %(message)s')

    import cv2

    from ..pipeline import Detector
    from ..visualize import draw_detections

    try:
        config = make_config(param_values(args, shortcuts={'model_path': args.model,
                                                           'device': args.device}))
        detector = Detector.from_config(config)
    except YoloxError as exc:
        LOGGER.error('%s', exc)
        return 2
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = []
    with detector:
        for path in collect_images(args.inputs):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                LOGGER.warning('skipping %s: not a readable image', path)
                continue
            result = detector.detect(SourceImage.from_array(image, 'bgr8'))
            det = result.detections
            cv2.imwrite(str(out_dir / f'{path.stem}_det.jpg'),
                        draw_detections(image, det, detector.labels))
            report.append({
                'image': str(path), 'timings_ms': result.timings,
                'detections': [{'label': detector.label_of(int(c)), 'score': float(s),
                                'box_xyxy': [float(v) for v in b]}
                               for b, s, c in zip(det.boxes, det.scores, det.class_ids)]})
            print(f'{path.name}: {len(det)} detections, {result.timings["total"]:.1f} ms')
    (out_dir / 'detections.json').write_text(json.dumps(report, indent=2) + '\n')
    print(f'wrote {len(report)} annotated images and detections.json to {out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
