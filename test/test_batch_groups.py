"""Batch groups of the multi-camera runner (no ROS): who shares, DLA cameras alone, closing.

The shared detector is a real ``Detector`` over the planted model (ONNX Runtime, dynamic
batch); the reference is the same model run per camera. cameras.yaml: a shared max_batch does
not reach DLA cameras.
"""

import threading
from pathlib import Path

import numpy as np
import pytest

from tensorrt_yolox_py.batching import BatchClient, BatchGroups
from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.image import SourceImage
from tensorrt_yolox_py.params import make_config
from tensorrt_yolox_py.pipeline import Detector
from tensorrt_yolox_py.ros.camera_mapping import CameraConfigError, load_cameras_file, node_specs


def _planted_image(cell):
    image = np.random.default_rng(cell[0]).integers(40, 200, (320, 320, 3), dtype=np.uint8)
    gx, gy = cell
    image[gy * 32:gy * 32 + 32, gx * 32:gx * 32 + 32] = (0, 0, 255)
    return SourceImage.from_array(image)


def test_cameras_sharing_a_model_share_one_batched_detector(planted_model):
    made = []

    def make(config):
        made.append(config)
        return Detector.from_config(config)

    groups = BatchGroups(make)
    config = make_config({'model_path': str(planted_model), 'device': 'cpu', 'max_batch': 3,
                          'batch_wait_ms': 200.0, 'preprocess_on_gpu': False})
    clients = [groups.factory(f'cam{i}')(config) for i in range(3)]
    alone = groups.factory('solo')(config.replace(max_batch=1))
    assert len(made) == 2 and all(isinstance(c, BatchClient) for c in clients)
    assert not isinstance(alone, BatchClient)
    shared = clients[0].group
    assert all(c.group is shared for c in clients)
    assert clients[0].backend.capabilities.max_batch == 3 and clients[0].labels

    cells = [(1, 1), (4, 2), (6, 5)]
    results = [None] * 3

    def camera(i):
        results[i] = clients[i].detect(_planted_image(cells[i]))

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for i, cell in enumerate(cells):
        want = alone.detect(_planted_image(cell)).detections
        got = results[i].detections
        assert got.class_ids.tolist() == want.class_ids.tolist() == [1]
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-4)
    assert max(r.batch_size for r in results) > 1          # at least two shared a call
    with pytest.raises(InputError, match='expected a SourceImage'):
        clients[0].detect(np.zeros((4, 3, 3), np.uint8))   # bad input: only this camera
    clients[0].close()
    clients[0].close()                                     # idempotent
    assert not shared.scheduler._closed                    # the others still use it
    with pytest.raises(RuntimeError, match='closed'):
        clients[0].detect(_planted_image(cells[0]))
    clients[1].close()
    clients[2].close()
    assert shared.scheduler._closed and shared.detector.backend._closed
    alone.close()


def _cameras(shared, own=None):
    return {'parameters': shared, 'cameras': [
        {'name': 'front', 'image_topic': '/front', 'device': 'gpu'},
        {'name': 'left', 'image_topic': '/left', 'device': 'dla0',
         **({'parameters': own} if own else {})}]}


def test_shared_max_batch_does_not_reach_dla_cameras():
    front, left = node_specs(_cameras({'max_batch': 4}))
    assert front.parameters['max_batch'] == 4 and 'max_batch' not in left.parameters
    with pytest.raises(CameraConfigError, match="camera 'left'.*max_batch"):
        node_specs(_cameras({}, own={'max_batch': 2}))


def test_shipped_cameras_file_batches_the_gpu_cameras(repo_root: Path):
    specs = {s.camera: s for s in load_cameras_file(repo_root / 'config' / 'cameras.yaml')}
    assert specs['camera0'].parameters['max_batch'] == 2
    assert specs['camera3'].parameters['max_batch'] == 2
    assert 'max_batch' not in specs['camera1'].parameters
    assert 'max_batch' not in specs['camera2'].parameters
