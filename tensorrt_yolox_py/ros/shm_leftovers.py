"""Fast DDS shared-memory files left in /dev/shm by processes that were killed hard.

Fast DDS's shared-memory transport keeps, per participant, a segment file
``/dev/shm/fastdds_<id>`` (``fastrtps_`` before Fast DDS 3) and per listening port a file
``fastdds_port<N>``; next to each, a ``..._el`` file that the owning process holds an
exclusive ``flock`` on for as long as it lives. A process killed with SIGKILL (or a crash)
never removes them: the segments keep their memory (up to 64 MiB each with
config/fastdds_large_data.xml), and the next processes log ``RTPS_TRANSPORT_SHM Error ...
open_and_lock_file failed`` when they meet them.

A file is a leftover when its ``_el`` (or ``_sl``) lock file exists, nobody holds a lock on
it (read from /proc/locks: nothing is locked or opened to find out) and it is older than
``MIN_AGE_S`` (a process that is starting creates the file a moment before it locks it).
Removing leftovers is then safe: no live process owns them (what ``fastdds shm clean`` of the
Fast DDS tools does too).

A port file ``fastdds_port<N>`` can also be left with NO lock file (a process that only sent
to the port opened it; ``fastdds shm clean`` never removes those): it is an orphan when it is
older than ``MIN_AGE_S``, belongs to this user, and no live process maps it or holds it open
(read from ``/proc/<pid>/maps`` and ``/proc/<pid>/fd``). Fast DDS makes these files 0644, so
only their owner's processes (or root's) can use them, and those are the ones this user can
inspect; a process whose /proc entries cannot be read (another user's, or a sandbox's init)
is skipped. Without a readable /proc, no lockless port file is reported.

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
_OWNED = re.compile(r'^(fastdds|fastrtps)_(port\d+|[0-9a-f]{16})_(el|sl)$')
_PORT = re.compile(r'^(fastdds|fastrtps)_port\d+$')
PROC = Path('/proc')
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


def _files_in_use(proc: Path = PROC) -> Optional[Set[Tuple[int, int, int]]]:
    """Return {(major, minor, inode)} of every file an inspectable process maps or holds open.

    None when /proc cannot be listed; processes whose entries cannot be read are skipped.
    """
    used: Set[Tuple[int, int, int]] = set()
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(proc / pid / 'maps', encoding='utf-8', errors='replace') as maps:
                for line in maps:
                    fields = line.split(None, 5)
                    if len(fields) == 6 and fields[4] != '0':
                        major, minor = fields[3].split(':')
                        used.add((int(major, 16), int(minor, 16), int(fields[4])))
            for fd in os.listdir(proc / pid / 'fd'):
                try:
                    info = os.stat(proc / pid / 'fd' / fd)
                except OSError:
                    continue        # closed meanwhile, or a socket / pipe
                used.add((os.major(info.st_dev), os.minor(info.st_dev), info.st_ino))
        except FileNotFoundError:
            continue                # the process ended
        except PermissionError:
            continue                # not inspectable by this user: see the module docstring
        except (OSError, ValueError):
            return None
    return used


def _lockless_ports(shm_dir: Path, min_age_s: float, proc: Path) -> Dict[str, int]:
    """Return {path: bytes} of port files with no lock file that no live process uses."""
    names = set(os.listdir(shm_dir))
    now = time.time()
    candidates = []
    for name in sorted(names):
        if not _PORT.match(name) or f'{name}_el' in names or f'{name}_sl' in names:
            continue
        try:
            info = (shm_dir / name).stat()
        except OSError:
            continue
        if info.st_uid == os.geteuid() and now - info.st_mtime >= min_age_s:
            candidates.append((name, info))
    if not candidates:
        return {}
    in_use = _files_in_use(proc)
    if in_use is None:
        return {}
    found: Dict[str, int] = {}
    for name, info in candidates:
        if (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino) in in_use:
            continue
        found[str(shm_dir / name)] = info.st_size
        mutex = shm_dir / f'sem.{name}_mutex'
        try:
            found[str(mutex)] = mutex.stat().st_size
        except OSError:
            pass
    return found


def find_leftovers(shm_dir: Path = SHM_DIR, locks: Path = LOCKS,
                   min_age_s: float = MIN_AGE_S, proc: Path = PROC) -> Dict[str, int]:
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
    found.update(_lockless_ports(shm_dir, min_age_s, proc))
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
