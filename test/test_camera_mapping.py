"""cameras.yaml -> node specs: names, namespaces, remappings, parameters, clear errors."""

import copy
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from tensorrt_yolox_py.ros.camera_mapping import (CameraConfigError, is_valid_topic,
                                                  load_cameras_file, node_specs)

BASE: Dict[str, Any] = {
    'namespace': '/perception',
    'exclusive_dla': True,
    'parameters': {'precision': 'fp16', 'score_threshold': 0.3},
    'cameras': [
        {'name': 'front', 'image_topic': '/sensing/front/image_raw', 'device': 'gpu'},
        {'name': 'left', 'image_topic': '/sensing/left/image_raw', 'device': 'dla0',
         'objects_topic': 'rois', 'parameters': {'score_threshold': 0.5}},
        {'name': 'right', 'image_topic': 'sensing/right/image_raw', 'device': 'dla1',
         'objects_topic': '/perception/rois_right'},
    ],
}


def _with(**changes: Any) -> Dict[str, Any]:
    config = copy.deepcopy(BASE)
    config.update(changes)
    return config


def _camera(index: int, **changes: Any) -> Dict[str, Any]:
    config = copy.deepcopy(BASE)
    config['cameras'][index].update(changes)
    return config


def test_mapping_of_a_valid_file() -> None:
    front, left, right = node_specs(BASE)
    assert (front.camera, front.name, front.namespace) == ('front', 'tensorrt_yolox',
                                                           '/perception/front')
    assert front.fully_qualified_name == '/perception/front/tensorrt_yolox'
    assert front.remappings == (('~/in/image', '/sensing/front/image_raw'),)
    assert front.parameters == {'precision': 'fp16', 'score_threshold': 0.3, 'device': 'gpu'}
    assert left.parameters['score_threshold'] == 0.5  # camera's own value wins
    assert left.parameters['device'] == 'dla0' and left.device == 'dla0'
    assert left.remappings[1] == ('~/out/objects', 'rois')
    assert right.remappings == (('~/in/image', 'sensing/right/image_raw'),
                                ('~/out/objects', '/perception/rois_right'))
    assert right.ros_args() == ['--ros-args', '-r', '~/in/image:=sensing/right/image_raw',
                                '-r', '~/out/objects:=/perception/rois_right']


def test_defaults_and_float_typing() -> None:
    (spec,) = node_specs({'cameras': [{'name': 'c', 'image_topic': '/c/image',
                                       'parameters': {'score_threshold': 1, 'nms_threshold': 0}}]})
    assert spec.namespace == '/c' and spec.device == 'gpu'
    assert spec.parameters['score_threshold'] == 1.0
    assert isinstance(spec.parameters['score_threshold'], float)
    assert isinstance(spec.parameters['nms_threshold'], float)


def test_shipped_cameras_file(repo_root: Path) -> None:
    specs = load_cameras_file(repo_root / 'config' / 'cameras.yaml')
    assert [s.device for s in specs] == ['gpu', 'dla0', 'dla1', 'gpu']
    assert len({s.fully_qualified_name for s in specs}) == 4
    assert len({dict(s.remappings)['~/out/objects'] for s in specs}) == 4


@pytest.mark.parametrize('config, text', [
    (_camera(1, name='front'), "camera 'front': duplicate camera name (cameras[0] and "
                               'cameras[1])'),
    (_camera(0, device='tpu'), "camera 'front': unknown device 'tpu' (use one of gpu, dla0, "
                               'dla1, cpu)'),
    (_camera(2, device='dla0'), "camera 'right': dla0 is already used by camera 'left' and "
                                'exclusive_dla is true'),
    (_camera(0, image_topic='/bad topic'), "camera 'front': image_topic '/bad topic' is not"),
    (_camera(0, image_topic='/a//b'), "image_topic '/a//b' is not a valid ROS topic"),
    (_camera(0, image_topic='/1cam/image'), 'is not a valid ROS topic'),
    (_camera(0, image_topic='/cam/'), 'is not a valid ROS topic'),
    (_camera(0, image_topic=''), 'is not a valid ROS topic'),
    (_camera(0, image_topic=None), 'image_topic None is not a valid ROS topic'),
    (_camera(0, objects_topic='~/x'), "objects_topic '~/x' is not a valid"),
    (_camera(0, objects_topic='/perception/left/rois'),
     "camera 'left': objects_topic /perception/left/rois is also used by camera 'front'"),
    (_camera(0, name='front camera'), "cameras[0]: name 'front camera' must match"),
    (_camera(0, name='0front'), 'must match'),
    (_camera(0, colour='red'), "camera 'front': unknown key(s) colour"),
    (_camera(0, parameters={'score_threshold': 2.0}),
     "camera 'front': parameter 'score_threshold': 2.0 is above the maximum"),
    (_camera(0, parameters={'dla_core_id': 1}), "parameter 'dla_core_id': 1 contradicts "
                                                "device 'gpu'"),
    (_camera(0, parameters={'no_such': 1}), "parameter 'no_such': unknown parameter"),
    (_camera(0, parameters=[1]), "camera 'front': parameters must be a mapping"),
    (_with(parameters={'precision': 'int4'}), "parameter 'precision': 'int4' is not one of"),
    (_with(cameras=[]), '"cameras" must be a non-empty list'),
    (_with(cameras='front'), '"cameras" must be a non-empty list'),
    (_with(cameras=['front']), 'cameras[0]: expected a mapping'),
    (_with(namespace='perception'), "namespace 'perception' is not a valid absolute"),
    (_with(node_name='my node'), "node_name 'my node' is not a valid node name"),
    (_with(exclusive_dla='yes'), 'exclusive_dla must be true or false'),
    (_with(camera=[]), 'unknown key(s) camera'),
    ([1, 2], 'expected a mapping with a "cameras" list'),
])
def test_bad_files_are_rejected_clearly(config: Any, text: str) -> None:
    with pytest.raises(CameraConfigError) as info:
        node_specs(config)
    assert text in str(info.value)


def test_two_cameras_on_one_dla_allowed_when_not_exclusive() -> None:
    config = _camera(2, device='dla0')
    config['exclusive_dla'] = False
    assert [s.device for s in node_specs(config)] == ['gpu', 'dla0', 'dla0']


def test_topic_names() -> None:
    for good in ('/a', 'a', '/a/b_c/d1', '_x/y'):
        assert is_valid_topic(good), good
    for bad in ('', '/', '//a', 'a/', 'a b', '/a/1b', '~/a', 'a:b', 3):
        assert not is_valid_topic(bad), bad


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CameraConfigError, match='cannot read cameras file .*missing.yaml'):
        load_cameras_file(tmp_path / 'missing.yaml')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('cameras: [name: a\n')
    with pytest.raises(CameraConfigError, match='broken.yaml is not valid YAML'):
        load_cameras_file(broken)
    dup = tmp_path / 'dup.yaml'
    dup.write_text(yaml.safe_dump(_camera(1, name='front')))
    with pytest.raises(CameraConfigError, match=r'dup.yaml: camera .front.: duplicate'):
        load_cameras_file(dup)
