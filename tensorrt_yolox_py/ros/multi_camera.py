"""Run one detector node per camera of a cameras.yaml in ONE process (console: yolox_multi_camera).

The same nodes as ``launch/multi_camera.launch.py`` starts (the mapping is
``camera_mapping.node_specs``), without the launch system: each camera's node gets its name,
namespace, remappings and parameters, and all of them spin in one executor thread
(``lifecycle.spin_until_stopped``: a ``SingleThreadedExecutor``, chosen by measurement, see
docs/ros_interface.md). Each node has its own worker thread for conversion, inference and
publishing, so a slow camera does not hold back the others. Cameras with ``max_batch`` > 1
that share a model and a device share one batched detector (``batching.BatchGroups``): one
inference call per batch, each frame waiting at most ``batch_wait_ms`` for the others; DLA
cameras keep batch 1.

    yolox_multi_camera --cameras config/cameras.yaml [--params-file p.yaml]
        [--allow-cpu-fallback true|false] [--ros-args ...]

``--params-file`` values apply to every camera, under the cameras file's own ``parameters``.
"""

import argparse
import logging
import sys
from typing import Any, Callable, List, Optional, Sequence

from .._lazy import require
from ..batching import BatchGroups
from ..errors import YoloxError
from ..params import PARAMS_BY_NAME, load_param_yaml
from .camera_mapping import NodeSpec, load_cameras_file
from .lifecycle import STOP, UsageError, init_ros, run_entry_point, spin_until_stopped
from .node import DetectorFactory, YoloxNode

rclpy = require('rclpy', 'the multi-camera runner', 'pip install ros-rclpy')
from rclpy.parameter import Parameter  # noqa: E402

LOGGER = logging.getLogger(__name__)


def create_nodes(specs: Sequence[NodeSpec], *, context: Any = None,
                 base_parameters: Optional[dict] = None,
                 overrides: Optional[dict] = None,
                 detector_factory: Optional[DetectorFactory] = None,
                 should_stop: Callable[[], bool] = lambda: False) -> List[YoloxNode]:
    """Create one ``YoloxNode`` per spec; if one fails, destroy those already made and raise.

    All or nothing, as the launch files: a camera that cannot start (a bad model, a device
    that cannot run here) stops the start-up of every camera, and the error, its message
    prefixed with ``camera '<name>': ``, keeps its type (so its exit status). ``should_stop``
    is asked before each node: when it turns true (a signal during start-up) the nodes made so
    far are returned. Parameters: ``base_parameters``, then each camera's, then ``overrides``.
    """
    nodes: List[YoloxNode] = []
    groups = BatchGroups()
    try:
        for spec in specs:
            if should_stop():
                break
            values = {**(base_parameters or {}), **spec.parameters, **(overrides or {})}
            for name, value in values.items():  # YAML 1 for a float parameter means 1.0
                if (name in PARAMS_BY_NAME and PARAMS_BY_NAME[name].type is float
                        and isinstance(value, int) and not isinstance(value, bool)):
                    values[name] = float(value)
            try:
                nodes.append(YoloxNode(
                    spec.name, namespace=spec.namespace, context=context,
                    cli_args=spec.ros_args(),
                    parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
                    detector_factory=detector_factory or groups.factory(spec.camera)))
            except YoloxError as exc:
                exc.args = (f"camera '{spec.camera}': {exc}",) + exc.args[1:]
                raise
            nodes[-1].get_logger().info(f"camera '{spec.camera}' on {spec.device}")
    except BaseException:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit status 2 (lifecycle)
        raise UsageError(f'{self.prog}: {message}')


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse the runner's own options (ROS arguments after --ros-args are left to rclpy)."""
    parser = _Parser(
        prog='yolox_multi_camera', description='Run one YOLOX detector node per camera of a '
        'cameras.yaml file, in one process (one executor thread, one worker per camera).')
    parser.add_argument('--cameras', required=True,
                        help='cameras file (see config/cameras.yaml)')
    parser.add_argument('--params-file', default=None,
                        help='ROS parameter file (/**: ros__parameters) applied to every camera')
    parser.add_argument('--allow-cpu-fallback', choices=('true', 'false'), default=None,
                        help='set allow_cpu_fallback of every camera (over the files): run a '
                        'gpu / DLA camera on the CPU where nothing here can use its device')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Start every camera's node and spin them until SIGINT / SIGTERM (see ``lifecycle``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    ros_args = argv[argv.index('--ros-args'):] if '--ros-args' in argv else []

    def body() -> None:
        options = parse_args(argv[:len(argv) - len(ros_args)])
        specs = load_cameras_file(options.cameras)
        base = load_param_yaml(options.params_file) if options.params_file else {}
        with init_ros(['yolox_multi_camera'] + ros_args):
            overrides = ({} if options.allow_cpu_fallback is None else
                         {'allow_cpu_fallback': options.allow_cpu_fallback == 'true'})
            nodes = create_nodes(specs, base_parameters=base, overrides=overrides,
                                 should_stop=STOP.is_set)
            try:
                if not STOP.is_set():
                    LOGGER.info('running %d camera node(s): %s', len(nodes),
                                ', '.join(n.get_fully_qualified_name() for n in nodes))
                    spin_until_stopped(nodes)
            finally:
                for node in nodes:
                    node.destroy_node()

    return run_entry_point(body)
