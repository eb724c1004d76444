"""rosbag2 writing and reading (rosbags): frames come back identical, stamps and topics right."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('rosbags')

from tensorrt_yolox_py.devkit.dataset import BAG_SEED, frame_seed, make_frame  # noqa: E402
from tensorrt_yolox_py.data.rosbag_io import (BagRecord, camera_frame_id,  # noqa: E402
                                              camera_topic, image_topics, read_images,
                                              write_image_bag)
from tensorrt_yolox_py.devkit.scene_bag import write_scene_bag  # noqa: E402
from tensorrt_yolox_py.devkit.scene import SceneConfig  # noqa: E402
from tensorrt_yolox_py.errors import InputError  # noqa: E402
from tensorrt_yolox_py.params import PACKAGE_DIR  # noqa: E402

SMALL = SceneConfig(width=384, height=256)


@pytest.mark.parametrize('storage,compress', [('mcap', True), ('mcap', False),
                                              ('sqlite3', True)])
def test_scene_bag_round_trip_is_frame_identical(tmp_path: Path, storage: str,
                                                 compress: bool) -> None:
    bag = write_scene_bag(tmp_path / 'bag', num_cameras=2, frames=3, seed=5, config=SMALL,
                          compress=compress, storage=storage)
    gt = json.loads((bag / 'ground_truth.json').read_text())
    msgs = list(read_images(bag))
    assert len(msgs) == 6 and len(gt['images']) == 6
    assert image_topics(bag) == [camera_topic(0), camera_topic(1)]
    log_times = [m.log_time_ns for m in msgs]
    assert log_times == sorted(log_times)
    by_key = {(img['topic'], img['stamp_ns']): img for img in gt['images']}
    for cam in range(2):
        mine = [m for m in msgs if m.topic == camera_topic(cam)]
        stamps = [m.stamp_ns for m in mine]
        assert len(mine) == 3 and stamps == sorted(stamps)
        # ~10 Hz with a few ms of jitter, and the record time after the stamp
        assert all(80e6 < b - a < 120e6 for a, b in zip(stamps, stamps[1:]))
        for k, m in enumerate(mine):
            assert m.frame_id == camera_frame_id(cam) and m.encoding == 'bgr8'
            assert 0 < m.log_time_ns - m.stamp_ns < 20e6
            expected = make_frame(frame_seed(BAG_SEED, 5 * 16 + cam), None, SMALL,
                                  time_s=k * 0.1, camera=cam)
            assert np.array_equal(m.image, expected.image)
            entry = by_key[(m.topic, m.stamp_ns)]
            anns = [a for a in gt['annotations']
                    if a['image_id'] == entry['id'] and not a['iscrowd']]
            assert len(anns) == len(expected.labels)


def test_hand_made_records_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (7, 5, 3), dtype=np.uint8) for _ in range(3)]
    records = [BagRecord('/a/image', 'cam_a', 10 + i, 20 + i, img, enc)
               for i, (img, enc) in enumerate(zip(images, ['bgr8', 'rgb8', 'bgr8']))]
    bag = write_image_bag(tmp_path / 'b', records, compress=False)
    got = list(read_images(bag))
    assert [(m.stamp_ns, m.log_time_ns, m.encoding) for m in got] == [
        (10, 20, 'bgr8'), (11, 21, 'rgb8'), (12, 22, 'bgr8')]
    for m, img in zip(got, images):
        assert np.array_equal(m.image, img)
    with pytest.raises(InputError, match='no sensor_msgs/msg/Image topic /missing'):
        list(read_images(bag, ['/missing']))
    with pytest.raises(ValueError, match='storage'):
        write_image_bag(tmp_path / 'c', records, storage='bag1')


def test_bags_of_every_encoding_round_trip(tmp_path: Path) -> None:
    """Any encoding of the table is written with its packed step and read back as a view."""
    from tensorrt_yolox_py.image import ENCODINGS

    rng = np.random.default_rng(3)
    records, images = [], []
    for k, encoding in enumerate(ENCODINGS):
        image = rng.integers(0, 256, (6, 8, ENCODINGS[encoding].channels), dtype=np.uint8)
        images.append(image)
        records.append(BagRecord('/cam', 'cam', 100 + k, 200 + k, image, encoding))
    bag = write_image_bag(tmp_path / 'enc', records)
    got = list(read_images(bag))
    assert [m.encoding for m in got] == list(ENCODINGS)
    for m, image in zip(got, images):
        np.testing.assert_array_equal(m.image, image)
        assert m.source.row_bytes == image.shape[1] * image.shape[2]


def test_reading_a_bag_does_not_import_the_scene_generator() -> None:
    import subprocess
    import sys

    code = ('import sys; import tensorrt_yolox_py.data.rosbag_io; '
            'assert "tensorrt_yolox_py.devkit.scene" not in sys.modules; '
            'assert "tensorrt_yolox_py.devkit.dataset" not in sys.modules')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_bundled_sample_bag() -> None:
    bag = PACKAGE_DIR / 'data' / 'sample' / 'demo_bag'
    gt = json.loads((bag / 'ground_truth.json').read_text())
    size = sum(p.stat().st_size for p in bag.iterdir())
    model = PACKAGE_DIR / 'model' / 'data' / 'yolox_demo.onnx'
    assert size + model.stat().st_size < 40e6, 'bundled model + bag stay under 40 MB'
    topics = image_topics(bag)
    assert topics == [camera_topic(i) for i in range(3)]
    keys = {(img['topic'], img['stamp_ns']) for img in gt['images']}
    count = 0
    for m in read_images(bag):
        assert (m.topic, m.stamp_ns) in keys
        assert m.image.shape == (640, 960, 3)
        count += 1
    assert count == len(keys) == 18
    assert sum(1 for a in gt['annotations'] if not a['iscrowd']) > 50


def test_scene_bag_arguments_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_scene_bag(tmp_path / 'z', num_cameras=0, frames=1, config=SMALL)
