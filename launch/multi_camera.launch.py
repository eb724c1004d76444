"""Launch one YOLOX detector node per camera of a cameras.yaml (needs launch_ros).

    ros2 launch tensorrt_yolox_py multi_camera.launch.py cameras:=config/cameras.yaml

The camera -> node mapping (names, namespaces, remappings, parameters, device checks) is
``tensorrt_yolox_py.ros.camera_mapping.load_cameras_file``, the same function the in-process
runner ``yolox_multi_camera`` uses. ``single_process:=true`` runs all cameras in one process
(``yolox_multi_camera``, a multi-threaded executor) instead of one process per camera.
"""

import os

PACKAGE = 'tensorrt_yolox_py'
#: (name, default, description) of every launch argument; '' = the package default.
ARGUMENTS = (
    ('cameras', '', 'cameras file (name, image_topic, device per camera); empty = the '
     'package\'s config/cameras.yaml'),
    ('params_file', '', 'ROS parameter file applied to every camera, under the cameras file\'s '
     'own parameters; empty = the package\'s config/yolox.param.yaml'),
    ('single_process', 'false', 'true: all cameras in one process (yolox_multi_camera); '
     'false: one process per camera'),
)


def _share(*parts: str) -> str:
    from ament_index_python.packages import get_package_share_directory

    return os.path.join(get_package_share_directory(PACKAGE), *parts)


def launch_setup(context, *args, **kwargs):
    """Map the cameras file to node actions."""
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from tensorrt_yolox_py.ros.camera_mapping import load_cameras_file

    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    cameras = value('cameras') or _share('config', 'cameras.yaml')
    params_file = value('params_file') or _share('config', 'yolox.param.yaml')
    specs = load_cameras_file(cameras)  # raises CameraConfigError with a clear message
    if value('single_process').lower() in ('true', '1', 'yes'):
        # No name=: a __node remap would rename every node of that process.
        return [Node(package=PACKAGE, executable='yolox_multi_camera',
                     arguments=['--cameras', cameras, '--params-file', params_file],
                     output='screen')]
    return [Node(package=PACKAGE, executable='yolox_node', name=spec.name,
                 namespace=spec.namespace, parameters=[params_file, spec.parameters],
                 remappings=list(spec.remappings), output='screen')
            for spec in specs]


def generate_launch_description():
    """Declare the arguments (each described) and the per-camera nodes; SIGTERM acts as Ctrl-C."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from tensorrt_yolox_py.ros.launch_support import stop_on_sigterm

    return LaunchDescription(
        [OpaqueFunction(function=stop_on_sigterm)]
        + [DeclareLaunchArgument(name, default_value=default, description=description)
           for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=launch_setup)])
