"""Draw detections on an image (the node's ``~/out/image``, the demo and the evaluator).

Contract: ``image`` a ``SourceImage`` or an (H, W, C) uint8 array in ``encoding`` (any of
``image.ENCODINGS``); boxes in the same (source-image) pixel frame as ``Detections``.
``draw_detections`` returns a new contiguous (H, W, 3) array in ``annotated_encoding(encoding)``
(bgr8 / rgb8 stay as they are, every other encoding is drawn on its BGR conversion); the input
is not modified.
"""

from typing import Any, Optional, Sequence

import numpy as np

from .image import as_source
from .stages.postprocess import Detections


def annotated_encoding(encoding: str) -> str:
    """Return the encoding of the image ``draw_detections`` makes from an ``encoding`` frame."""
    return encoding if encoding in ('bgr8', 'rgb8') else 'bgr8'


#: One BGR colour per class id (cycled).
PALETTE = ((56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
           (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0))


def draw_detections(image: Any, detections: Detections, labels: Sequence[str],
                    encoding: Optional[str] = None) -> np.ndarray:
    """Return a copy of ``image`` with each box, label name and score drawn on it."""
    import cv2

    source = as_source(image, encoding)
    encoding = annotated_encoding(source.encoding.name)
    pixels = source.pixels if source.encoding.packed_bgr else source.to_bgr()
    canvas = np.ascontiguousarray(pixels).copy()
    thickness = max(1, round(min(canvas.shape[:2]) / 400))
    for box, score, class_id in zip(detections.boxes, detections.scores,
                                    detections.class_ids):
        colour = PALETTE[int(class_id) % len(PALETTE)]
        if encoding == 'rgb8':
            colour = colour[::-1]
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        name = labels[class_id] if 0 <= class_id < len(labels) else f'class_{class_id}'
        text = f'{name} {score:.2f}'
        scale = 0.4 * thickness
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(y1 - th - base, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw, top + th + base), colour, -1)
        cv2.putText(canvas, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
