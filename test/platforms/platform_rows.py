"""The platform table's rows as CI checks them (docs/platforms.md is the table for users).

Each row: the Python a platform ships, its architecture and glibc (for pip's platform tags),
the CUDA requirement files that must resolve there, and the ROS 2 distribution and Ubuntu
release whose rosdep keys and rclpy / launch API apply. A test checks that docs/platforms.md
names every row and the check that holds it.
"""

from dataclasses import dataclass
from typing import Optional, Tuple


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
