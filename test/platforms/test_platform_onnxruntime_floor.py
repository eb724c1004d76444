"""Python 3.10's ONNX Runtime: the newest release it has (1.23.2) runs the package's CPU paths.

ONNX Runtime 1.32 has no Python 3.10 wheel, so JetPack 6 and Ubuntu 22.04 get 1.23.2
(requirements.txt's marker). The real 1.23.2 is installed (from pip's cache or PyPI) into a
cache folder (``platform_rows.check_folder``) and imported ahead of this environment's newer
one; with it:

- detection on the CPU finds the planted model's one object;
- per-tensor calibration ranges (the ``ranges`` / DLA INT8 path, ONNX Runtime's histogram code)
  equal those this environment's ONNX Runtime computes;
- Q/DQ writing from ranges is reported missing: ``int8_mode: auto`` on TensorRT 10.3 takes the
  implicit calibrator, and ``quantize_static_qdq`` stops with the fix.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from platform_rows import install_once

ROOT = Path(__file__).resolve().parents[2]
FLOOR = '1.23.2'

CHECK = '''
import json, sys
from pathlib import Path
import onnxruntime
from tensorrt_yolox_py.backends.tensorrt.builder import EngineSettings, plan_int8
from tensorrt_yolox_py.quantization import static
from tensorrt_yolox_py.tools import detect

model, image, out, calib = sys.argv[1:5]
report = {'version': onnxruntime.__version__, 'location': onnxruntime.__file__}
report['detect_status'] = detect.main([image, '--output', out, '--model', model,
                                       '--device', 'cpu', '--param', 'score_threshold=0.5'])
images = sorted(Path(calib).glob('*.png'))
report['ranges'] = static.compute_tensor_ranges(model, images, 'MinMax')
report['qdq_writable'] = static.calibration_cache_supported()
report['auto_plan'] = plan_int8(EngineSettings(Path(model)), (10, 3, 0), False).mode
try:
    static.quantize_static_qdq(model, Path(out) / 'q.onnx', images, 'MinMax')
    report['qdq_error'] = None
except RuntimeError as exc:
    report['qdq_error'] = str(exc)
print(json.dumps(report))
'''


def floor_folder() -> Path:
    return install_once(f'onnxruntime-{FLOOR}', [f'onnxruntime=={FLOOR}'])


@pytest.mark.slow
def test_python_310s_onnxruntime_runs_the_cpu_paths(planted_model, tmp_path):
    import cv2

    from tensorrt_yolox_py.quantization.static import compute_tensor_ranges

    image = np.full((640, 640, 3), 90, np.uint8)
    image[64:128, 128:192] = (0, 0, 255)                  # the planted model's CAR cell
    cv2.imwrite(str(tmp_path / 'scene.png'), image)
    calib = tmp_path / 'calib'
    calib.mkdir()
    rng = np.random.default_rng(310)
    for index in range(3):
        cv2.imwrite(str(calib / f'{index}.png'), rng.integers(0, 256, (480, 640, 3), np.uint8))
    out = tmp_path / 'out'
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(floor_folder()), str(ROOT)])}
    done = subprocess.run([sys.executable, '-c', CHECK, str(planted_model),
                           str(tmp_path / 'scene.png'), str(out), str(calib)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report['version'] == FLOOR and str(floor_folder()) in report['location'], report
    assert report['detect_status'] == 0
    dets = json.loads((out / 'detections.json').read_text())[0]['detections']
    assert [d['label'] for d in dets] == ['CAR']
    np.testing.assert_allclose(dets[0]['box_xyxy'], [128, 64, 192, 128], atol=1e-3)
    expected = compute_tensor_ranges(planted_model, sorted(calib.glob('*.png')), 'MinMax')
    assert set(report['ranges']) == set(expected)
    for name, (low, high) in expected.items():
        np.testing.assert_allclose(report['ranges'][name], (low, high), rtol=1e-5, atol=1e-6)
    assert report['qdq_writable'] is False and report['auto_plan'] == 'implicit'
    assert 'onnxruntime>=1.32' in report['qdq_error'] and 'int8_mode' in report['qdq_error']


def test_the_qdq_tests_run_where_onnxruntime_can_write_qdq():
    """The Q/DQ tests skip only where no onnxruntime>=1.32 exists (Python 3.10): on 3.11+ with
    the requirements installed (CI), the skip mark must not hide them."""
    sys.path.insert(0, str(ROOT / 'test'))
    from needs import QDQ_FROM_RANGES

    import onnxruntime
    from packaging.version import Version

    if sys.version_info >= (3, 11):
        assert Version(onnxruntime.__version__) >= Version('1.32'), onnxruntime.__version__
        assert QDQ_FROM_RANGES
    else:
        assert not QDQ_FROM_RANGES
