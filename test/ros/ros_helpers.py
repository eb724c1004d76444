"""Helpers of the ROS tests: planted-object images, Image messages with padded rows, waits."""

import time
from typing import Any, Callable, Optional, Tuple

import numpy as np

from tensorrt_yolox_py.devkit.synthetic import CELL

MODEL_HW = (320, 320)  # the planted_model fixture's input size
BACKGROUND = 40


def planted_image(height: int, width: int, cell: Tuple[int, int], encoding: str = 'bgr8',
                  model_hw: Tuple[int, int] = MODEL_HW
                  ) -> Tuple[np.ndarray, Tuple[float, float, float, float]]:
    """Return (image, expected xyxy box in source pixels) for a red square on ``cell``.

    The planted model reports a stride-32 model-input cell that is saturated red; the square
    covers the cell plus a small margin (so bilinear resizing keeps the cell saturated while
    neighbours stay far below the firing level). The expected box is the cell divided by the
    letterbox scale, computed here from the geometry alone.
    """
    scale = min(model_hw[1] / width, model_hw[0] / height)
    gx, gy = cell
    box = (gx * CELL / scale, gy * CELL / scale, (gx + 1) * CELL / scale,
           (gy + 1) * CELL / scale)
    margin = int(np.ceil(4 / scale))
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    red = (0, 0, 255) if encoding == 'bgr8' else (255, 0, 0)
    image[max(int(box[1]) - margin, 0):int(np.ceil(box[3])) + margin,
          max(int(box[0]) - margin, 0):int(np.ceil(box[2])) + margin] = red
    return image, box


def image_msg(image: np.ndarray, encoding: str = 'bgr8', pad: int = 0, frame_id: str = 'cam',
              stamp: Optional[Tuple[int, int]] = None, clock: Any = None) -> Any:
    """Build a sensor_msgs/Image; ``pad`` extra bytes (value 77) end every row (step > w*3)."""
    import array

    from sensor_msgs.msg import Image

    height, width = image.shape[:2]
    step = width * 3 + pad
    rows = np.full((height, step), 77, np.uint8)
    rows[:, :width * 3] = image.reshape(height, width * 3)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=step)
    msg.data = array.array('B', rows.tobytes())
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    elif clock is not None:
        msg.header.stamp = clock.now().to_msg()
    return msg


def publish_until(publisher: Any, msg: Any, done: Callable[[], bool], timeout: float = 30.0,
                  every: float = 0.5) -> bool:
    """Publish ``msg`` every ``every`` s until ``done()`` (DDS discovery takes a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(msg)
        inner = min(time.monotonic() + every, deadline)
        while time.monotonic() < inner:
            if done():
                return True
            time.sleep(0.01)
    return done()


def box_of(detection: Any) -> Tuple[float, float, float, float]:
    """Return a vision_msgs/Detection2D's box as xyxy."""
    c, sx, sy = detection.bbox.center.position, detection.bbox.size_x, detection.bbox.size_y
    return (c.x - sx / 2, c.y - sy / 2, c.x + sx / 2, c.y + sy / 2)
