"""Detections -> vision_msgs (Detection2DArray, LabelInfo), and the annotated debug image.

Contract:

- ``to_detection2d_array(detections, labels, header)``: one ``Detection2D`` per detection, in
  the detections' order (descending score). ``results`` holds one ``ObjectHypothesisWithPose``
  with ``hypothesis.class_id`` = the label NAME (``class_<id>`` if the id has no label) and
  ``hypothesis.score`` = the detection score; its pose is left zero (2D detector).
  ``bbox.center.position`` = box centre and ``bbox.size_x/size_y`` = box width/height, in
  SOURCE-image pixels (x right, y down), ``theta`` = 0. The array's header and every
  detection's header are copies of ``header`` (the input image's stamp and frame_id).
- ``to_label_info(labels, threshold, header)``: ``class_map`` = (index, name) pairs,
  ``threshold`` = the score threshold.

vision_msgs / std_msgs are imported at first use (``vision_msgs`` is built by
scripts/build_vision_msgs.sh where no ROS 2 distribution provides it).
"""

from typing import Any, Sequence

import numpy as np

from .._lazy import require
from ..stages.postprocess import Detections

_BUILD_HINT = ('bash scripts/build_vision_msgs.sh .venv (or install ros-<distro>-vision-msgs '
               'from your ROS 2 distribution)')


def _vision_msgs() -> Any:
    return require('vision_msgs.msg', 'publishing detections', _BUILD_HINT)


def label_name(labels: Sequence[str], class_id: int) -> str:
    """Return ``labels[class_id]``, or ``class_<id>`` when the id has no label."""
    return labels[class_id] if 0 <= class_id < len(labels) else f'class_{class_id}'


def copy_header(header: Any) -> Any:
    """Return a new std_msgs/Header with the same stamp and frame_id."""
    std_msgs = require('std_msgs.msg', 'publishing detections', 'pip install ros-std-msgs')
    builtin = require('builtin_interfaces.msg', 'publishing detections',
                      'pip install ros-builtin-interfaces')
    stamp = builtin.Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec)
    return std_msgs.Header(stamp=stamp, frame_id=header.frame_id)


def to_detection2d_array(detections: Detections, labels: Sequence[str], header: Any) -> Any:
    """Build a vision_msgs/Detection2DArray from detections in source-image pixels."""
    vm = _vision_msgs()
    out = vm.Detection2DArray(header=copy_header(header))
    boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(detections.scores, dtype=np.float64).reshape(-1)
    class_ids = np.asarray(detections.class_ids).reshape(-1)
    items = []
    for (x1, y1, x2, y2), score, class_id in zip(boxes.tolist(), scores.tolist(),
                                                 class_ids.tolist()):
        hypothesis = vm.ObjectHypothesisWithPose(
            hypothesis=vm.ObjectHypothesis(class_id=label_name(labels, int(class_id)),
                                           score=float(score)))
        bbox = vm.BoundingBox2D(
            center=vm.Pose2D(position=vm.Point2D(x=(x1 + x2) / 2.0, y=(y1 + y2) / 2.0),
                             theta=0.0),
            size_x=x2 - x1, size_y=y2 - y1)
        items.append(vm.Detection2D(header=copy_header(header), results=[hypothesis],
                                    bbox=bbox, id=''))
    out.detections = items
    return out


def to_label_info(labels: Sequence[str], threshold: float, header: Any) -> Any:
    """Build a vision_msgs/LabelInfo: class ids 0..C-1 with their names, and the threshold."""
    vm = _vision_msgs()
    class_map = [vm.VisionClass(class_id=index, class_name=name)
                 for index, name in enumerate(labels)]
    return vm.LabelInfo(header=copy_header(header), class_map=class_map,
                        threshold=float(threshold))
