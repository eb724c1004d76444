"""The package's Fast DDS profile for camera images, applied unless the user chose their own.

Fast DDS's default shared-memory segments (512 KiB) are too small for camera images: between
processes a best-effort subscriber (the detector's input QoS) loses most frames of 640x480 and
larger. ``config/fastdds_large_data.xml`` (shared memory only, 64 MiB segments; installed to
``share/tensorrt_yolox_py/config/``) fixes that on one machine. ``decide(environ)`` says what
to do with an environment, as a pure function:

- ``FASTDDS_DEFAULT_PROFILES_FILE`` (or Fast DDS's older name ``FASTRTPS_DEFAULT_PROFILES_FILE``)
  present, even empty: the user's choice, kept;
- ``RMW_IMPLEMENTATION`` naming another middleware than Fast DDS (e.g. ``rmw_cyclonedds_cpp``,
  configured by ``CYCLONEDDS_URI``): nothing is applied, that middleware's settings are the
  user's;
- otherwise (Fast DDS, the default RMW of the ROS 2 wheels and of every distribution since
  Humble): the package's profile is applied.

``apply_dds_profile(environ, logger)`` (the console scripts, before ``rclpy.init``) sets the
variable and logs one line; the launch files do the same for the processes they start
(``launch_support.dds_profile_actions``) and mark the environment with ``LOGGED_VARIABLE`` so
the nodes do not log it again. Imports only the standard library (and ament_index_python,
lazily, when present).
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, MutableMapping, Optional

PACKAGE = 'tensorrt_yolox_py'
PROFILE_NAME = 'fastdds_large_data.xml'
VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
#: Fast DDS < 2.x read this name; Fast DDS 2 and 3 still honour it.
LEGACY_VARIABLE = 'FASTRTPS_DEFAULT_PROFILES_FILE'
FAST_DDS_RMWS = ('rmw_fastrtps_cpp', 'rmw_fastrtps_dynamic_cpp')
#: Set by the launch files for their nodes: the choice was logged once already.
LOGGED_VARIABLE = 'YOLOX_DDS_PROFILE_LOGGED'


@dataclass(frozen=True)
class Decision:
    """What to do about the DDS profile: ``path`` to set (None: leave it), and why."""

    path: Optional[str]
    message: str
    #: Whether the message is a warning (the profile was wanted but is not installed).
    warning: bool = False


def find_profile() -> Optional[Path]:
    """Return the installed profile: the ament share folder, sys.prefix's share, or the checkout.

    The share folder is where ``colcon build`` and ``scripts/ament_layout.py`` put it; an
    editable or source-tree run finds the checkout's ``config/``. None when none exists.
    """
    candidates = []
    try:
        from ament_index_python.packages import (get_package_share_directory,
                                                 PackageNotFoundError)
    except ImportError:
        pass
    else:
        try:
            candidates.append(Path(get_package_share_directory(PACKAGE)) / 'config')
        except (PackageNotFoundError, ValueError, LookupError, OSError):
            pass
    candidates.append(Path(sys.prefix) / 'share' / PACKAGE / 'config')
    candidates.append(Path(__file__).resolve().parents[2] / 'config')
    for folder in candidates:
        if (folder / PROFILE_NAME).is_file():
            return (folder / PROFILE_NAME).absolute()
    return None


def decide(environ: MutableMapping[str, str], profile: Optional[Path] = None) -> Decision:
    """Return the decision for ``environ`` (see the module docstring); ``profile`` for tests."""
    for name in (VARIABLE, LEGACY_VARIABLE):
        if name in environ:
            return Decision(None, f'DDS: using your {name}={environ[name]!r} (the package\'s '
                            'large-image profile is not applied)')
    rmw = environ.get('RMW_IMPLEMENTATION', '')
    if rmw and rmw not in FAST_DDS_RMWS:
        return Decision(None, f'DDS: RMW_IMPLEMENTATION={rmw}: the package\'s Fast DDS profile '
                        'does not apply; large images depend on that middleware\'s settings')
    found = profile if profile is not None else find_profile()
    if found is None:
        return Decision(None, f'DDS: {PROFILE_NAME} not found (no share/{PACKAGE}/config): '
                        'large images between processes may be lost; set '
                        f'{VARIABLE} (docs/ros_interface.md, "DDS on one machine")',
                        warning=True)
    return Decision(str(found), f'DDS: {VARIABLE}={found} (shared memory, 64 MiB segments, '
                    f'for large images; set {VARIABLE} to use your own)')


def apply_dds_profile(environ: MutableMapping[str, str], logger: Any,
                      for_children: bool = False) -> Decision:
    """Apply ``decide(environ)`` to ``environ`` and log it, unless a launch file logged it.

    Call before ``rclpy.init`` (Fast DDS reads the variable when a participant is created).
    ``for_children`` (a launch file): mark ``environ`` so the processes started with it do
    not log the decision again.
    """
    decision = decide(environ)
    if decision.path is not None:
        environ[VARIABLE] = decision.path
    if environ.get(LOGGED_VARIABLE) != '1':
        (logger.warning if decision.warning else logger.info)(decision.message)
    if for_children:
        environ[LOGGED_VARIABLE] = '1'
    return decision
