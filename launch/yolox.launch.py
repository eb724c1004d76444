"""Launch one YOLOX detector node for one camera (needs a ROS 2 install with launch_ros).

    ros2 launch tensorrt_yolox_py yolox.launch.py input/image:=/cam0/image_raw device:=dla0

Parameters come from ``params_file`` (default: the package's config/yolox.param.yaml; a path,
or the name of a file in the package's config folder); the ``model_path``, ``label_path``,
``device``, ``precision``, ``allow_cpu_fallback`` and ``use_sim_time`` arguments override it
when not empty.
``~/in/image`` is remapped to ``input/image``, and ``~/out/objects`` to ``output/objects`` when
given. Checks and shared actions (``tensorrt_yolox_py.ros.launch_support``): an unknown
argument, an empty topic or node name, or a missing ``params_file`` is an error before anything
starts; the Fast DDS large-image profile is applied unless you set your own; a node that exits
with a non-zero status ends the launch with status 1.
"""

import os

from tensorrt_yolox_py.image import ENCODINGS
from tensorrt_yolox_py.params import DEVICES, PARAMS_BY_NAME

PACKAGE = 'tensorrt_yolox_py'
#: (name, default, description) of every launch argument; '' = "not set".
ARGUMENTS = (
    ('input/image', '/image_raw',
     'sensor_msgs/Image topic to detect objects in (encodings: ' + ', '.join(ENCODINGS) + ')'),
    ('output/objects', '',
     'vision_msgs/Detection2DArray output topic; empty = the private ~/out/objects'),
    ('model_path', '', 'YOLOX ONNX model; empty = the value in params_file (or the bundled '
     'demo model)'),
    ('label_path', '', 'label file, one class name per line; empty = the value in params_file'),
    ('device', '', ' | '.join(DEVICES) + '; empty = the value in params_file'),
    ('precision', '', ' | '.join(PARAMS_BY_NAME['precision'].choices or ())
     + ' (TensorRT); empty = the value in params_file'),
    ('allow_cpu_fallback', '', 'true | false: run a gpu / DLA device on the CPU where nothing '
     'here can use it (false: refuse); empty = the value in params_file'),
    ('use_sim_time', '', 'true | false: stamp with the /clock time (rosbag replay with '
     '--clock); empty = the value in params_file (false by default)'),
    ('params_file', '', 'ROS parameter file (/**: ros__parameters): a path, or a file name in '
     'the package\'s config folder; empty = the package\'s config/yolox.param.yaml'),
    ('namespace', '', 'namespace of the node'),
    ('node_name', 'tensorrt_yolox', 'name of the node'),
)
OVERRIDABLE = ('model_path', 'label_path', 'device', 'precision', 'allow_cpu_fallback',
               'use_sim_time')
#: Overridable arguments that are booleans ('true' / 'false').
BOOLEANS = ('allow_cpu_fallback', 'use_sim_time')
#: Allowed values of arguments with a fixed set ('' = keep the params_file value).
CHOICES = {'device': ('',) + DEVICES,
           'precision': ('',) + tuple(PARAMS_BY_NAME['precision'].choices or ()),
           **{name: ('', 'true', 'false') for name in BOOLEANS}}
NOT_EMPTY = ('input/image', 'node_name')


def launch_setup(context, *args, **kwargs):
    """Resolve the arguments and return the node action and its failure handlers."""
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from tensorrt_yolox_py.ros.launch_support import (LaunchError, resolve_config_file,
                                                      stop_on_failure)

    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    for name in NOT_EMPTY:
        if not value(name):
            raise LaunchError(f'launch argument {name} is empty: give a value or leave it out '
                              f'(default {dict((a[0], a[1]) for a in ARGUMENTS)[name]})')
    parameters = [resolve_config_file('params_file', value('params_file'), 'yolox.param.yaml')]
    overrides = {name: value(name) for name in OVERRIDABLE if value(name)}
    for name in BOOLEANS:
        if name in overrides:
            overrides[name] = overrides[name] == 'true'
    if overrides:
        parameters.append(overrides)
    remappings = [('~/in/image', value('input/image'))]
    if value('output/objects'):
        remappings.append(('~/out/objects', value('output/objects')))
    node = Node(package=PACKAGE, executable='yolox_node', name=value('node_name'),
                namespace=value('namespace'), parameters=parameters, remappings=remappings,
                output='screen')
    label = 'node ' + os.path.join('/', value('namespace').strip('/'), value('node_name'))
    return stop_on_failure(node, label) + [node]


def generate_launch_description():
    """Check the command line, declare the arguments (each described), start the node."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from tensorrt_yolox_py.ros.launch_support import (apply_dds_profile, check_arguments,
                                                      stop_on_sigterm)

    names = [name for name, _, _ in ARGUMENTS]
    return LaunchDescription(
        [OpaqueFunction(function=check_arguments,
                        args=[names, os.path.basename(__file__)]),
         OpaqueFunction(function=stop_on_sigterm),
         OpaqueFunction(function=apply_dds_profile)]
        + [DeclareLaunchArgument(name, default_value=default, description=description,
                                 **({'choices': list(CHOICES[name])} if name in CHOICES else {}))
           for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=launch_setup)])
