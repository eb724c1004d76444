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
                         'precision', 'allow_cpu_fallback', 'params_file', 'namespace',
                         'node_name'}),
    ('multi_camera.launch.py', {'cameras', 'params_file', 'single_process',
                                'allow_cpu_fallback'}),
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


# -- launch_support and dds_profile: the pure parts ------------------------------------------
def test_unknown_argument_error_suggests_the_closest_declared_name() -> None:
    from tensorrt_yolox_py.ros.launch_support import unknown_argument_error

    declared = [name for name, _, _ in _load('yolox.launch.py').ARGUMENTS]
    assert unknown_argument_error(['device', 'input/image', 'launch-prefix'], declared,
                                  'yolox.launch.py') is None
    error = unknown_argument_error(['device', 'devcie'], declared, 'yolox.launch.py')
    assert error.startswith("unknown launch argument 'devcie' (did you mean 'device'?); "
                            'yolox.launch.py takes: input/image, output/objects,')
    error = unknown_argument_error(['zzz'], declared, 'yolox.launch.py')
    assert error.startswith("unknown launch argument 'zzz'; yolox.launch.py takes: ")


def test_config_files_resolve_by_path_or_by_name_in_the_share_folder(tmp_path) -> None:
    from tensorrt_yolox_py.ros.launch_support import LaunchError, resolve_config_file

    share = tmp_path / 'share'
    share.mkdir()
    (share / 'cameras.yaml').write_text('cameras: []\n')
    here = tmp_path / 'here'
    (here / 'sub').mkdir(parents=True)
    (here / 'sub' / 'mine.yaml').write_text('cameras: []\n')
    (here / 'cameras.yaml').write_text('cameras: []\n')

    def resolve(value: str, cwd=here) -> str:
        return resolve_config_file('cameras', value, 'cameras.yaml', share, cwd)

    assert resolve('') == str(share / 'cameras.yaml')
    assert resolve('sub/mine.yaml') == str(here / 'sub' / 'mine.yaml')
    assert resolve('cameras.yaml') == str(here / 'cameras.yaml')  # the current folder first
    assert resolve('cameras.yaml', cwd=tmp_path) == str(share / 'cameras.yaml')
    assert resolve(str(here / 'sub' / 'mine.yaml'), cwd=tmp_path) == str(
        here / 'sub' / 'mine.yaml')
    with pytest.raises(LaunchError, match=r'cameras:=sub/none\.yaml: no such file \('):
        resolve('sub/none.yaml')
    with pytest.raises(LaunchError, match=r'nope\.yaml or .*share/nope\.yaml'):
        resolve('nope.yaml')


def test_dds_profile_is_applied_unless_the_user_chose_one(tmp_path) -> None:
    from tensorrt_yolox_py.ros import dds_profile

    profile = tmp_path / 'large.xml'
    assert dds_profile.decide({}, profile).path == str(profile)
    assert dds_profile.decide({'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'}, profile).path
    for environ in ({'FASTDDS_DEFAULT_PROFILES_FILE': '/mine.xml'},
                    {'FASTRTPS_DEFAULT_PROFILES_FILE': '/mine.xml'},
                    {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}):
        decision = dds_profile.decide(environ, profile)
        assert decision.path is None and not decision.warning, environ
    # The installed profile is found (share/ of an ament prefix, or the checkout) and is the
    # shipped file.
    found = dds_profile.find_profile()
    assert found is not None and found.read_bytes() == (
        REPO / 'config' / 'fastdds_large_data.xml').read_bytes()


def test_dds_profile_is_logged_once_by_a_launch_file_not_again_by_its_nodes() -> None:
    import logging

    from tensorrt_yolox_py.ros import dds_profile

    records = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger('test_dds_profile')
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    launch_env: dict = {}
    decision = dds_profile.apply_dds_profile(launch_env, logger, for_children=True)
    assert launch_env[dds_profile.VARIABLE] == decision.path and len(records) == 1
    node_env = dict(launch_env)  # what a node started by the launch file inherits
    assert dds_profile.apply_dds_profile(node_env, logger).path is None  # kept, not re-set
    assert node_env[dds_profile.VARIABLE] == decision.path and len(records) == 1
    alone: dict = {}
    dds_profile.apply_dds_profile(alone, logger)  # a console script on its own: logs
    assert len(records) == 2 and dds_profile.LOGGED_VARIABLE not in alone


def test_an_empty_topic_or_node_name_is_an_error_where_ros2_launch_lets_it_through() -> None:
    """``ros2 launch`` itself refuses ``name:=`` on its command line; an including launch file
    can still pass an empty value, which the launch file refuses."""
    pytest.importorskip('launch_ros', reason='launch_ros is not installed (not on PyPI)')
    from launch import LaunchContext

    from tensorrt_yolox_py.ros.launch_support import LaunchError

    module = _load('yolox.launch.py')
    for name in module.NOT_EMPTY:
        context = LaunchContext()
        for arg_name, default, _ in module.ARGUMENTS:
            context.launch_configurations[arg_name] = default
        context.launch_configurations[name] = ''
        with pytest.raises(LaunchError, match=f'launch argument {name} is empty'):
            module.launch_setup(context)


def test_the_argument_check_covers_the_command_line_of_the_launched_file_only() -> None:
    pytest.importorskip('launch.launch_context', reason='launch is not installed (not on PyPI)')
    from launch import LaunchContext

    from tensorrt_yolox_py.ros.launch_support import check_arguments, LaunchError

    declared = [name for name, _, _ in _load('yolox.launch.py').ARGUMENTS]
    top = LaunchContext(argv=['devcie:=cpu'])
    top.launch_configurations['devcie'] = 'cpu'  # what ros2 launch sets from its command line
    with pytest.raises(LaunchError, match="'devcie' \\(did you mean 'device'\\?\\)"):
        check_arguments(top, declared, 'yolox.launch.py')
    fine = LaunchContext(argv=['device:=cpu'])
    fine.launch_configurations['device'] = 'cpu'
    check_arguments(fine, declared, 'yolox.launch.py')
    # Included from another launch file: that file's own arguments are not ours to refuse.
    included = LaunchContext(argv=['robot:=r2'])
    included.launch_configurations.update({'robot': 'r2', 'device': 'cpu'})
    check_arguments(included, declared, 'yolox.launch.py')
