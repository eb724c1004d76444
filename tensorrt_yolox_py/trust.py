"""Trusted folders and artefacts: the one owner of what the package may read back from disk.

The package reads back files it wrote earlier (engines, calibration caches, calibrated ranges,
Q/DQ and strongly typed models, the calibration study's checkpoints). Whoever can write such a
file decides what runs, so these files are trusted only in folders that nobody else can write,
checked the way ssh checks its files (``StrictModes``), and each file is checked again against
a digest recorded when it was written.

Contract:

- ``check_folder(path, purpose, create=True) -> Path``: the absolute folder, created (mode
  0700, component by component) if missing. Refused with ``UntrustedPathError`` (the reason and
  the fix in its message) unless, for the effective user (root included: ownership is judged
  from ``os.lstat`` results, never by trying an access):

  * the folder is owned by the user, and not writable by group or others unless it is sticky
    (then others cannot remove or rename the user's files in it; files they create there are
    refused by ``check_file``);
  * every folder above it is owned by the user or root, and not writable by group or others
    unless it is sticky (``/tmp``): nobody else can rename or replace a component of the path;
  * every symbolic link on the way is owned by the user or root; the path is checked both as
    written and as resolved.

- ``check_file(path) -> os.stat_result``: the file's ``lstat``; refused unless it is a regular
  file (not a symbolic link) owned by the user and not writable by group or others.
- ``write_atomic(path, data, digest=True) -> str``: writes ``data`` to a temporary file with an
  unpredictable name created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600) in
  ``path``'s folder, fsyncs it and renames it onto ``path`` (``os.replace`` replaces a symbolic
  link planted at ``path``, never writes through it); then (``digest``) writes the sidecar
  ``<path>.digest.json`` (sha256 and size of the content) the same way. Returns the sha256.
- ``staging(path)``: a context manager for tools that write a file by name (ONNX savers): yields
  a path inside a fresh private folder (``mkdtemp``: unpredictable name, mode 0700) beside
  ``path``; on a normal exit the file is published to ``path`` with its digest (``publish``);
  the private folder is removed either way.
- ``verify(path) -> str``: '' if ``path`` passes ``check_file`` and matches its digest
  sidecar, else the reason it must not be used ('missing' when there is no file). Callers
  redo (rebuild, recompute) an artefact that fails, logging the reason; they never load it.
- ``read_verified(path) -> Optional[bytes]``: the content if it is verified (the digest checked
  on the bytes returned), else None with a warning naming the reason (nothing when missing).
- ``replace_folder(new, target)``: puts the finished folder ``new`` at ``target`` as a whole
  (the old ``target`` is renamed aside, ``new`` renamed in, the old one removed): a reader, or
  a run killed at any point, sees the old set of files or the new one, never a mixture (a kill
  between the two renames leaves the old set aside as ``.<name>.<id>.old``;
  ``recover_folder(target)`` puts it back and removes unfinished ``.<name>.*.partial``
  folders).
- ``save_json`` / ``load_json`` and ``save_arrays`` / ``load_arrays``: checkpoints in formats
  that cannot run code (JSON; ``.npz`` of plain numeric arrays read with
  ``allow_pickle=False``), written with ``write_atomic``; the loaders return None for a
  missing, tampered or unreadable file (the caller recomputes it).
"""

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

from .errors import FileError

LOGGER = logging.getLogger(__name__)
PathLike = Union[str, Path]
DIGEST_SUFFIX = '.digest.json'
_WRITABLE = stat.S_IWGRP | stat.S_IWOTH


class UntrustedPathError(FileError):
    """A folder or file others could have written; the message says why and how to fix."""


def _uid() -> int:
    return os.geteuid()


def _who(uid: int) -> str:
    try:
        import pwd

        return f'{pwd.getpwuid(uid).pw_name} (uid {uid})'
    except (ImportError, KeyError):
        return f'uid {uid}'


def _folder_problem(path: str, info: os.stat_result, own: bool) -> str:
    """Return why folder ``path`` is unsafe ('' if safe). ``own``: it must be the user's."""
    uid = _uid()
    if own and info.st_uid != uid:
        return (f'is owned by {_who(info.st_uid)}, not by you ({_who(uid)}). Fix: use a folder '
                f'you own, or `chown {_who(uid).split()[0]} {path}` if it is yours')
    if not own and info.st_uid not in (uid, 0):
        return (f'is owned by {_who(info.st_uid)}, who could rename or replace what is below '
                f'it. Fix: use a folder whose parents belong to you or root')
    if info.st_mode & _WRITABLE and not info.st_mode & stat.S_ISVTX:
        return (f'is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}), so '
                f'another user could plant or replace files. Fix: `chmod go-w {path}`')
    return ''


def _walk(path: str, purpose: str, target: str) -> None:
    """Check every component of the absolute ``path`` (lexically, ``lstat``); see contract.

    ``target`` is the folder asked for (``path`` or a descendant): only it must be the user's.
    """
    final_owned = path == target
    parts = Path(path).parts
    current = parts[0]
    for index, name in enumerate(parts):
        current = os.path.join(current, name) if index else name
        last = current == target
        info = os.lstat(current)
        if stat.S_ISLNK(info.st_mode):
            if info.st_uid not in (_uid(), 0):
                raise UntrustedPathError(current, (
                    f'{purpose} {target}: the symbolic link {current} is owned by '
                    f'{_who(info.st_uid)}, who can point it elsewhere at any time. Fix: use '
                    f'the real folder ({os.path.realpath(current)}) or a folder you own'))
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise UntrustedPathError(current, f'{purpose} {target}: {current} is not a folder')
        problem = _folder_problem(current, info, own=last and final_owned)
        if problem:
            where = 'the folder' if last else 'its parent'
            raise UntrustedPathError(current, f'{purpose} {target} refused: {where} {current} '
                                     f'{problem}')


def check_folder(path: PathLike, purpose: str = 'folder', create: bool = True) -> Path:
    """Return the absolute ``path`` after the checks of the module contract (creating it)."""
    absolute = os.path.abspath(os.path.expanduser(str(path)))
    missing = []
    existing = absolute
    while not os.path.lexists(existing):
        missing.append(existing)
        existing = os.path.dirname(existing)
    if missing and not create:
        raise FileError(absolute, f'{purpose} {absolute} does not exist')
    _walk(existing, purpose, absolute)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass    # made meanwhile by someone: judged by the checks below
    _walk(absolute, purpose, absolute)
    real = os.path.realpath(absolute)
    if real != absolute:
        _walk(real, purpose, real)
    return Path(absolute)


def check_file(path: PathLike) -> os.stat_result:
    """Return ``lstat(path)`` if it is a regular file of the user, else UntrustedPathError."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UntrustedPathError(path, f'{path} is a symbolic link (to '
                                 f'{os.path.realpath(path)}), not a file written here')
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedPathError(path, f'{path} is not a regular file')
    if info.st_uid != _uid():
        raise UntrustedPathError(path, f'{path} is owned by {_who(info.st_uid)}, not by you '
                                 f'({_who(_uid())}): not written by this package for you')
    if info.st_mode & _WRITABLE:
        raise UntrustedPathError(path, f'{path} is writable by group or others (mode '
                                 f'{stat.S_IMODE(info.st_mode):04o})')
    return info


def digest_path(path: PathLike) -> Path:
    """Return the digest sidecar's path of artefact ``path``."""
    return Path(f'{path}{DIGEST_SUFFIX}')


def _write_exclusive(path: Path, data: bytes) -> None:
    folder = path.parent
    for _ in range(100):
        tmp = folder / f'.{path.name}.{os.urandom(8).hex()}.tmp'
        try:
            handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | getattr(os, 'O_CLOEXEC', 0), 0o600)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f'no free temporary name beside {path}')
    try:
        with os.fdopen(handle, 'wb') as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _digest_record(sha256: str, size: int) -> bytes:
    return json.dumps({'schema': 1, 'sha256': sha256, 'size': size}, sort_keys=True).encode()


def write_atomic(path: PathLike, data: bytes, digest: bool = True) -> str:
    """Write ``data`` to ``path`` atomically (and its digest sidecar); return its sha256."""
    path = Path(path)
    data = bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    _write_exclusive(path, data)
    if digest:
        _write_exclusive(digest_path(path), _digest_record(sha, len(data)))
    return sha


def file_sha256(path: PathLike) -> str:
    """Return the sha256 hex digest of a file's contents."""
    sha = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            sha.update(block)
    return sha.hexdigest()


def publish(tmp: PathLike, path: PathLike) -> str:
    """Rename the finished file ``tmp`` onto ``path`` and record its digest; return it."""
    tmp, path = Path(tmp), Path(path)
    check_file(tmp)
    sha, size = file_sha256(tmp), tmp.stat().st_size
    os.replace(tmp, path)
    _write_exclusive(digest_path(path), _digest_record(sha, size))
    return sha


@contextlib.contextmanager
def staging(path: PathLike) -> Iterator[Path]:
    """Yield a private temporary path for ``path``; publish it on a normal exit (contract)."""
    path = Path(path)
    folder = tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.staging', dir=str(path.parent))
    try:
        tmp = Path(folder) / path.name
        yield tmp
        publish(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _recorded(path: Path) -> Dict[str, Any]:
    sidecar = digest_path(path)
    check_file(sidecar)
    record = json.loads(sidecar.read_text(encoding='utf-8'))
    if not isinstance(record, dict) or not isinstance(record.get('sha256'), str):
        raise ValueError('not a digest record')
    return record


def _reason(path: Path) -> str:
    if not os.path.lexists(path):
        return 'missing'
    try:
        info = check_file(path)
        record = _recorded(path)
    except FileNotFoundError:
        return f'{path.name} has no digest sidecar {digest_path(path).name} (unfinished write?)'
    except UntrustedPathError as exc:
        return str(exc)
    except (OSError, ValueError) as exc:
        return f'the digest sidecar of {path.name} is unreadable ({exc})'
    if info.st_size != record.get('size'):
        return (f'{path.name} is {info.st_size} bytes, its digest says {record.get("size")} '
                '(truncated or overwritten)')
    if file_sha256(path) != record['sha256']:
        return f'{path.name} does not match its recorded sha256 (corrupt or altered)'
    return ''


def verify(path: PathLike) -> str:
    """Return '' if ``path`` is a verified artefact, else why it must not be used."""
    return _reason(Path(path))


def usable(path: PathLike, what: str = 'cached file') -> bool:
    """Return whether ``path`` is verified; log why not (unless it is simply missing)."""
    reason = verify(path)
    if reason and reason != 'missing':
        LOGGER.warning('not using %s %s: %s; making it again', what, path, reason)
    return not reason


def read_verified(path: PathLike, what: str = 'cached file') -> Optional[bytes]:
    """Return the content of ``path`` if verified (checked on these bytes), else None."""
    path = Path(path)
    if not usable(path, what):
        return None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != _recorded(path)['sha256']:
        LOGGER.warning('not using %s %s: it changed while being read', what, path)
        return None
    return data


def _aside(target: Path, kind: str) -> Iterator[Path]:
    for path in target.parent.glob(f'.{target.name}.*.{kind}'):
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == _uid():
            yield path


def recover_folder(target: PathLike) -> None:
    """Undo what a kill during ``replace_folder`` (or before it) left; see the contract."""
    target = Path(target)
    if not os.path.lexists(target):
        for old in sorted(_aside(target, 'old')):
            LOGGER.warning('restoring %s from %s (a run was killed while replacing it)',
                           target, old.name)
            os.rename(old, target)
            break
    for leftover in list(_aside(target, 'old')) + list(_aside(target, 'partial')):
        shutil.rmtree(leftover, ignore_errors=True)


def partial_folder(target: PathLike, run_id: str) -> Path:
    """Make and return the private folder in which a run writes what replaces ``target``."""
    target = Path(target)
    path = target.parent / f'.{target.name}.{run_id}.partial'
    os.mkdir(path, 0o700)
    return path


def replace_folder(new: PathLike, target: PathLike) -> None:
    """Put folder ``new`` at ``target``, replacing the old one as a whole (contract)."""
    new, target = Path(new), Path(target)
    old = target.parent / f'.{target.name}.{os.urandom(6).hex()}.old'
    if os.path.lexists(target):
        os.rename(target, old)
    os.rename(new, target)
    if os.path.lexists(old):
        if os.path.isdir(old) and not os.path.islink(old):
            shutil.rmtree(old)
        else:
            os.unlink(old)


def save_json(path: PathLike, value: Any) -> str:
    """Write ``value`` as JSON (atomically, with its digest); return the sha256."""
    return write_atomic(path, json.dumps(value, sort_keys=True, indent=1).encode())


def load_json(path: PathLike, what: str = 'checkpoint') -> Optional[Any]:
    """Return the JSON value of a verified ``path``, else None (missing or bad: redo it)."""
    data = read_verified(path, what)
    if data is None:
        return None
    try:
        return json.loads(data.decode('utf-8'))
    except ValueError as exc:
        LOGGER.warning('not using %s %s: not JSON (%s)', what, path, exc)
        return None


def save_arrays(path: PathLike, arrays: Dict[str, Any]) -> str:
    """Write numeric arrays as ``.npz`` (no object arrays) atomically; return the sha256."""
    import numpy as np

    buffer = io.BytesIO()
    plain = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f'{name}: object arrays are not stored (they need pickle)')
        plain[name] = array
    np.savez(buffer, **plain)
    return write_atomic(path, buffer.getvalue())


def load_arrays(path: PathLike, what: str = 'checkpoint') -> Optional[Dict[str, Any]]:
    """Return the arrays of a verified ``.npz`` (``allow_pickle=False``), else None."""
    import numpy as np

    data = read_verified(path, what)
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        LOGGER.warning('not using %s %s: not a plain .npz (%s)', what, path, exc)
        return None
