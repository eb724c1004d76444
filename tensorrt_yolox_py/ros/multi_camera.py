"""Run one detector node per camera of a cameras.yaml in ONE process (console: yolox_multi_camera).

The same nodes as ``launch/multi_camera.launch.py`` starts (the mapping is
``camera_mapping.node_specs``), without the launch system: each camera's node gets its name,
namespace, remappings and parameters, and all of them spin in one ``MultiThreadedExecutor``.
Each node still has its own worker thread, so a slow camera does not hold back the others.
Cameras with ``max_batch`` > 1 that share a model and a device share one batched detector
(``batching.BatchGroups``): one inference call per batch, each frame waiting at most
``batch_wait_ms`` for the others; DLA cameras keep batch 1.

    yolox_multi_camera --cameras config/cameras.yaml [--params-file p.yaml] [--ros-args ...]

``--params-file`` values apply to every camera, under the cameras file's own ``parameters``.
"""

import argparse
import logging
from typing import Any, List, Optional, Sequence

from .._lazy import require
from ..batching import BatchGroups
from ..params import PARAMS_BY_NAME, load_param_yaml
from .camera_mapping import NodeSpec, load_cameras_file
from .node import DetectorFactory, YoloxNode, run_until_shutdown

rclpy = require('rclpy', 'the multi-camera runner', 'pip install ros-rclpy')
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

LOGGER = logging.getLogger(__name__)


def create_nodes(specs: Sequence[NodeSpec], *, context: Any = None,
                 base_parameters: Optional[dict] = None,
                 detector_factory: Optional[DetectorFactory] = None) -> List[YoloxNode]:
    """Create one ``YoloxNode`` per spec; if one fails, destroy those already made and raise."""
    nodes: List[YoloxNode] = []
    groups = BatchGroups()
    try:
        for spec in specs:
            values = {**(base_parameters or {}), **spec.parameters}
            for name, value in values.items():  # YAML 1 for a float parameter means 1.0
                if (name in PARAMS_BY_NAME and PARAMS_BY_NAME[name].type is float
                        and isinstance(value, int) and not isinstance(value, bool)):
                    values[name] = float(value)
            nodes.append(YoloxNode(
                spec.name, namespace=spec.namespace, context=context,
                cli_args=spec.ros_args(),
                parameter_overrides=[Parameter(k, value=v) for k, v in values.items()],
                detector_factory=detector_factory or groups.factory(spec.camera)))
            nodes[-1].get_logger().info(f"camera '{spec.camera}' on {spec.device}")
    except BaseException:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse the runner's own options (ROS arguments after --ros-args are left to rclpy)."""
    parser = argparse.ArgumentParser(
        prog='yolox_multi_camera', description='Run one YOLOX detector node per camera of a '
        'cameras.yaml file, in one process with a multi-threaded executor.')
    parser.add_argument('--cameras', required=True,
                        help='cameras file (see config/cameras.yaml)')
    parser.add_argument('--params-file', default=None,
                        help='ROS parameter file (/**: ros__parameters) applied to every camera')
    parser.add_argument('--threads', type=int, default=None,
                        help='executor threads (default: one per camera + 1)')
    own, _ = parser.parse_known_args(argv)
    return own


def main(argv: Optional[List[str]] = None) -> int:
    """Start every camera's node and spin them until Ctrl-C / SIGTERM."""
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    ros_args = argv[argv.index('--ros-args'):] if '--ros-args' in argv else []
    options = parse_args(argv[:len(argv) - len(ros_args)])

    def body() -> None:
        specs = load_cameras_file(options.cameras)
        base = load_param_yaml(options.params_file) if options.params_file else {}
        with rclpy.init(args=['yolox_multi_camera'] + ros_args):
            nodes = create_nodes(specs, base_parameters=base)
            executor = MultiThreadedExecutor(num_threads=options.threads or len(nodes) + 1)
            try:
                for node in nodes:
                    executor.add_node(node)
                LOGGER.info('running %d camera node(s): %s', len(nodes),
                            ', '.join(n.get_fully_qualified_name() for n in nodes))
                executor.spin()
            finally:
                executor.shutdown()
                for node in nodes:
                    node.destroy_node()

    return run_until_shutdown(body)


if __name__ == '__main__':
    raise SystemExit(main())
