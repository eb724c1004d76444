"""Machine, GPU and version information recorded in every benchmark's JSON."""

import datetime
import os
import platform
import subprocess
from typing import Any, Dict, Iterable


def _version(module: str) -> str:
    try:
        mod = __import__(module)
    except ImportError:
        return 'not installed'
    version = getattr(mod, '__version__', None)
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version(module)
        except metadata.PackageNotFoundError:
            version = 'unknown'
    return str(version)


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _gpu() -> str:
    try:
        out = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version',
                              '--format=csv,noheader'], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 'none'
    return out.stdout.strip() or 'none'


def machine_info(modules: Iterable[str] = ('numpy', 'cv2', 'onnxruntime')) -> Dict[str, Any]:
    """Return host, CPU, core count, GPU, Python and library versions, and the UTC date."""
    return {
        'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'host': platform.node(),
        'platform': platform.platform(),
        'cpu': _cpu_model(),
        'cpu_count': os.cpu_count(),
        'gpu': _gpu(),
        'python': platform.python_version(),
        'versions': {name: _version(name) for name in modules},
    }
