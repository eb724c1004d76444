"""Subclass and instantiate the package's TensorRT callback classes on the REAL bindings.

    PYTHONPATH=build/trt_api/ready/<version>/py python test/trt_api/real_callbacks.py OUT.json

Run with the real ``tensorrt`` extension of one version importable (stub libraries: nothing
can be built or run, but classes, base ``__init__`` and pybind11 signatures are real). Writes,
per callback class the package makes: its real bases, whether it is an instance of the real
interface, and the parameter names of its overrides.
"""

import inspect
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]


def overrides(obj, base):
    """Return {method: [parameter names]} for methods ``type(obj)`` defines over ``base``."""
    out = {}
    for name, value in vars(type(obj)).items():
        if name.startswith('_') or not callable(value):
            continue
        if not hasattr(base, name) and name not in LEGACY_TRAMPOLINES:
            continue
        params = list(inspect.signature(value).parameters)[1:]
        out[name] = params
    return out


#: Called by the C++ trampolines only (no Python binding to compare names with).
LEGACY_TRAMPOLINES = {'get_quantile': 0, 'get_regression_cutoff': 0, 'read_histogram_cache': 1,
                      'write_histogram_cache': 2}


def main(out_path: str) -> int:
    import numpy as np
    import tensorrt as trt

    from tensorrt_yolox_py.backends.tensorrt.calibration import BASES, make_calibrator
    from tensorrt_yolox_py.backends.tensorrt.capabilities import supports
    from tensorrt_yolox_py.backends.tensorrt.common import (CallbackErrors, make_logger,
                                                            make_progress_monitor, trt_version)
    from tensorrt_yolox_py.backends.tensorrt.runtime import make_layer_profiler
    from trt_double.host_memory import HostMemory

    version = trt_version(trt)
    report = {'version': trt.__version__, 'module': trt.__file__, 'classes': {}}
    errors = CallbackErrors()
    made = {'ILogger': make_logger(trt, errors), 'IProfiler': make_layer_profiler(trt, errors)}
    monitor = make_progress_monitor(trt, lambda *a: None, errors)
    if supports(version, 'progress_monitor'):
        made['IProgressMonitor'] = monitor
    if supports(version, 'implicit_int8'):
        memory = HostMemory()
        for algorithm, base in BASES.items():
            made[base] = make_calibrator(trt, algorithm, [Path('unused.png')], (1, 3, 8, 8),
                                         np.float32, Path('unused.cache'), memory, 99.9,
                                         None, errors)
    for base_name, obj in made.items():
        base = getattr(trt, base_name)
        report['classes'][base_name] = {
            'isinstance': isinstance(obj, base),
            'mro': [c.__name__ for c in type(obj).__mro__],
            'overrides': overrides(obj, base)}
    Path(out_path).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
