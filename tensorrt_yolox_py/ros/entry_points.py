"""The ROS console scripts ``yolox_node`` and ``yolox_multi_camera`` (setup.py entry points).

They install the signal handlers (``lifecycle``) before the heavy imports (rclpy, ONNX
Runtime) run, then run ``node.main`` or ``multi_camera.main`` and exit with its status. This
module sits above ``lifecycle``, ``node`` and ``multi_camera`` so that none of them imports
another in a circle (``node`` and ``multi_camera`` use ``lifecycle``; only this module uses
them).
"""

from .lifecycle import exit_process, install_signal_handlers


def yolox_node() -> None:
    """Console script ``yolox_node``: signal handlers first, then the heavy imports."""
    install_signal_handlers()
    from .node import main

    exit_process(main())


def yolox_multi_camera() -> None:
    """Console script ``yolox_multi_camera``: signal handlers first, then the heavy imports."""
    install_signal_handlers()
    from .multi_camera import main

    exit_process(main())
