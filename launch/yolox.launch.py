"""Launch one YOLOX detector node for one camera (needs a ROS 2 install with launch_ros).

    ros2 launch tensorrt_yolox_py yolox.launch.py input/image:=/cam0/image_raw device:=dla0

Parameters come from ``params_file`` (default: the package's config/yolox.param.yaml); the
``model_path``, ``label_path``, ``device`` and ``precision`` arguments override it when not
empty. ``~/in/image`` is remapped to ``input/image``, and ``~/out/objects`` to ``output/objects``
when given.
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
    ('params_file', '', 'ROS parameter file (/**: ros__parameters); empty = the package\'s '
     'config/yolox.param.yaml'),
    ('namespace', '', 'namespace of the node'),
    ('node_name', 'tensorrt_yolox', 'name of the node'),
)
OVERRIDABLE = ('model_path', 'label_path', 'device', 'precision')


def default_params_file() -> str:
    """Return the installed config/yolox.param.yaml."""
    from ament_index_python.packages import get_package_share_directory

    return os.path.join(get_package_share_directory(PACKAGE), 'config', 'yolox.param.yaml')


def launch_setup(context, *args, **kwargs):
    """Resolve the arguments and return the node action."""
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    parameters = [value('params_file') or default_params_file()]
    overrides = {name: value(name) for name in OVERRIDABLE if value(name)}
    if overrides:
        parameters.append(overrides)
    remappings = [('~/in/image', value('input/image'))]
    if value('output/objects'):
        remappings.append(('~/out/objects', value('output/objects')))
    return [Node(package=PACKAGE, executable='yolox_node', name=value('node_name'),
                 namespace=value('namespace'), parameters=parameters, remappings=remappings,
                 output='screen')]


def generate_launch_description():
    """Declare the arguments (each with a description) and the node; SIGTERM acts as Ctrl-C."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from tensorrt_yolox_py.ros.launch_support import stop_on_sigterm

    return LaunchDescription(
        [OpaqueFunction(function=stop_on_sigterm)]
        + [DeclareLaunchArgument(name, default_value=default, description=description)
           for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=launch_setup)])
