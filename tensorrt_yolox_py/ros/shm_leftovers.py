"""Fast DDS shared-memory files left in /dev/shm by processes that were killed hard.

Fast DDS's shared-memory transport keeps, per participant, a segment file
``/dev/shm/fastdds_<id>`` (``fastrtps_`` before Fast DDS 3) and per listening port a file
``fastdds_port<N>``; next to each, a ``..._el`` file that the owning process holds an
exclusive ``flock`` on for as long as it lives. A process killed with SIGKILL (or a crash)
never removes them: the segments keep their memory (up to 64 MiB each with
config/fastdds_large_data.xml), and the next processes log ``RTPS_TRANSPORT_SHM Error ...
open_and_lock_file failed`` when they meet them.

A file is a leftover when its ``_el`` lock file exists, nobody holds a lock on it (read from
/proc/locks: nothing is locked or opened to find out) and it is older than ``MIN_AGE_S`` (a
process that is starting creates the file a moment before it locks it). Removing leftovers
is then safe: no live process owns them (what ``fastdds shm clean`` of the Fast DDS tools
does too).

- ``find_leftovers()``: the leftover files (segment, lock, port mutex) and their bytes.
- ``warn_about_leftovers()``: one warning line with what to do, at the entry points' start.
- ``python -m tensorrt_yolox_py.tools.shm_leftovers [--clean]``: list, or remove, them.

Only the standard library; on systems without /dev/shm or /proc/locks nothing is reported.
"""

import logging
import os
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

SHM_DIR = Path('/dev/shm')
LOCKS = Path('/proc/locks')
MIN_AGE_S = 10.0
_OWNED = re.compile(r'^(fastdds|fastrtps)_(port\d+|[0-9a-f]{16})_el$')
LOGGER = logging.getLogger(__name__)


def _locked_files(locks: Path = LOCKS) -> Set[Tuple[int, int, int]]:
    """Return {(major, minor, inode)} of every file someone holds a lock on."""
    held = set()
    try:
        lines = locks.read_text().splitlines()
    except OSError:
        return held
    for line in lines:
        fields = line.split()
        if '->' in fields:  # a waiter, not a holder
            continue
        try:
            major, minor, inode = fields[5].split(':')
            held.add((int(major, 16), int(minor, 16), int(inode)))
        except (IndexError, ValueError):
            continue
    return held


def find_leftovers(shm_dir: Path = SHM_DIR, locks: Path = LOCKS,
                   min_age_s: float = MIN_AGE_S) -> Dict[str, int]:
    """Return {path: bytes} of the leftover Fast DDS files (see the module docstring)."""
    if not shm_dir.is_dir() or not locks.exists():
        return {}
    held = _locked_files(locks)
    now = time.time()
    found: Dict[str, int] = {}
    for lock_file in sorted(shm_dir.iterdir()):
        match = _OWNED.match(lock_file.name)
        if not match:
            continue
        try:
            info = lock_file.stat()
        except OSError:
            continue
        key = (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
        if key in held or now - info.st_mtime < min_age_s:
            continue
        base = lock_file.name[:-3]
        for name in (lock_file.name, base, f'sem.{base}_mutex'):
            path = shm_dir / name
            try:
                found[str(path)] = path.stat().st_size
            except OSError:
                continue
    return found


def remove_leftovers(leftovers: Dict[str, int]) -> List[str]:
    """Remove ``leftovers`` (from ``find_leftovers``); return the paths removed."""
    removed = []
    for path in leftovers:
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            LOGGER.warning('cannot remove %s: %s', path, exc)
    return removed


def warn_about_leftovers(logger: Optional[logging.Logger] = None) -> Dict[str, int]:
    """Log one warning when leftovers exist (what they are, what to do); return them."""
    leftovers = find_leftovers()
    if leftovers:
        size = sum(leftovers.values()) / 2**20
        (logger or LOGGER).warning(
            '%d Fast DDS shared-memory file(s) in %s (%.0f MiB) belong to no running process '
            '(left by a process killed hard); they hold memory and make Fast DDS log '
            '"RTPS_TRANSPORT_SHM Error ... open_and_lock_file failed". Remove them with: '
            'python -m tensorrt_yolox_py.tools.shm_leftovers --clean (or fastdds shm clean)',
            len(leftovers), SHM_DIR, size)
    return leftovers
