"""Trusted folders and artefacts (tensorrt_yolox_py.trust) on real files, modes and links.

The checks judge ownership and modes from ``lstat`` results, so they hold when the tests run
as root (who could read anything): foreign ownership is made with ``os.chown`` to another uid.
"""

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tensorrt_yolox_py import trust
from tensorrt_yolox_py.trust import UntrustedPathError

OTHER_UID = 4242 if os.geteuid() != 4242 else 4243
needs_chown = pytest.mark.skipif(os.geteuid() != 0, reason='making a foreign-owned folder needs '
                                 'root (chown)')


@pytest.fixture
def home(tmp_path):
    """A private folder (0700, the user's) to build the cases in."""
    os.chmod(tmp_path, 0o700)
    return tmp_path


def test_private_folder_is_created_0700_and_accepted(home):
    folder = trust.check_folder(home / 'a' / 'b', 'engine cache folder')
    assert folder == home / 'a' / 'b'
    for path in (home / 'a', home / 'a' / 'b'):
        assert stat.S_IMODE(os.lstat(path).st_mode) & 0o077 == 0
    assert trust.check_folder(folder) == folder     # again: already there


@pytest.mark.parametrize('mode', [0o777, 0o775, 0o757])
def test_group_or_other_writable_folder_is_refused(home, mode):
    folder = home / 'shared'
    folder.mkdir()
    os.chmod(folder, mode)
    with pytest.raises(UntrustedPathError, match=r'writable by group or others.*chmod go-w'):
        trust.check_folder(folder, 'engine cache folder')


def test_sticky_folder_of_the_user_is_accepted_but_foreign_files_in_it_are_not(home):
    folder = home / 'sticky'
    folder.mkdir()
    os.chmod(folder, 0o1777)
    trust.check_folder(folder)
    planted = folder / 'x.engine'
    planted.write_bytes(b'plan')
    os.chmod(planted, 0o666)
    with pytest.raises(UntrustedPathError, match='writable by group or others'):
        trust.check_file(planted)


@needs_chown
def test_foreign_owned_folder_is_refused(home):
    folder = home / 'theirs'
    folder.mkdir(mode=0o755)
    os.chown(folder, OTHER_UID, -1)
    with pytest.raises(UntrustedPathError, match=rf'owned by .*{OTHER_UID}.*not by you'):
        trust.check_folder(folder, 'engine cache folder')


@needs_chown
def test_folder_under_a_foreign_parent_is_refused(home):
    parent = home / 'theirs'
    parent.mkdir(mode=0o755)
    (parent / 'mine').mkdir(mode=0o700)
    os.chown(parent, OTHER_UID, -1)
    with pytest.raises(UntrustedPathError, match='its parent'):
        trust.check_folder(parent / 'mine')


def test_folder_under_a_writable_non_sticky_parent_is_refused(home):
    parent = home / 'open'
    parent.mkdir()
    (parent / 'mine').mkdir(mode=0o700)
    os.chmod(parent, 0o777)
    with pytest.raises(UntrustedPathError, match='its parent'):
        trust.check_folder(parent / 'mine')
    with pytest.raises(UntrustedPathError, match='its parent'):
        trust.check_folder(parent / 'new', create=True)
    assert not (parent / 'new').exists()     # refused before making anything


def test_folder_under_a_sticky_parent_like_tmp_is_accepted(home):
    parent = home / 'tmp'
    parent.mkdir()
    os.chmod(parent, 0o1777)
    assert trust.check_folder(parent / 'mine').is_dir()


@needs_chown
def test_foreign_symlink_on_the_path_is_refused(home):
    real = home / 'real'
    real.mkdir(mode=0o700)
    link = home / 'link'
    link.symlink_to(real)
    os.chown(link, OTHER_UID, -1, follow_symlinks=False)
    with pytest.raises(UntrustedPathError, match='symbolic link'):
        trust.check_folder(link)


def test_own_symlink_to_an_open_folder_is_refused_by_the_resolved_check(home):
    real = home / 'open'
    real.mkdir()
    os.chmod(real, 0o777)
    link = home / 'link'
    link.symlink_to(real)
    with pytest.raises(UntrustedPathError, match='writable by group or others'):
        trust.check_folder(link)


def test_write_atomic_replaces_a_planted_symlink_and_never_writes_through_it(home):
    victim = home / 'victim.txt'
    victim.write_bytes(b'precious')
    target = home / 'model.ranges.json'
    target.symlink_to(victim)
    trust.write_atomic(target, b'{"a": [0, 1]}')
    assert victim.read_bytes() == b'precious'
    assert not target.is_symlink() and target.read_bytes() == b'{"a": [0, 1]}'
    assert trust.verify(target) == ''
    assert stat.S_IMODE(os.lstat(target).st_mode) == 0o600
    assert sorted(p.name for p in home.iterdir()) == [
        'model.ranges.json', 'model.ranges.json.digest.json', 'victim.txt']


def test_staging_publishes_a_file_written_by_name_with_its_digest(home):
    path = home / 'typed.onnx'
    victim = home / 'victim'
    victim.write_bytes(b'precious')
    path.symlink_to(victim)
    with trust.staging(path) as tmp:
        assert tmp.parent != home and stat.S_IMODE(os.lstat(tmp.parent).st_mode) == 0o700
        tmp.write_bytes(b'model')
    assert path.read_bytes() == b'model' and victim.read_bytes() == b'precious'
    assert trust.verify(path) == ''
    assert sorted(p.name for p in home.iterdir()) == ['typed.onnx', 'typed.onnx.digest.json',
                                                      'victim']


def test_staging_keeps_nothing_when_the_writer_fails(home):
    path = home / 'typed.onnx'
    with pytest.raises(RuntimeError):
        with trust.staging(path) as tmp:
            tmp.write_bytes(b'half')
            raise RuntimeError('killed')
    assert list(home.iterdir()) == []


def test_tampered_truncated_or_unrecorded_artefacts_are_rejected(home):
    path = home / 'calib.cache'
    trust.write_atomic(path, b'x' * 100)
    assert trust.read_verified(path) == b'x' * 100
    path.write_bytes(b'y' * 100)                       # same size, other content
    assert 'does not match its recorded sha256' in trust.verify(path)
    assert trust.read_verified(path) is None
    trust.write_atomic(path, b'x' * 100)
    with open(path, 'r+b') as f:
        f.truncate(40)
    assert 'truncated' in trust.verify(path)
    trust.digest_path(path).unlink()
    assert 'no digest sidecar' in trust.verify(path)
    assert trust.verify(home / 'absent') == 'missing'


def test_planted_file_with_a_recomputed_digest_is_rejected_by_its_mode(home):
    path = home / 'x.ranges.json'
    trust.write_atomic(path, b'{}')
    os.chmod(path, 0o666)                             # someone else could have written it
    assert 'writable by group or others' in trust.verify(path)


@needs_chown
def test_foreign_file_with_a_matching_digest_is_rejected(home):
    path = home / 'x.engine'
    trust.write_atomic(path, b'plan')
    os.chown(path, OTHER_UID, -1)
    assert 'not by you' in trust.verify(path)


def test_arrays_and_json_round_trip(home):
    arrays = {'lo': np.arange(5, dtype=np.float32), 'hist': np.ones((3, 4), np.int64)}
    trust.save_arrays(home / 'pass1.npz', arrays)
    loaded = trust.load_arrays(home / 'pass1.npz')
    assert set(loaded) == set(arrays)
    for name in arrays:
        np.testing.assert_array_equal(loaded[name], arrays[name])
    trust.save_json(home / 'eval.json', {'MinMax|100': {'mAP50': 0.5}})
    assert trust.load_json(home / 'eval.json') == {'MinMax|100': {'mAP50': 0.5}}
    with pytest.raises(TypeError, match='object arrays'):
        trust.save_arrays(home / 'bad.npz', {'x': np.array([{'a': 1}], dtype=object)})


class _Payload:
    """Unpickling this creates a marker file: proof that a pickle ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_an_npz_with_a_pickled_payload_is_never_unpickled(home):
    marker = home / 'payload_ran'
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([_Payload(str(marker))], dtype=object))
    path = home / 'pass1.npz'
    trust.write_atomic(path, buffer.getvalue())       # even with a valid digest
    assert trust.load_arrays(path) is None
    assert not marker.exists()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as z:
        assert z.namelist() == ['x.npy']
    np.load(io.BytesIO(buffer.getvalue()), allow_pickle=True)['x']   # control: pickle runs it
    assert marker.exists()


def test_bad_json_checkpoint_is_redone_not_fatal(home):
    path = home / 'eval.json'
    trust.write_atomic(path, b'{"half": ')
    assert trust.load_json(path) is None
    trust.save_json(path, {'done': 1})
    assert json.loads(path.read_text()) == {'done': 1}
