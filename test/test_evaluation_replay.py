"""Bag replay end to end: planted objects scored exactly, the CLI tools, DDS == direct."""

import importlib.util
import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

pytest.importorskip('rosbags')
pytest.importorskip('pycocotools')

from tensorrt_yolox_py.devkit.dataset import coco_categories  # noqa: E402
from tensorrt_yolox_py.data.rosbag_io import (BagRecord, GROUND_TRUTH_NAME,  # noqa: E402
                                              write_image_bag)
from tensorrt_yolox_py.evaluation.replay import replay_bag  # noqa: E402
from tensorrt_yolox_py.labels import DEFAULT_LABELS  # noqa: E402
from tensorrt_yolox_py.devkit.synthetic import GREEN_CLASS, RED_CLASS  # noqa: E402
from tensorrt_yolox_py.params import make_config  # noqa: E402
from tensorrt_yolox_py.pipeline import Detector  # noqa: E402
from tensorrt_yolox_py.tools.demo import main as demo_main  # noqa: E402
from tensorrt_yolox_py.tools.evaluate_bag import main as evaluate_main  # noqa: E402

# (topic, cells of red squares, cells of green squares, encoding) per frame
FRAMES = [('/cam0/image', [(1, 1)], [(6, 4)], 'bgr8'), ('/cam1/image', [(3, 2)], [], 'bgr8'),
          ('/cam2/image', [], [(0, 7)], 'rgb8'), ('/cam0/image', [(8, 8), (2, 5)], [], 'bgr8'),
          ('/cam1/image', [(5, 0)], [(7, 7)], 'bgr8'), ('/cam2/image', [(4, 4)], [], 'bgr8')]


def _planted_bag(root: Path, extra_unlabelled: bool = False) -> Tuple[Path, Dict]:
    """Write a 3-topic bag of 320x320 frames with red / green 32x32 cells and its COCO GT."""
    records: List[BagRecord] = []
    images, anns = [], []
    for k, (topic, reds, greens, encoding) in enumerate(FRAMES):
        image = np.full((320, 320, 3), 114, np.uint8)
        for cells, bgr, cls in ((reds, (0, 0, 255), RED_CLASS),
                                (greens, (0, 255, 0), GREEN_CLASS)):
            for gx, gy in cells:
                image[gy * 32:(gy + 1) * 32, gx * 32:(gx + 1) * 32] = (
                    bgr if encoding == 'bgr8' else bgr[::-1])
                anns.append({'id': len(anns) + 1, 'image_id': k + 1, 'category_id': cls + 1,
                             'bbox': [gx * 32, gy * 32, 32, 32], 'area': 1024, 'iscrowd': 0})
        stamp = 1_000_000_000 + k * 50_000_000
        records.append(BagRecord(topic, topic.split('/')[1], stamp, stamp + 5_000_000, image,
                                 encoding))
        images.append({'id': k + 1, 'width': 320, 'height': 320, 'topic': topic,
                       'stamp_ns': stamp, 'file_name': f'{topic}@{stamp}'})
    if extra_unlabelled:
        records.append(BagRecord('/cam0/image', 'cam0', 9_000_000_000, 9_000_000_001,
                                 np.full((320, 320, 3), 114, np.uint8)))
    bag = write_image_bag(root / 'bag', records)
    gt = {'images': images, 'annotations': anns, 'categories': coco_categories()}
    (bag / GROUND_TRUTH_NAME).write_text(json.dumps(gt))
    return bag, gt


def _planted_detector(planted_model: Path) -> Detector:
    return Detector.from_config(make_config({'model_path': str(planted_model), 'device': 'cpu',
                                             'preprocess_on_gpu': False,
                                             'score_threshold': 0.01}))


def test_replay_scores_planted_objects_exactly(tmp_path: Path, planted_model: Path) -> None:
    bag, gt = _planted_bag(tmp_path, extra_unlabelled=True)
    with _planted_detector(planted_model) as det:
        report = replay_bag(bag, det, gt, progress=False, annotate_dir=tmp_path / 'frames')
    assert report.frames == 7 and report.scored == 6 and report.unlabelled == 1
    assert report.result.mAP == pytest.approx(1.0) and report.result.mAP50 == pytest.approx(1.0)
    assert report.result.num_ground_truths == 9
    assert report.result.per_class_AP50['CAR'] == pytest.approx(1.0)
    assert report.result.per_class_AP50['PEDESTRIAN'] == pytest.approx(1.0)
    assert sorted(report.per_topic) == ['/cam0/image', '/cam1/image', '/cam2/image']
    assert {'decode', 'preprocess', 'infer', 'postprocess', 'total'} <= set(report.samples[0])
    assert len(list((tmp_path / 'frames').rglob('*.jpg'))) == 7
    data = report.to_dict()
    assert data['latency_ms']['total']['n'] == 7 and data['accuracy']['mAP50'] == 1.0


def test_replay_topic_filter_and_max_frames(tmp_path: Path, planted_model: Path) -> None:
    bag, gt = _planted_bag(tmp_path)
    with _planted_detector(planted_model) as det:
        report = replay_bag(bag, det, gt, topics=['/cam1/image'], progress=False)
        assert report.frames == 2 and list(report.per_topic) == ['/cam1/image']
        assert report.result.num_images == 2
        report = replay_bag(bag, det, gt, max_frames=1, progress=False)
        assert report.frames == 1


def test_evaluate_cli_writes_report_and_plots(tmp_path: Path, planted_model: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    bag, _ = _planted_bag(tmp_path)
    out = tmp_path / 'eval'
    assert evaluate_main([str(bag), '--model', str(planted_model), '--device', 'cpu',
                          '--param', 'preprocess_on_gpu=false', '--output', str(out),
                          '--annotate', '--no-progress']) == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['accuracy']['mAP50'] == pytest.approx(1.0)
    assert report['info']['score_threshold'] == 0.01
    for name in ('summary.md', 'pr_curves.png', 'latency_hist.png'):
        assert (out / name).stat().st_size > 0
    assert 'mAP50 1.0000' in capsys.readouterr().out
    assert evaluate_main([str(tmp_path / 'nope'), '--output', str(out)]) == 2
    assert evaluate_main([str(bag), '--gt', str(tmp_path / 'missing.json')]) == 2
    assert evaluate_main([str(bag), '--param', 'score_threshold=2.0', '--device', 'cpu']) == 2


def _has_ros() -> bool:
    return (importlib.util.find_spec('rclpy') is not None
            and importlib.util.find_spec('vision_msgs') is not None)


@pytest.mark.ros
@pytest.mark.skipif(not _has_ros(), reason='rclpy or vision_msgs not installed')
def test_dds_replay_into_detector_nodes(tmp_path: Path, planted_model: Path) -> None:
    from tensorrt_yolox_py.ros.dds_replay import dds_replay
    import os

    bag, gt = _planted_bag(tmp_path)
    params = {'model_path': str(planted_model), 'device': 'cpu', 'preprocess_on_gpu': False,
              'score_threshold': 0.01, 'num_threads': 1}
    before = {k: os.environ.get(k) for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')}
    report = dds_replay(bag, gt, params, list(DEFAULT_LABELS), progress=False,
                        annotate_dir=tmp_path / 'frames', domain_id=77)
    assert report.info['ros_domain_id'] == '77'
    assert report.info['ros_automatic_discovery_range'] == 'LOCALHOST'
    assert {k: os.environ.get(k) for k in before} == before
    assert report.frames == 6 and report.scored == 6 and report.info['lost_frames'] == 0
    assert report.result.mAP == pytest.approx(1.0)
    assert len(report.info['nodes']) == 3
    assert all(s['round_trip'] > 0 for s in report.samples)


@pytest.mark.ros
@pytest.mark.skipif(not _has_ros(), reason='rclpy or vision_msgs not installed')
def test_evaluate_cli_over_dds(tmp_path: Path, planted_model: Path) -> None:
    bag, _ = _planted_bag(tmp_path)
    out = tmp_path / 'eval_dds'
    assert evaluate_main([str(bag), '--model', str(planted_model), '--device', 'cpu',
                          '--param', 'preprocess_on_gpu=false', '--output', str(out), '--dds',
                          '--no-progress']) == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['accuracy']['mAP'] == pytest.approx(1.0)
    assert report['info']['mode'] == 'dds' and 'round_trip' in report['latency_ms']


@pytest.mark.slow
def test_demo_direct_on_the_bundled_bag(tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / 'demo'
    assert demo_main(['--output', str(out), '--mode', 'direct', '--no-progress']) == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['frames'] == 18 and len(report['per_topic']) == 3
    assert report['accuracy']['mAP50'] >= 0.8, 'the demo model meets its accuracy target'
    assert len(list((out / 'frames').rglob('*.jpg'))) == 18
    assert 'annotated frames:' in capsys.readouterr().out
    if _has_ros():
        ros_out = tmp_path / 'demo_ros'
        assert demo_main(['--output', str(ros_out), '--mode', 'ros', '--no-progress']) == 0
        ros_report = json.loads((ros_out / 'report.json').read_text())
        # the nodes run the same detector on the same frames: the same scores over DDS
        assert ros_report['accuracy']['mAP'] == pytest.approx(report['accuracy']['mAP'],
                                                              abs=1e-9)
        assert ros_report['info']['mode'] == 'ros'
