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

The other checks and actions both launch files share (each an ``OpaqueFunction`` body or a
helper of one):

- ``check_arguments``: the ``name:=value`` arguments of the ``ros2 launch`` command line are
  checked against the declared ones, before anything starts: an unknown name is an error that
  lists the valid names with a close-match suggestion (``devcie`` -> ``device``). Only where this
  file is the one ``ros2 launch`` runs (every launch configuration came from its command line);
  included from another launch file, the including file owns the command line.
- ``resolve_config_file``: ``cameras:=`` / ``params_file:=`` take a path (absolute, or relative to
  the current folder) or the name of a file in the package's ``share/.../config``; a missing file
  is an error naming where it was looked for.
- ``apply_dds_profile``: the package's Fast DDS large-image profile for the nodes, unless the
  user set their own (``dds_profile``), logged once.
- ``stop_on_failure``: a node process that exits with a non-zero status (a node that cannot
  start, or one that dies) stops the whole launch: the other nodes get SIGINT and ``ros2
  launch`` exits with status 1, with one error line naming the camera or node, the node's
  status and its ``yolox: error:`` line.

Errors raised here (``LaunchError``) make launch log ``[ERROR] [launch]: Caught exception in
launch (see debug for traceback): <message>``, stop every node and exit with status 1 (launch's
one failure status: it has no way to return another).
"""

import difflib
import signal
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence

PACKAGE = 'tensorrt_yolox_py'
#: Arguments ``ros2 launch`` itself adds from its --launch-prefix options.
LAUNCH_OPTIONS = ('launch-prefix', 'launch-prefix-filter')
#: Where a node's one-line start-up error starts (``lifecycle.report_startup_error``).
ERROR_PREFIX = 'yolox: error:'


class LaunchError(RuntimeError):
    """Bad launch input or a failed node; launch logs it, stops every node and exits 1."""


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


def _command_line_names(argv: Iterable[str]) -> List[str]:
    return [item.split(':=', 1)[0] for item in argv if ':=' in item]


def unknown_argument_error(given: Sequence[str], declared: Sequence[str],
                           launch_file: str) -> Optional[str]:
    """Return the error for the first unknown name of ``given`` (None when all are declared)."""
    valid = list(declared)
    for name in given:
        if name in valid or name in LAUNCH_OPTIONS:
            continue
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        return (f"unknown launch argument '{name}'{hint}; {launch_file} takes: "
                f"{', '.join(valid)} (ros2 launch {PACKAGE} {launch_file} --show-args)")
    return None


def check_arguments(context: Any, declared: Sequence[str], launch_file: str) -> None:
    """Raise LaunchError for an unknown command-line argument (see the module docstring).

    Call it first, before the ``DeclareLaunchArgument`` actions run: the launch
    configurations then hold only what was set before this file started.
    """
    given = _command_line_names(context.argv)
    if set(context.launch_configurations) != set(given):
        return  # included from another launch file: that file owns the command line
    error = unknown_argument_error(given, declared, launch_file)
    if error:
        raise LaunchError(error)


def share_config_dir() -> Path:
    """Return the installed ``share/tensorrt_yolox_py/config`` folder."""
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / 'config'


def resolve_config_file(argument: str, value: str, default_name: str,
                        config_dir: Optional[Path] = None, cwd: Optional[Path] = None) -> str:
    """Return the absolute path ``argument:=value`` names, or raise LaunchError.

    Empty: the package's ``config/<default_name>``. Otherwise a path (``~`` expanded; relative
    to ``cwd``, default the current folder) when it exists, else a bare file name found in the
    package's config folder.
    """
    folder = config_dir if config_dir is not None else share_config_dir()
    if not value:
        return str(folder / default_name)
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (cwd if cwd is not None else Path.cwd()) / path
    if path.is_file():
        return str(path.resolve())
    if Path(value).name == value and (folder / value).is_file():
        return str(folder / value)
    looked = f'{path}' + (f' or {folder / value}' if Path(value).name == value else '')
    raise LaunchError(f'{argument}:={value}: no such file ({looked}); give a path or the name '
                      f'of a file in {folder}')


def apply_dds_profile(context: Any, *args: Any, **kwargs: Any) -> List[Any]:
    """Set the Fast DDS profile for the nodes unless the user chose one; log it once."""
    import launch.logging

    from .dds_profile import apply_dds_profile as apply

    apply(context.environment, launch.logging.get_logger(PACKAGE), for_children=True)
    return []


def stop_on_failure(action: Any, label: str) -> List[Any]:
    """Return the handlers that end the launch when ``action``'s process exits non-zero.

    ``label`` names it in the error (e.g. "camera 'camera1' (node /ns/camera1/tensorrt_yolox)").
    The node's own ``yolox: error:`` line is kept from its output and repeated as the cause.
    An exit while launch is already shutting down (Ctrl-C, SIGTERM, another failure) is left
    to launch's own report.
    """
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit, OnProcessIO

    cause: List[str] = []

    def on_output(event: Any) -> None:
        for line in event.text.decode(errors='replace').splitlines():
            if ERROR_PREFIX in line:
                cause[:] = [line[line.index(ERROR_PREFIX):].strip()]

    def on_exit(event: Any, context: Any) -> None:
        if event.returncode == 0 or context.is_shutdown:
            return None
        why = cause[0] if cause else 'see its output above'
        raise LaunchError(f'{label} exited with status {event.returncode} ({why}); stopping '
                          'every node')

    return [RegisterEventHandler(OnProcessIO(target_action=action, on_stdout=on_output,
                                             on_stderr=on_output)),
            RegisterEventHandler(OnProcessExit(target_action=action, on_exit=on_exit))]
