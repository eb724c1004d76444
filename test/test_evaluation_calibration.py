"""The INT8 study's calibration: the package's streamed calibration (with the study's histogram
configurations, on a YOLOX-shaped model) equals ONNX Runtime's one-shot calibrators; the ReLU6
fixed-range recipe."""

import contextlib
import importlib.util
import io
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

pytest.importorskip('onnxruntime.quantization')
pytest.importorskip('onnx')

ROOT = Path(__file__).resolve().parents[1]


def _study():
    spec = importlib.util.spec_from_file_location(
        'calibration_study', ROOT / 'benchmarks' / 'calibration_study.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _images(n: int) -> List[np.ndarray]:
    rng = np.random.default_rng(3)
    out = []
    for _ in range(n):
        image = rng.integers(0, 256, (1, 3, 320, 320)).astype(np.float32)
        image[:, 2, 32:96, 64:128] = 255.0       # a red patch so the planted model fires
        image[:, :2, 32:96, 64:128] = 0.0
        out.append(image)
    return out


@pytest.mark.slow
def test_streamed_ranges_equal_one_shot_onnxruntime(tmp_path: Path,
                                                    planted_model: Path) -> None:
    from onnxruntime.quantization.calibrate import (CalibrationDataReader, CalibrationMethod,
                                                    create_calibrator)
    from tensorrt_yolox_py.quantization.static import prepare_model

    from tensorrt_yolox_py.quantization.streaming import StreamingCalibration

    study = _study()
    prepared = prepare_model(planted_model, tmp_path / 'prepared.onnx')
    images = _images(5)
    stream = StreamingCalibration(prepared, tmp_path, [3, 5], study.HISTOGRAMS, optimize=False)
    for chunk in (images[:2], images[2:3], images[3:]):   # chunks never straddle a count
        stream.observe(chunk)
    for chunk in (images[:2], images[2:3], images[3:]):
        stream.collect(chunk)
    mine = {3: stream.ranges(3, study.PERCENTILES), 5: stream.ranges(5, study.PERCENTILES)}

    class Reader(CalibrationDataReader):
        def __init__(self, data: List[np.ndarray]) -> None:
            self.data = list(data)

        def get_next(self) -> Dict[str, np.ndarray]:
            return {stream.input_name: self.data.pop(0)} if self.data else None

    cases = [(3, 'MinMax', CalibrationMethod.MinMax, {}),
             (3, 'Percentile 99.99', CalibrationMethod.Percentile, {'percentile': 99.99}),
             (5, 'Percentile 99.99', CalibrationMethod.Percentile, {'percentile': 99.99}),
             (5, 'MinMax', CalibrationMethod.MinMax, {}),
             (5, 'Entropy', CalibrationMethod.Entropy, {}),
             (5, 'Entropy-2048', CalibrationMethod.Entropy, {'num_bins': 2048}),
             (5, 'Percentile 99.9999', CalibrationMethod.Percentile, {'percentile': 99.9999})]
    for n, name, method, extra in cases:
        calibrator = create_calibrator(prepared, None, str(tmp_path / f'a{name}{n}.onnx'),
                                       calibrate_method=method, extra_options=extra)
        with contextlib.redirect_stdout(io.StringIO()):
            calibrator.collect_data(Reader(images[:n]))
            reference = calibrator.compute_data()
        assert set(reference.data) == set(mine[n][name].data), name
        for tensor, value in reference.data.items():
            np.testing.assert_array_equal(
                np.asarray(mine[n][name].data[tensor].range_value, np.float32).ravel(),
                np.asarray(value.range_value, np.float32).ravel(), err_msg=name)
    # more images can only widen MinMax ranges
    for tensor, value in mine[5]['MinMax'].data.items():
        low3, high3 = mine[3]['MinMax'].data[tensor].range_value
        assert value.range_value[0] <= low3 and value.range_value[1] >= high3


def test_relu6_recipe_bounds_follow_the_graph(tmp_path: Path) -> None:
    """Clip(0, 6) outputs (and the conv feeding only it) get (0, 6); sums add their bounds;
    sigmoids (0, 1); anything else keeps its calibrated range."""
    import onnx
    from onnx import helper, TensorProto
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

    study = _study()
    w = np.ones((2, 2, 1, 1), np.float32)
    nodes = [helper.make_node('Conv', ['x', 'w'], ['c1']),
             helper.make_node('Clip', ['c1', 'lo', 'hi'], ['r1']),
             helper.make_node('Conv', ['r1', 'w'], ['c2']),
             helper.make_node('Clip', ['c2', 'lo', 'hi'], ['r2']),
             helper.make_node('Add', ['r1', 'r2'], ['s']),
             helper.make_node('Conv', ['s', 'w'], ['head']),
             helper.make_node('Sigmoid', ['head'], ['y'])]
    graph = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 2, 4, 4])],
        [onnx.numpy_helper.from_array(w, 'w'),
         onnx.numpy_helper.from_array(np.array(0, np.float32), 'lo'),
         onnx.numpy_helper.from_array(np.array(6, np.float32), 'hi')])
    path = tmp_path / 'g.onnx'
    onnx.save(helper.make_model(graph), str(path))
    calibrated = TensorsData(CalibrationMethod.MinMax, {
        name: (np.float32(-1.5), np.float32(20.0))
        for name in ('x', 'c1', 'r1', 'c2', 'r2', 's', 'head', 'y')})
    data, counts = study.relu6_fixed_ranges(path, calibrated, 'x')
    got = {k: tuple(float(v) for v in d.range_value) for k, d in data.data.items()}
    assert got == {'x': (0.0, 255.0), 'c1': (0.0, 6.0), 'r1': (0.0, 6.0),
                   'c2': (0.0, 6.0), 'r2': (0.0, 6.0), 's': (0.0, 12.0),
                   'head': (-1.5, 20.0), 'y': (0.0, 1.0)}
    assert counts == {'fixed': 7, 'minmax_calibrated': 1}
