"""Which CUDA major the machine's driver runs, and whether the installed bindings match it.

Contract:

- ``driver_cuda_version()``: the CUDA version the installed driver supports, as
  ``(major, minor)`` (``cuDriverGetVersion`` through ctypes on ``libcuda.so.1``: no cuda-python,
  no GPU access, no ``cuInit``), or None where no driver library loads (CI, a machine without
  the NVIDIA driver). Never raises.
- ``bindings_major()``: the major version of the importable ``cuda.bindings`` (or the older
  ``cuda`` package of cuda-python 12 installs), or None where neither imports. Never raises.
- ``mismatch_reason(driver, bindings)``: why those bindings cannot run on that driver (the
  bindings' major newer than the driver's CUDA), with the fix, or None when they fit.
- ``requirements_file(driver)``: the file of CUDA dependencies for that driver:
  ``requirements-cuda12.txt`` below CUDA 13 (drivers older than 580, JetPack 6),
  ``requirements-cuda13.txt`` from CUDA 13 on, and for no driver at all (CI compiles the kernels
  with NVRTC 13 there). CUDA 11 and older are refused (None).
- ``python -m tensorrt_yolox_py.cuda.driver`` prints that file's name (``scripts/setup.sh`` reads
  it; exit status 1 with the reason on stderr for a driver older than CUDA 12);
  ``--explain`` prints the driver's and the bindings' versions instead.

The driver decides because a cuda-bindings major needs a driver of at least that CUDA major
(13.x: driver 580+); NVRTC of the same major compiles the kernels, whose CUDA C uses nothing
newer than CUDA 12 (``test/platforms/test_platform_cuda_bindings.py`` holds the calls to both
majors and compiles with both NVRTCs).
"""

import argparse
import ctypes
import importlib
import sys
from typing import Optional, Tuple

#: Oldest CUDA major the package's bindings and NVRTC support.
OLDEST_MAJOR = 12
#: The driver branch that first supports each CUDA major (NVIDIA's CUDA release notes).
DRIVER_BRANCH = {12: '525', 13: '580'}
INSTALL = {12: 'pip install -r requirements-cuda12.txt (or "tensorrt_yolox_py[cuda12]")',
           13: 'pip install -r requirements-cuda13.txt (or "tensorrt_yolox_py[cuda13]")'}


def driver_cuda_version(library: str = 'libcuda.so.1') -> Optional[Tuple[int, int]]:
    """Return the driver's CUDA version as ``(major, minor)``, or None without a driver."""
    try:
        lib = ctypes.CDLL(library)
        version = ctypes.c_int(0)
        status = lib.cuDriverGetVersion(ctypes.byref(version))
    except (OSError, AttributeError):
        return None
    if status != 0 or version.value <= 0:
        return None
    return version.value // 1000, (version.value % 1000) // 10


def bindings_major() -> Optional[int]:
    """Return the major version of the importable cuda-python bindings, or None."""
    for name in ('cuda.bindings', 'cuda'):
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - absent or broken: "no bindings" either way
            continue
        text = getattr(module, '__version__', '')
        head = text.split('.', 1)[0]
        if head.isdigit():
            return int(head)
    return None


def mismatch_reason(driver: Optional[Tuple[int, int]], bindings: Optional[int]) -> Optional[str]:
    """Return why ``bindings`` (a major) cannot run on ``driver``, with the fix; else None."""
    if driver is None or bindings is None or bindings <= driver[0]:
        return None
    fix = INSTALL.get(driver[0], f'a driver with CUDA {bindings} (branch '
                                 f'{DRIVER_BRANCH.get(bindings, "?")}+)')
    return (f'cuda-bindings {bindings}.x needs a driver with CUDA {bindings} (branch '
            f'{DRIVER_BRANCH.get(bindings, "?")}+), this driver supports CUDA '
            f'{driver[0]}.{driver[1]}: {fix}')


def requirements_file(driver: Optional[Tuple[int, int]]) -> Optional[str]:
    """Return the CUDA requirements file for ``driver`` (None: the driver is too old)."""
    if driver is None or driver[0] >= 13:
        return 'requirements-cuda13.txt'
    if driver[0] >= OLDEST_MAJOR:
        return 'requirements-cuda12.txt'
    return None


def main(argv: Optional[list] = None) -> int:
    """Print the CUDA requirements file for this machine's driver (see the module contract)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--explain', action='store_true',
                        help="print the driver's CUDA version and the bindings' major")
    args = parser.parse_args(argv)
    driver = driver_cuda_version()
    if args.explain:
        text = 'none' if driver is None else f'{driver[0]}.{driver[1]}'
        sys.stdout.write(f'driver CUDA: {text}; cuda-bindings major: {bindings_major()}; '
                         f'requirements: {requirements_file(driver)}\n')
        reason = mismatch_reason(driver, bindings_major())
        if reason:
            sys.stdout.write(reason + '\n')
        return 0
    name = requirements_file(driver)
    if name is None:
        sys.stderr.write(f'the driver supports CUDA {driver[0]}.{driver[1]}; the CUDA '
                         f'preprocessing needs CUDA {OLDEST_MAJOR}+ (JetPack 6+)\n')
        return 1
    sys.stdout.write(name + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
