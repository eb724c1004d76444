"""On-disk cache of serialized TensorRT engines: keyed, checksummed, built once under a lock.

Contract:

- ``engine_key(fields) -> str``: sha256 of the canonical JSON of the fields that change the
  engine: model sha256, precision, INT8 path + calibration (algorithm, percentile, image-set
  fingerprint, number of images, clip value, first/last-layer pins), device + DLA core,
  TensorRT version, GPU name + compute capability (the builder fills them).
- Files in the cache folder: ``<name>.engine`` (the plan, byte for byte what TensorRT
  serialized, so ``trtexec --loadEngine`` can read it), ``<name>.engine.json`` (sidecar: key,
  key fields, sha256, size, build report), ``<name>.engine.lock`` (a ``filelock`` lock).
- ``get_or_build(name, key, fields, build)``: returns the engine path if a valid entry exists;
  otherwise takes the lock (waiting, with a log line, while another process builds), checks
  again, calls ``build() -> (bytes, report)`` and writes the plan then the sidecar, each through
  a temporary file + ``os.replace`` (the sidecar is written last: it commits the entry). So N
  processes starting together build once, and a reader never sees a half-written plan.
- An entry is valid only if the sidecar parses, its key equals the wanted key, and the plan's
  size and sha256 match the sidecar: a truncated, corrupt, foreign or stale (other TensorRT /
  GPU / calibration) plan is reported with the reason and rebuilt, never loaded.
- The folder is a trusted folder (``trust.check_folder``, checked when the cache is made, i.e.
  at start-up): the user's, not writable by others, reached through no folder or link that
  others control; else ``trust.UntrustedPathError`` with the reason and the fix. The plan and
  its sidecar must be the user's regular files, writable by nobody else (``trust.check_file``),
  and are written with unpredictable, exclusively created temporary names (never through a
  planted link).
- ``invalidate(name)``: remove an entry (the backend calls it if TensorRT still refuses a plan).
"""

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from ...trust import check_file, check_folder, file_sha256, UntrustedPathError, write_atomic

LOGGER = logging.getLogger(__name__)

SCHEMA = 1
DEFAULT_CACHE_DIR = Path('~/.cache/tensorrt_yolox_py').expanduser()


def engine_key(fields: Dict[str, Any]) -> str:
    """Return the sha256 of the canonical JSON of ``fields`` (plus the cache schema)."""
    canonical = json.dumps({'schema': SCHEMA, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def describe_change(old: Dict[str, Any], new: Dict[str, Any]) -> str:
    """Return 'field: old -> new, ...' for the key fields that differ."""
    changed = [f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k)]
    return ', '.join(changed) if changed else 'key differs'


@dataclass
class CacheEntry:
    """A valid cached engine."""

    path: Path
    metadata: Dict[str, Any]
    built: bool


class EngineCache:
    """A folder of cached engines; see the module contract."""

    def __init__(self, directory: Optional[Path] = None, lock_timeout_s: float = -1.0) -> None:
        self.directory = check_folder(Path(directory).expanduser() if directory
                                      else DEFAULT_CACHE_DIR, 'engine cache folder')
        self.lock_timeout_s = lock_timeout_s

    def paths(self, name: str) -> Tuple[Path, Path, Path]:
        """Return (plan, sidecar, lock) paths of entry ``name``."""
        plan = self.directory / f'{name}.engine'
        return plan, Path(f'{plan}.json'), Path(f'{plan}.lock')

    def check(self, name: str, key: str, fields: Optional[Dict[str, Any]] = None
              ) -> Tuple[Optional[Dict[str, Any]], str]:
        """Return (sidecar metadata, '') if entry ``name`` is valid for ``key``, else (None, why).

        ``fields`` (the wanted key fields) only improve the message of a stale entry.
        """
        plan, sidecar, _ = self.paths(name)
        if not plan.exists() and not sidecar.exists():
            return None, 'no cached engine'
        if not sidecar.is_file():
            return None, f'{plan.name} has no sidecar {sidecar.name} (interrupted write?)'
        try:
            check_file(sidecar)
            if plan.exists():
                check_file(plan)
        except UntrustedPathError as exc:
            return None, f'untrusted entry: {exc}'
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            return None, f'sidecar {sidecar.name} is unreadable ({exc})'
        if not isinstance(meta, dict) or meta.get('schema') != SCHEMA:
            return None, f'sidecar {sidecar.name} has another schema'
        if meta.get('key') != key:
            change = describe_change(meta.get('fields', {}), fields or {})
            return None, f'stale engine: {change}'
        if not plan.is_file():
            return None, f'{plan.name} is missing'
        size = plan.stat().st_size
        if size != meta.get('size'):
            return None, (f'{plan.name} is {size} bytes, the sidecar says {meta.get("size")} '
                          '(truncated or overwritten)')
        if file_sha256(plan) != meta.get('sha256'):
            return None, f'{plan.name} fails its sha256 check (corrupt)'
        return meta, ''

    def get_or_build(self, name: str, key: str, fields: Dict[str, Any],
                     build: Callable[[], Tuple[bytes, Dict[str, Any]]]) -> CacheEntry:
        """Return a valid entry for ``key``, building it (once, under the lock) if needed."""
        from filelock import FileLock, Timeout

        plan, sidecar, lock_path = self.paths(name)
        meta, why = self.check(name, key, fields)
        if meta is not None:
            LOGGER.info('using cached engine %s', plan)
            return CacheEntry(plan, meta, False)
        lock = FileLock(str(lock_path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            LOGGER.warning('another process is building %s (lock %s held); waiting for it',
                           plan.name, lock_path.name)
            try:
                lock.acquire(timeout=self.lock_timeout_s)
            except Timeout as exc:
                raise TimeoutError(f'gave up waiting {self.lock_timeout_s:.0f} s for the engine '
                                   f'build lock {lock_path}') from exc
        try:
            meta, why = self.check(name, key, fields)
            if meta is not None:
                LOGGER.info('using engine %s built by another process', plan)
                return CacheEntry(plan, meta, False)
            if why != 'no cached engine':
                LOGGER.warning('rebuilding %s: %s', plan.name, why)
            start = time.perf_counter()
            data, report = build()
            data = bytes(data)
            write_atomic(plan, data, digest=False)
            meta = {'schema': SCHEMA, 'key': key, 'fields': fields, 'size': len(data),
                    'sha256': hashlib.sha256(data).hexdigest(),
                    'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                    'build_seconds': round(time.perf_counter() - start, 3), 'report': report}
            write_atomic(sidecar, json.dumps(meta, indent=1, sort_keys=True,
                                             default=str).encode(), digest=False)
            LOGGER.info('cached engine %s (%d bytes)', plan, len(data))
            return CacheEntry(plan, meta, True)
        finally:
            lock.release()

    def invalidate(self, name: str) -> None:
        """Remove entry ``name`` (sidecar first, so a half-removed entry is invalid)."""
        plan, sidecar, _ = self.paths(name)
        for path in (sidecar, plan):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
