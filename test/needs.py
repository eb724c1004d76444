"""Skip marks for tests that need more than some supported platforms have (one place).

Import it from a test module (``from needs import qdq_from_ranges``); test/ is on the path.
"""

import pytest

from tensorrt_yolox_py.quantization.static import calibration_cache_supported

#: Q/DQ models written from saved calibration ranges need onnxruntime>=1.32, which has no
#: Python 3.10 wheel (the newest cp310 release is 1.23.2). There the package degrades (INT8
#: through TensorRT's own calibrator, with a warning), which test_platform_runtime.py tests;
#: the tests of the Q/DQ path itself skip, saying why. CI (Python 3.11) runs them all.
QDQ_FROM_RANGES = calibration_cache_supported()
qdq_from_ranges = pytest.mark.skipif(
    not QDQ_FROM_RANGES, reason='needs onnxruntime>=1.32 (Q/DQ models from calibration ranges; '
    'no Python 3.10 wheel exists): the degraded path is tested in test_platform_runtime.py')
