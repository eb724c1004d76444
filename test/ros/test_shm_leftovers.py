"""Fast DDS shared-memory leftovers: found from real kernel locks, never a live process's."""

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import subprocess_env

from tensorrt_yolox_py.ros import shm_leftovers

OLD = time.time() - 3600


def _participant_files(directory: Path, ident: str, size: int = 1000) -> Path:
    for name, data in ((f'fastdds_{ident}', b'x' * size), (f'fastdds_{ident}_el', b''),
                       (f'sem.fastdds_{ident}_mutex', b'')):
        (directory / name).write_bytes(data)
        os.utime(directory / name, (OLD, OLD))
    return directory / f'fastdds_{ident}_el'


def test_only_files_whose_lock_nobody_holds_are_leftovers(tmp_path: Path) -> None:
    _participant_files(tmp_path, '00000000000000aa', 5000)
    alive = _participant_files(tmp_path, '00000000000000bb')
    young = _participant_files(tmp_path, '00000000000000cc')
    os.utime(young, None)  # just created: a process may be about to lock it
    (tmp_path / 'unrelated_el').write_bytes(b'')
    with open(alive, 'rb') as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live owner's lock
        found = shm_leftovers.find_leftovers(tmp_path)
        assert sorted(Path(p).name for p in found) == [
            'fastdds_00000000000000aa', 'fastdds_00000000000000aa_el',
            'sem.fastdds_00000000000000aa_mutex']
        assert found[str(tmp_path / 'fastdds_00000000000000aa')] == 5000
        removed = shm_leftovers.remove_leftovers(found)
        assert sorted(removed) == sorted(found)
        assert alive.exists() and young.exists()
    # Released: now the former owner's files are leftovers too.
    found = shm_leftovers.find_leftovers(tmp_path)
    assert str(tmp_path / 'fastdds_00000000000000bb') in found


def test_port_files_without_a_lock_file_are_orphans_unless_a_process_uses_them(
        tmp_path: Path) -> None:
    import mmap

    for port in (7001, 7002, 7003, 7004):
        for name in (f'fastdds_port{port}', f'sem.fastdds_port{port}_mutex'):
            (tmp_path / name).write_bytes(b'p' * 4096)
            os.utime(tmp_path / name, (OLD, OLD))
    (tmp_path / 'fastdds_port7004_sl').write_bytes(b'')     # a shared lock file: not lockless
    os.utime(tmp_path / 'fastdds_port7004_sl', (OLD, OLD))
    young = tmp_path / 'fastdds_port7005'
    young.write_bytes(b'p')                                 # just created: maybe being opened
    with open(tmp_path / 'fastdds_port7002', 'r+b') as mapped_file, \
            mmap.mmap(mapped_file.fileno(), 4096) as mapping, \
            open(tmp_path / 'fastdds_port7003', 'rb') as open_file:
        assert mapping[:1] == b'p' and open_file.read(1) == b'p'
        found = shm_leftovers.find_leftovers(tmp_path)
        assert sorted(Path(p).name for p in found) == [
            'fastdds_port7001', 'fastdds_port7004', 'fastdds_port7004_sl',
            'sem.fastdds_port7001_mutex', 'sem.fastdds_port7004_mutex']
        assert found[str(tmp_path / 'fastdds_port7001')] == 4096
        # without a readable /proc, nothing lockless is reported
        assert not any('7001' in p for p in shm_leftovers.find_leftovers(
            tmp_path, proc=tmp_path / 'no_proc'))
    found = shm_leftovers.find_leftovers(tmp_path)          # closed and unmapped now
    assert {'fastdds_port7002', 'fastdds_port7003'} <= {Path(p).name for p in found}


def test_nothing_is_reported_without_dev_shm_or_proc_locks(tmp_path: Path) -> None:
    assert shm_leftovers.find_leftovers(tmp_path / 'none') == {}
    assert shm_leftovers.find_leftovers(tmp_path, locks=tmp_path / 'no_locks') == {}


def _identity(path: str) -> tuple:
    """Return (major, minor, inode) of a file, or () when it is gone."""
    try:
        info = os.stat(path)
    except OSError:
        return ()
    return (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)


def _files_of(pid: int) -> dict:
    """Return {path: (major, minor, inode)} of the /dev/shm files one process maps or holds."""
    found = {}
    for line in Path(f'/proc/{pid}/maps').read_text().splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith('/dev/shm/'):
            found[fields[5]] = _identity(fields[5])
    for fd in Path(f'/proc/{pid}/fd').iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith('/dev/shm/'):
            found[target] = _identity(target)
    return found


@pytest.mark.ros
def test_a_participant_killed_hard_leaves_files_that_are_found(tmp_path: Path) -> None:
    pytest.importorskip('rclpy')
    if not Path('/dev/shm').is_dir() or not Path('/proc/locks').exists():
        pytest.skip('no /dev/shm or /proc/locks')
    before = set(shm_leftovers.find_leftovers(min_age_s=0.0))
    code = ('import rclpy, sys, time; from std_msgs.msg import Float64; rclpy.init(); '
            "n = rclpy.create_node('shm_victim'); p = n.create_publisher(Float64, 'x', 1); "
            "print('ready', flush=True); time.sleep(60)")
    process = subprocess.Popen([sys.executable, '-c', code], env=subprocess_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().strip() == 'ready'
        live = set(shm_leftovers.find_leftovers(min_age_s=0.0)) - before
        # Other processes may make and drop port files meanwhile (a loaded CI machine, other
        # tests): what must never be reported is a file the live victim maps or holds open.
        victim = _files_of(process.pid)
        assert any(Path(name).name.startswith(('fastdds_', 'fastrtps_')) for name in victim), \
            victim
        held = {path for path in live if _identity(path) in victim.values()}
        assert not held, f'a live process\'s files reported: {held}'
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    left = set(shm_leftovers.find_leftovers(min_age_s=0.0)) - before
    assert any(Path(p).name.endswith('_el') for p in left), left
    assert any(Path(p).name.startswith(('fastdds_', 'fastrtps_')) and not p.endswith('_el')
               for p in left), left
    # Clean only what this test's victim left.
    assert sorted(shm_leftovers.remove_leftovers({p: 0 for p in left})) == sorted(left)
