"""The platform table's rows as CI checks them (docs/platforms.md is the table for users).

Each row: the Python a platform ships, its architecture and glibc (for pip's platform tags),
the CUDA requirement files that must resolve there, and the ROS 2 distribution and Ubuntu
release whose rosdep keys and rclpy / launch API apply. A test checks that docs/platforms.md
names every row and the check that holds it.
"""

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

#: Module names that are ROS packages when the code imports them (rosidl message packages,
#: the client library, launch, ament's index): package.xml keys, not pip requirements.
ROS_MODULE = re.compile(r'^(rclpy|launch|launch_ros|ament_index_python|rcl_interfaces|'
                        r'builtin_interfaces|[a-z0-9_]+_msgs|[a-z0-9_]+_interfaces)$')


@dataclass(frozen=True)
class Row:
    """One supported platform."""

    name: str                 #: the id used in test ids and docs/platforms.md
    python: str               #: 'X.Y'
    arch: str                 #: 'x86_64' or 'aarch64'
    glibc: Tuple[int, int]    #: the distribution's glibc (manylinux tags up to it)
    cuda: Tuple[str, ...]     #: the CUDA majors whose requirements file must resolve
    rosdistro: Optional[str]  #: ROS 2 distribution (rosdep, rclpy API); None = wheels only
    ubuntu: Optional[str]     #: Ubuntu codename rosdep resolves for

    def platform_tags(self) -> Tuple[str, ...]:
        """Return every manylinux tag a wheel may carry to install here (pip needs them all)."""
        first = 17 if self.arch == 'aarch64' else 5
        tags = [f'manylinux_{self.glibc[0]}_{minor}_{self.arch}'
                for minor in range(self.glibc[1], first - 1, -1)]
        tags.append(f'manylinux2014_{self.arch}')
        if self.arch == 'x86_64':
            tags += ['manylinux2010_x86_64', 'manylinux1_x86_64']
        return tuple(tags)


ROWS = (
    Row('jetpack6', '3.10', 'aarch64', (2, 35), ('12',), 'humble', 'jammy'),
    Row('jetpack7', '3.12', 'aarch64', (2, 39), ('13',), 'jazzy', 'noble'),
    Row('ubuntu22-humble', '3.10', 'x86_64', (2, 35), ('12', '13'), 'humble', 'jammy'),
    Row('ubuntu24-jazzy', '3.12', 'x86_64', (2, 39), ('12', '13'), 'jazzy', 'noble'),
    Row('ubuntu24-kilted', '3.12', 'x86_64', (2, 39), ('12', '13'), 'kilted', 'noble'),
    Row('kilted-wheels', '3.11', 'x86_64', (2, 36), ('13',), 'kilted', None),
)


def check_folder(name: str) -> Path:
    """Return a folder for packages a check installs once (outside any venv and the checkout).

    ``$XDG_CACHE_HOME/tensorrt_yolox_py/platform-checks/<python>-<machine>/<name>`` (default
    ``~/.cache``): compiled wheels fit one interpreter, so the folder names it.
    """
    base = Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache')
    tag = f'{sys.implementation.cache_tag}-{platform.machine()}'
    return base / 'tensorrt_yolox_py' / 'platform-checks' / tag / name


def install_once(name: str, requirements: Sequence[str]) -> Path:
    """Return ``check_folder(name)`` holding ``requirements`` (pip --target, no dependencies).

    Installed on first use (from pip's cache or the package index; short network timeouts) into
    a temporary sibling that is renamed into place, so parallel runs never see half a folder.
    An install that fails raises AssertionError with pip's reason.
    """
    folder = check_folder(name)
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f'.{name}-', dir=folder.parent))
    try:
        done = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
                               '--disable-pip-version-check', '--only-binary=:all:',
                               '--timeout', '20', '--retries', '1', '--target', str(work),
                               *requirements], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (f'could not install {list(requirements)} (this check '
                                      f"needs PyPI or pip's cache):\n{done.stderr[-2000:]}")
        try:
            os.rename(work, folder)
        except OSError:
            if not folder.is_dir():   # not a parallel run that finished first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder
