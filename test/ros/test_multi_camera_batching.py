"""Batched cameras in the multi-camera runner over real DDS: each camera gets its own answer.

Three cameras with ``max_batch: 3`` share one detector (planted model, ONNX Runtime, dynamic
batch); each publishes a different planted object with its own frame_id and stamp, and each
camera's objects topic must carry exactly its own header and box.
"""

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import yaml
from ros_helpers import box_of, image_msg, planted_image, publish_until

pytestmark = pytest.mark.ros

CELLS = [(1, 1), (4, 2), (6, 5)]


def test_three_batched_cameras_answer_each_with_its_own_header(ros: Any, cpu_params: dict,
                                                               tmp_path: Path) -> None:
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from tensorrt_yolox_py.batching import BatchClient
    from tensorrt_yolox_py.ros.camera_mapping import load_cameras_file
    from tensorrt_yolox_py.ros.multi_camera import create_nodes

    config = {'namespace': '/batch', 'parameters': {**cpu_params, 'max_batch': 3,
                                                    'batch_wait_ms': 20.0},
              'cameras': [{'name': f'cam{i}', 'image_topic': f'/batch_images/cam{i}',
                           'device': 'cpu', 'objects_topic': f'/batch_objects/cam{i}'}
                          for i in range(3)]}
    path = tmp_path / 'cameras.yaml'
    path.write_text(yaml.safe_dump(config))
    nodes = create_nodes(load_cameras_file(path), context=ros.context)
    for node in nodes:
        ros.add(node)
    assert all(isinstance(node.detector, BatchClient) for node in nodes)
    assert len({id(node.detector.group) for node in nodes}) == 1
    peer = ros.peer()
    outputs: Dict[int, List[Any]] = {i: [] for i in range(3)}
    publishers = []
    for i in range(3):
        peer.create_subscription(Detection2DArray, f'/batch_objects/cam{i}', outputs[i].append,
                                 10)
        publishers.append(peer.create_publisher(Image, f'/batch_images/cam{i}', 10))
    expected = {}
    for i, cell in enumerate(CELLS):
        image, expected[i] = planted_image(480, 640, cell)
        msg = image_msg(image, 'bgr8', 4 * i, f'frame_cam{i}', stamp=(7 * i + 1, 5))
        assert publish_until(publishers[i], msg, lambda: len(outputs[i]) >= 1), i
    for i in range(3):
        assert {m.header.frame_id for m in outputs[i]} == {f'frame_cam{i}'}
        assert {m.header.stamp.sec for m in outputs[i]} == {7 * i + 1}
        boxes = [box_of(d) for m in outputs[i] for d in m.detections]
        assert boxes, i
        for box in boxes:
            np.testing.assert_allclose(box, expected[i], atol=0.5)
