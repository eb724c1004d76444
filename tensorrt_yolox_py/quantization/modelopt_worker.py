"""JSON-in / JSON-out entry point run INSIDE the NVIDIA ModelOpt environment (not the package's).

    <modelopt python> modelopt_worker.py request.json response.json

ModelOpt (``nvidia-modelopt[onnx]``) pins ``onnxruntime-gpu~=1.24`` while the package needs
``onnxruntime>=1.32``; both distributions own the ``onnxruntime`` import package, so they cannot
share one environment. ``strongly_typed`` therefore runs this file by path with the Python of a
separate environment (``scripts/setup_modelopt.sh``). It imports nothing from tensorrt_yolox_py.

Request (a JSON object): ``op`` is one of

- ``probe``: report the versions;
- ``fp16``: ``model`` -> ``output`` through AutoCast (``convert_to_mixed_precision``,
  ``keep_io_types``);
- ``int8``: ``model`` -> ``output`` through ``modelopt.onnx.quantization.quantize`` with
  ``quantize_mode='int8'``, ``calibration_method`` (``max`` / ``entropy``), calibration data
  from the .npy file ``calibration`` (N x 3 x H x W float32) fed to input ``input_name``,
  ``nodes_to_exclude`` (exact node names: ModelOpt reads each entry as a regular expression
  matched at the start of a node name, so ``Conv_1`` would also exclude ``Conv_10``; the worker
  passes ``exact_patterns(names)``), CPU calibration, FP16 for the rest
  (``high_precision_dtype='fp16'``).

Response: ``{"ok": true, "modelopt": ..., "onnxruntime": ..., "onnx": ...}`` or
``{"ok": false, "error": "<type>: <message>"}``; the exit status is 0 either way unless the
request itself could not be read (2).
"""

import json
import re
import sys
import traceback


def _versions() -> dict:
    import modelopt
    import onnx
    import onnxruntime

    return {'modelopt': modelopt.__version__, 'onnxruntime': onnxruntime.__version__,
            'onnx': onnx.__version__}


def _fp16(request: dict) -> dict:
    import onnx
    from modelopt.onnx.autocast import convert_to_mixed_precision

    model = convert_to_mixed_precision(request['model'], low_precision_type='fp16',
                                       keep_io_types=bool(request.get('keep_io_types', True)),
                                       providers=['cpu'])
    onnx.save(model, request['output'])
    return {}


def exact_patterns(names) -> list:
    """Return ModelOpt ``nodes_to_exclude`` patterns that match exactly these node names."""
    return ['^' + re.escape(str(name)) + '$' for name in names]


def _int8(request: dict) -> dict:
    import numpy as np
    from modelopt.onnx.quantization import quantize

    data = np.load(request['calibration'], mmap_mode='r', allow_pickle=False)
    quantize(request['model'], quantize_mode='int8',
             calibration_data={request['input_name']: np.ascontiguousarray(data)},
             calibration_method=request['calibration_method'], calibration_eps=['cpu'],
             nodes_to_exclude=exact_patterns(request.get('nodes_to_exclude', [])),
             output_path=request['output'], high_precision_dtype='fp16',
             log_level=request.get('log_level', 'WARNING'))
    return {}


OPS = {'probe': lambda request: {}, 'fp16': _fp16, 'int8': _int8}


def main(argv) -> int:
    """Serve one request; see the module docstring."""
    if len(argv) != 3:
        sys.stderr.write('usage: modelopt_worker.py request.json response.json\n')
        return 2
    try:
        with open(argv[1], encoding='utf-8') as handle:
            request = json.load(handle)
        operation = OPS[request['op']]
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f'bad request {argv[1]}: {exc!r}\n')
        return 2
    try:
        response = {'ok': True, **_versions(), **operation(request)}
    except Exception as exc:  # report every ModelOpt failure to the caller, which falls back
        traceback.print_exc()
        response = {'ok': False, 'error': f'{type(exc).__name__}: {exc}'}
    with open(argv[2], 'w', encoding='utf-8') as handle:
        json.dump(response, handle)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
