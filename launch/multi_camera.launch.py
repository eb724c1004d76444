"""Launch one YOLOX detector node per camera of a cameras.yaml (needs launch_ros).

    ros2 launch tensorrt_yolox_py multi_camera.launch.py cameras:=cameras.yaml

``cameras`` and ``params_file`` take a path or the name of a file in the package's config
folder. The camera -> node mapping (names, namespaces, remappings, parameters, device checks) is
``tensorrt_yolox_py.ros.camera_mapping.load_cameras_file``, the same function the in-process
runner ``yolox_multi_camera`` uses. ``single_process:=true`` runs all cameras in one process
(``yolox_multi_camera``) instead of one process per camera. Either way a camera that cannot start
(or a node process that dies) ends the whole launch with status 1, naming the camera
(``tensorrt_yolox_py.ros.launch_support``, which also checks the arguments and applies the Fast
DDS large-image profile).
"""

import os

PACKAGE = 'tensorrt_yolox_py'
#: (name, default, description) of every launch argument; '' = the package default.
ARGUMENTS = (
    ('cameras', '', 'cameras file (name, image_topic, device per camera): a path, or a file '
     'name in the package\'s config folder; empty = the package\'s config/cameras.yaml'),
    ('params_file', '', 'ROS parameter file applied to every camera, under the cameras file\'s '
     'own parameters: a path, or a file name in the package\'s config folder; empty = the '
     'package\'s config/yolox.param.yaml'),
    ('single_process', 'false', 'true: all cameras in one process (yolox_multi_camera); '
     'false: one process per camera'),
    ('allow_cpu_fallback', '', 'true | false for every camera: run a gpu / DLA camera on the '
     'CPU where nothing here can use its device (false: refuse); empty = the files\' values'),
    ('use_sim_time', '', 'true | false for every camera: stamp with the /clock time (rosbag '
     'replay with --clock); empty = the files\' values (false by default)'),
)
#: Arguments that set one boolean parameter of every camera when not empty.
BOOLEANS = ('allow_cpu_fallback', 'use_sim_time')
CHOICES = {'single_process': ('true', 'false'),
           **{name: ('', 'true', 'false') for name in BOOLEANS}}


def launch_setup(context, *args, **kwargs):
    """Map the cameras file to node actions, each with its failure handlers."""
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from tensorrt_yolox_py.ros.camera_mapping import load_cameras_file
    from tensorrt_yolox_py.ros.launch_support import resolve_config_file, stop_on_failure

    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    cameras = resolve_config_file('cameras', value('cameras'), 'cameras.yaml')
    params_file = resolve_config_file('params_file', value('params_file'), 'yolox.param.yaml')
    specs = load_cameras_file(cameras)  # raises CameraConfigError with a clear message
    fallback = value('allow_cpu_fallback')
    # Given booleans, for every camera (above each camera's own parameters).
    given = {name: value(name) == 'true' for name in BOOLEANS if value(name)}
    if value('single_process') == 'true':
        # No name=: a __node remap would rename every node of that process; parameters without
        # a node name go to every node of it ('/**').
        node = Node(package=PACKAGE, executable='yolox_multi_camera',
                    arguments=['--cameras', cameras, '--params-file', params_file] + (
                        ['--allow-cpu-fallback', fallback] if fallback else []),
                    parameters=[given] if given else [], output='screen')
        names = ', '.join(spec.camera for spec in specs)
        return stop_on_failure(node, f'yolox_multi_camera (cameras {names})') + [node]
    actions = []
    for spec in specs:
        node = Node(package=PACKAGE, executable='yolox_node', name=spec.name,
                    namespace=spec.namespace,
                    parameters=[params_file, spec.parameters] + ([given] if given else []),
                    remappings=list(spec.remappings), output='screen')
        actions += stop_on_failure(
            node, f"camera '{spec.camera}' (node {spec.fully_qualified_name})") + [node]
    return actions


def generate_launch_description():
    """Check the command line, declare the arguments (each described), start the nodes."""
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
