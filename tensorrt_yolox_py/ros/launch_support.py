"""Launch-file support: ``ros2 launch`` stops its nodes cleanly on SIGTERM, as on Ctrl-C.

Upstream ``launch`` (3.7.1 and every release we know of; ros2/launch#666, fix proposed in
ros2/launch#712) does not catch SIGTERM: ``kill <ros2 launch pid>``, a systemd stop or a
``docker stop`` kills the launch process at once and leaves every node it started running,
orphaned. ``stop_on_sigterm`` (an ``OpaqueFunction`` placed first in this package's launch files)
makes the launch process treat SIGTERM like SIGINT from a non-interactive caller: it emits the
``Shutdown`` event, so launch sends SIGINT to every node, waits for them (escalating to SIGTERM
and SIGKILL after its usual timeouts) and exits with status 0.

How: launch's ``AsyncSafeSignalManager`` (the one active while the launch runs) dispatches the
signals it reads from Python's wakeup fd; its SIGTERM entry (which cancels the launch and
orphans the nodes) is replaced through its public ``handle()`` method, and a Python-level SIGTERM
handler is installed so the signal reaches the wakeup fd instead of terminating the process.
Where the manager cannot be found (another launch version), nothing changes and a warning says
so. Needs the launch system (``launch``), imported lazily.
"""

import signal
from typing import Any, List


def _active_signal_manager() -> Any:
    """Return launch's active ``AsyncSafeSignalManager``, or None."""
    from launch.utilities.signal_management import AsyncSafeSignalManager

    return getattr(AsyncSafeSignalManager, '_AsyncSafeSignalManager__current', None)


def _wake_only(signum: int, frame: Any) -> None:
    """Python-level handler: the signal is dispatched by launch's signal manager instead."""


def stop_on_sigterm(context: Any, *args: Any, **kwargs: Any) -> List[Any]:
    """Make SIGTERM end the launch like SIGINT (an ``OpaqueFunction`` body; returns no actions)."""
    import launch.logging
    from launch.events import Shutdown

    logger = launch.logging.get_logger('tensorrt_yolox_py')
    manager = _active_signal_manager()
    if manager is None or not hasattr(manager, 'handle'):
        logger.warning('this launch version has no signal manager we know: SIGTERM to ros2 '
                       'launch may leave the nodes running (stop it with Ctrl-C / SIGINT)')
        return []
    received = []

    def on_sigterm(signum: int) -> None:
        if received:
            logger.warning('SIGTERM again: already stopping the nodes')
            return
        received.append(signum)
        logger.warning('SIGTERM: stopping every node (SIGINT, as on Ctrl-C)')
        context.emit_event_sync(Shutdown(reason='SIGTERM', due_to_sigint=False))

    manager.handle(signal.SIGTERM, on_sigterm)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _wake_only)
    return []
