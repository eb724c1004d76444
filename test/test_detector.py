"""End-to-end Detector on the hand-weighted model, the ONNX Runtime backend and bad inputs."""

import numpy as np
import pytest

from tensorrt_yolox_py.backends import choose_backend
from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
from tensorrt_yolox_py.errors import FileError, InputError, ModelContractError, ParameterError
from tensorrt_yolox_py.image import SourceImage
from tensorrt_yolox_py.devkit.synthetic import make_planted_model, planted_cell_box
from tensorrt_yolox_py.params import make_config
from tensorrt_yolox_py.pipeline import Detector


@pytest.fixture()
def detector(planted_model):
    det = Detector.from_config(make_config({'model_path': str(planted_model),
                                            'device': 'cpu'}))
    yield det
    det.close()


def _scene(h=1280, w=1920):
    rng = np.random.default_rng(5)
    return rng.integers(40, 200, (h, w, 3), dtype=np.uint8)


def _src(img, encoding='bgr8'):
    return SourceImage.from_array(img, encoding)


def test_planted_objects_are_found_with_known_boxes(detector):
    # 1920x1280 -> 320x320: scale 1/6. Input cell (3, 2) = source (576, 384)-(768, 576);
    # input cell (7, 4) = source (1344, 768)-(1536, 960).
    img = _scene()
    img[384:576, 576:768] = (0, 0, 255)
    img[768:960, 1344:1536] = (0, 255, 0)
    result = detector.detect(_src(img))
    det = result.detections
    order = np.argsort(det.class_ids)
    assert [detector.label_of(c) for c in det.class_ids[order]] == ['CAR', 'PEDESTRIAN']
    expected = np.array([planted_cell_box(3, 2), planted_cell_box(7, 4)]) * 6
    np.testing.assert_allclose(det.boxes[order], expected, atol=1e-3)
    assert np.all(det.scores > 0.99)
    assert set(result.timings) == {'preprocess', 'infer', 'postprocess', 'total'}
    assert result.timings['total'] >= result.timings['infer'] > 0
    assert result.batch_size == 1


def test_detect_is_detect_batch_of_one(detector):
    img = _scene(320, 320)
    img[0:32, 0:32] = (0, 0, 255)
    calls = []
    infer = detector.backend.infer
    detector.backend.infer = lambda tensor: calls.append(tensor.shape) or infer(tensor)
    one = detector.detect(_src(img))
    (batched,) = detector.detect_batch([_src(img)])
    assert calls == [(1, 3, 320, 320)] * 2
    assert one.letterbox == batched.letterbox and one.batch_size == batched.batch_size == 1
    np.testing.assert_array_equal(one.detections.boxes, batched.detections.boxes)
    np.testing.assert_array_equal(one.detections.scores, batched.detections.scores)
    assert len(one.detections) == 1


def test_rgb8_and_strided_images(detector):
    img = _scene(640, 640)
    img[64:128, 192:256] = (255, 0, 0)            # red in RGB order
    step = np.zeros((640, 640 * 3 + 64), np.uint8)
    step[:, :640 * 3] = img.reshape(640, -1)
    view = step[:, :640 * 3].reshape(640, 640, 3)
    det = detector.detect(_src(view, 'rgb8')).detections
    assert det.class_ids.tolist() == [1]
    np.testing.assert_allclose(det.boxes, [[192, 64, 256, 128]], atol=1e-3)
    assert len(detector.detect(_src(view, 'bgr8')).detections) == 0   # blue in BGR: nothing


def test_decoded_output_model_gives_the_same_answer(tmp_path):
    path = make_planted_model(tmp_path / 'decoded.onnx', (320, 320), decoded=True)
    with Detector.from_config(make_config({'model_path': str(path), 'device': 'cpu'})) as det:
        img = _scene(320, 320)
        img[32:64, 96:128] = (0, 0, 255)
        result = det.detect(_src(img)).detections
        assert det.postprocessor.output_format == 'decoded'
        np.testing.assert_allclose(result.boxes, [planted_cell_box(3, 1)], atol=1e-3)


@pytest.mark.parametrize('image, message', [
    (np.zeros((10, 10, 3), np.float32), 'dtype'),
    (np.zeros((0, 0, 3), np.uint8), 'empty'),
    (np.zeros((10, 10, 2), np.uint8), 'shape'),
])
def test_bad_images_raise_and_the_detector_keeps_working(detector, image, message):
    with pytest.raises(InputError, match=message):      # the adapter's wrapping says why
        _src(image)
    with pytest.raises(InputError, match='image 0: expected a SourceImage, got ndarray'):
        detector.detect(image)                           # the detector takes SourceImages only
    with pytest.raises(InputError, match='at least one image'):
        detector.detect_batch([])
    img = _scene(320, 320)
    img[0:32, 0:32] = (0, 0, 255)
    assert len(detector.detect(_src(img)).detections) == 1


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelContractError, match='not found'):
        OnnxRuntimeBackend(tmp_path / 'nope.onnx')


def test_corrupt_model_file(tmp_path):
    path = tmp_path / 'corrupt.onnx'
    path.write_bytes(b'not an onnx file')
    with pytest.raises(ModelContractError, match='cannot load'):
        OnnxRuntimeBackend(path)


def _write_model(path, out_shape, n_outputs=1):
    import onnx
    from onnx import helper, TensorProto

    # out_i = mean(images) * ones(out_shape): an output of exactly the declared shape.
    nodes = [helper.make_node('ReduceMean', ['images'], ['mean'], keepdims=0)]
    nodes += [helper.make_node('Mul', ['mean', 'ones'], [f'out{i}']) for i in range(n_outputs)]
    ones = onnx.numpy_helper.from_array(np.ones(out_shape, np.float32), 'ones')
    graph = helper.make_graph(
        nodes, 'bad', [helper.make_tensor_value_info('images', TensorProto.FLOAT,
                                                     [1, 3, 32, 32])],
        [helper.make_tensor_value_info(f'out{i}', TensorProto.FLOAT, out_shape)
         for i in range(n_outputs)], initializer=[ones])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize('out_shape, n_outputs, message', [
    ([], 1, 'rank 0'),
    ([1, 5, 4], 1, '5 \\+ C'),
    ([], 2, 'expected 1 output'),
])
def test_model_with_wrong_outputs(tmp_path, out_shape, n_outputs, message):
    path = _write_model(tmp_path / 'bad.onnx', out_shape, n_outputs)
    with pytest.raises(ModelContractError, match=message):
        OnnxRuntimeBackend(path)


def test_wrong_input_tensor_is_rejected(planted_model):
    with OnnxRuntimeBackend(planted_model) as backend:
        with pytest.raises(InputError, match='shape'):
            backend.infer(np.zeros((1, 3, 32, 32), np.float32))
        with pytest.raises(InputError, match='dtype'):
            backend.infer(np.zeros((1, 3, 320, 320), np.float64))


def test_label_file_problems(planted_model, tmp_path):
    short = tmp_path / 'labels.txt'
    short.write_text('A\nB\n')
    with pytest.raises(ModelContractError, match='8 classes'):
        Detector.from_config(make_config({'model_path': str(planted_model), 'device': 'cpu',
                                          'label_path': str(short)}))
    with pytest.raises(FileError, match='none.txt'):
        Detector.from_config(make_config({'model_path': str(planted_model), 'device': 'cpu',
                                          'label_path': str(tmp_path / 'none.txt')}))


def test_backend_choice_without_tensorrt():
    from tensorrt_yolox_py.backends import REGISTRY

    config = make_config({'device': 'gpu', 'allow_cpu_fallback': True})
    name, reason = choose_backend(config)
    torch_on_gpu = not REGISTRY['torch'].usable(config)     # a CUDA build of torch and a GPU
    assert name == ('torch' if torch_on_gpu else 'onnxruntime')
    assert 'not tensorrt' in reason and 'not installed' in reason
    if not torch_on_gpu:  # the CPU only with allow_cpu_fallback; refused by default
        assert reason.startswith('CPU fallback')
        with pytest.raises(ParameterError, match="'gpu' cannot run here .*allow_cpu_fallback"):
            choose_backend(make_config({'device': 'gpu'}))
    with pytest.raises(ParameterError, match="device': 'dla0' cannot run here.*needs TensorRT"):
        choose_backend(make_config({'device': 'dla0'}))
    name, reason = choose_backend(make_config({'device': 'dla0', 'allow_cpu_fallback': True}))
    assert name == 'onnxruntime' and reason.startswith('CPU fallback: device=dla0')
    with pytest.raises(ParameterError, match='backend'):
        choose_backend(make_config({'backend': 'tensorrt'}))
