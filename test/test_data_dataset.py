"""Data-set helpers: split seeds, resized frames, parallel generation, COCO export."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tensorrt_yolox_py.devkit.dataset import (TEST_SEED, TRAIN_SEED, VAL_SEED, frame_seed,
                                              generate_frames, make_frame, seed_view, write_coco)
from tensorrt_yolox_py.devkit.scene import SceneConfig
from tensorrt_yolox_py.devkit.tools.make_dataset import main as make_dataset_main

SMALL = SceneConfig(width=480, height=320)


def test_split_seeds_are_disjoint_and_checked() -> None:
    train = {frame_seed(TRAIN_SEED, i) for i in range(0, 10_000_000, 999_983)}
    val = {frame_seed(VAL_SEED, i) for i in range(0, 10_000_000, 999_983)}
    test = {frame_seed(TEST_SEED, i) for i in range(0, 10_000_000, 999_983)}
    assert not (train & val) and not (train & test) and not (val & test)
    assert max(train) < min(val) and max(val) < min(test)
    with pytest.raises(ValueError):
        frame_seed(TRAIN_SEED, 10_000_000)
    with pytest.raises(ValueError):
        frame_seed(TRAIN_SEED, -1)
    assert {seed_view(s)[0] for s in range(6)} == {0, 1, 2}


def test_resized_frame_scales_boxes_like_the_image() -> None:
    full = make_frame(1234, None, SceneConfig())
    half = make_frame(1234, (640, 960), SceneConfig())
    assert half.image.shape == (640, 960, 3)
    np.testing.assert_allclose(half.boxes, full.boxes * 0.5, atol=1e-4)
    assert np.array_equal(half.labels, full.labels)
    # the resize is OpenCV INTER_LINEAR, the same resampling as the inference letterbox
    expected = cv2.resize(full.image, (960, 640), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(half.image, expected)


def test_parallel_generation_equals_serial() -> None:
    seeds = [frame_seed(TEST_SEED, i) for i in range(4)]
    serial = list(generate_frames(seeds, None, workers=1, config=SMALL))
    parallel = list(generate_frames(seeds, None, workers=2, config=SMALL))
    assert [f.seed for f in parallel] == seeds
    for a, b in zip(serial, parallel):
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.labels, b.labels)


def test_coco_export_loads_in_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    frames = list(generate_frames([frame_seed(VAL_SEED, i) for i in range(3)], None, 1,
                                  SMALL))
    path = write_coco(frames, str(tmp_path / 'coco'))
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == 3
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())][:2] == ['UNKNOWN', 'CAR']
    for img_id, frame in zip(sorted(coco.getImgIds()), frames):
        info = coco.loadImgs(img_id)[0]
        assert np.array_equal(cv2.imread(str(tmp_path / 'coco' / info['file_name'])),
                              frame.image)         # PNG is lossless
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        normal = [a for a in anns if not a['iscrowd']]
        crowd = [a for a in anns if a['iscrowd']]
        assert len(normal) == len(frame.labels) and len(crowd) == len(frame.ignored_labels)
        got = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                         a['bbox'][1] + a['bbox'][3]] for a in normal]).reshape(-1, 4)
        np.testing.assert_allclose(got, frame.boxes, atol=1e-3)
        assert [a['category_id'] for a in normal] == [int(c) + 1 for c in frame.labels]


def test_coco_export_is_read_by_the_trainer(tmp_path: Path) -> None:
    pytest.importorskip('torch')
    from tensorrt_yolox_py.devkit.train import load_coco

    frames = list(generate_frames([frame_seed(VAL_SEED, 7)], None, 1, SMALL))
    items, names = load_coco(write_coco(frames, str(tmp_path / 'c')))
    assert names[1] == 'CAR' and len(items) == 1
    np.testing.assert_allclose(items[0][1], frames[0].boxes, atol=1e-3)
    np.testing.assert_array_equal(items[0][2], frames[0].labels)


def test_make_dataset_tool(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert make_dataset_main(['coco', str(tmp_path / 'c'), '--frames', '2', '--size', '160',
                              '240', '--workers', '1', '--split', 'val']) == 0
    data = json.loads((tmp_path / 'c' / 'annotations.json').read_text())
    assert len(data['images']) == 2 and data['images'][0]['width'] == 240
    assert make_dataset_main(['preview', str(tmp_path / 'p'), '--frames', '1', '--size',
                              '160', '240', '--workers', '1']) == 0
    assert len(list((tmp_path / 'p').glob('*.jpg'))) == 1
    assert make_dataset_main(['coco', str(tmp_path / 'x'), '--frames', '0']) == 2
    assert make_dataset_main(['coco', str(tmp_path / 'x'), '--size', '8', '8']) == 2
