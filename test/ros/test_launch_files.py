"""Launch files: importable without the launch system, every argument described.

The files import launch / launch_ros inside their functions (neither is on PyPI); this test
loads each file, checks its argument table, and, where launch_ros is installed, builds the
launch description. test_launch_system.py runs them with ``ros2 launch``.
"""

import importlib.util
from types import ModuleType

import pytest
from conftest import REPO


def _load(name: str) -> ModuleType:
    path = REPO / 'launch' / name
    spec = importlib.util.spec_from_file_location(name.replace('.', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name, required', [
    ('yolox.launch.py', {'input/image', 'output/objects', 'model_path', 'label_path', 'device',
                         'precision', 'params_file', 'namespace', 'node_name'}),
    ('multi_camera.launch.py', {'cameras', 'params_file', 'single_process'}),
])
def test_arguments_are_complete_and_described(name: str, required: set) -> None:
    module = _load(name)
    names = [arg[0] for arg in module.ARGUMENTS]
    assert required <= set(names) and len(names) == len(set(names))
    for arg_name, default, description in module.ARGUMENTS:
        assert isinstance(default, str)
        assert len(description) > 15, arg_name
    assert callable(module.generate_launch_description)


def test_device_default_of_single_camera_launch_is_left_to_the_params_file() -> None:
    module = _load('yolox.launch.py')
    defaults = {name: default for name, default, _ in module.ARGUMENTS}
    for name in module.OVERRIDABLE:
        assert defaults[name] == '', name  # '' = keep the params_file value


def test_launch_descriptions_build_where_launch_ros_exists() -> None:
    pytest.importorskip('launch_ros', reason='launch_ros is not installed (not on PyPI; set '
                        'YOLOX_ROS2_LAUNCH_WHEELHOUSE and re-run bash scripts/setup.sh)')
    for name in ('yolox.launch.py', 'multi_camera.launch.py'):
        description = _load(name).generate_launch_description()
        assert description.entities


def test_single_camera_launch_lists_what_the_schema_and_the_encoding_table_hold() -> None:
    from tensorrt_yolox_py.image import ENCODINGS
    from tensorrt_yolox_py.params import DEVICES, PARAMS_BY_NAME

    described = {name: text for name, _, text in _load('yolox.launch.py').ARGUMENTS}
    assert described['device'].split(';')[0].split(' | ') == list(DEVICES)
    assert described['precision'].split(' (')[0].split(' | ') == \
        list(PARAMS_BY_NAME['precision'].choices)
    listed = described['input/image'].split('encodings: ')[1].rstrip(')').split(', ')
    assert listed == list(ENCODINGS)
