"""The torch backend on the CPU against ONNX Runtime, the dynamic-batch utility, the choice.

Independent reference: ONNX Runtime on the same ONNX file. float32 on the CPU must agree
within 1e-4 (absolute, on outputs in 0..~300) for the bundled demo model and the planted model;
a batch of N must equal N single runs.
"""

import logging
import subprocess
import sys

import numpy as np
import pytest

from tensorrt_yolox_py.backends import choose_backend, create_backend
from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
from tensorrt_yolox_py.errors import InputError, ModelContractError, ParameterError
from tensorrt_yolox_py.image import SourceImage
from tensorrt_yolox_py.devkit.synthetic import make_planted_model
from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH, make_config
from tensorrt_yolox_py.pipeline import Detector

onnx = pytest.importorskip('onnx')
pytest.importorskip('torch')

from tensorrt_yolox_py.backends.torch_backend import (  # noqa: E402
    import_onnx2torch, resolve_precision, TorchBackend)
from tensorrt_yolox_py.onnx_model.dynamic_batch import (  # noqa: E402
    batch_dim, check_dynamic_batch, has_dynamic_batch, make_dynamic_batch)


def test_onnx2torch_imports_without_torchvision():
    # setup.sh installs onnx2torch with --no-deps: it must import (no skip: CI has it)
    assert hasattr(import_onnx2torch(), 'convert')


def _inputs(backend, batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch,) + tuple(backend.input_shape[1:])).astype(np.float32)


@pytest.fixture(scope='module')
def demo_pair():
    torch_be = TorchBackend(DEFAULT_MODEL_PATH, max_batch=2)
    ort_be = OnnxRuntimeBackend(DEFAULT_MODEL_PATH, max_batch=2)
    yield torch_be, ort_be
    torch_be.close()
    ort_be.close()


def test_demo_model_matches_onnxruntime_fp32_cpu(demo_pair):
    torch_be, ort_be = demo_pair
    assert torch_be.input_shape == ort_be.input_shape
    assert torch_be.output_shape == ort_be.output_shape
    assert torch_be.capabilities.max_batch == 2 and not torch_be.capabilities.device_memory
    x = _inputs(torch_be, 2)
    got, want = torch_be.infer(x), ort_be.infer(x)
    assert got.shape == want.shape == (2,) + tuple(ort_be.output_shape[1:])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    single = torch_be.infer(x[1:2])
    np.testing.assert_allclose(single[0], got[1], rtol=0, atol=1e-4)


@pytest.mark.parametrize('decoded', [False, True])
def test_planted_model_matches_onnxruntime(tmp_path, decoded):
    path = make_planted_model(tmp_path / 'planted.onnx', (320, 320), decoded=decoded)
    with TorchBackend(path, max_batch=3) as torch_be, \
            OnnxRuntimeBackend(path, max_batch=3) as ort_be:
        x = _inputs(torch_be, 3, seed=1)
        x[1, 2, 64:96, 96:128] = 255.0    # a red cell in image 1 only
        x[1, :2, 64:96, 96:128] = 0.0
        got, want = torch_be.infer(x), ort_be.infer(x)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
        assert got[1, :, 4].max() > 0.99 and got[0, :, 4].max() < 0.01


def test_detector_with_torch_backend_finds_the_planted_object(planted_model):
    config = make_config({'model_path': str(planted_model), 'device': 'cpu',
                          'backend': 'torch', 'precision': 'fp32'})
    with Detector.from_config(config) as det:
        assert det.backend.name == 'torch'
        image = np.random.default_rng(5).integers(40, 200, (640, 640, 3), dtype=np.uint8)
        image[64:128, 192:256] = (0, 0, 255)
        det_out = det.detect(SourceImage.from_array(image)).detections
        assert det_out.class_ids.tolist() == [1]
        np.testing.assert_allclose(det_out.boxes, [[192, 64, 256, 128]], atol=1e-3)


def test_bad_input_and_bad_models(tmp_path, planted_model):
    with TorchBackend(planted_model) as backend:
        with pytest.raises(InputError):
            backend.infer(np.zeros((2, 3, 320, 320), np.float32))      # max_batch 1
        with pytest.raises(InputError):
            backend.infer(np.zeros((1, 3, 320, 320), np.float16))
        # CPU: reads host memory only (a device tensor is copied by Backend.infer, see
        # test_tensors.py), on no GPU
        assert not backend.capabilities.device_memory and backend.device_id is None
    with pytest.raises(ModelContractError, match='not found'):
        TorchBackend(tmp_path / 'missing.onnx')
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a model')
    with pytest.raises(ModelContractError):
        TorchBackend(garbage)
    with pytest.raises(RuntimeError, match='closed'):
        backend.infer(np.zeros((1, 3, 320, 320), np.float32))


def test_precision_mapping(caplog):
    with caplog.at_level(logging.WARNING):
        assert resolve_precision('int8', 'cpu') == 'fp32'
        assert resolve_precision('int8', 'cuda:0') == 'fp16'
        assert resolve_precision('fp16', 'cpu') == 'fp32'
    assert 'int8' in caplog.text and 'fp16 needs a CUDA GPU' in caplog.text
    assert resolve_precision('fp16', 'cuda:1') == 'fp16'
    assert resolve_precision('fp32', 'cuda:0') == 'fp32'


# ---- choice ---------------------------------------------------------------------------

def test_auto_on_cpu_skips_torch_and_says_why():
    name, reason = choose_backend(make_config({'device': 'cpu'}))
    assert name == 'onnxruntime'
    assert 'not torch' in reason


def test_auto_takes_torch_where_a_cuda_torch_sees_a_gpu(monkeypatch):
    import tensorrt_yolox_py.backends as backends

    monkeypatch.setattr(backends, 'tensorrt_importable', lambda: False)
    monkeypatch.setattr(backends, 'cuda_gpu_count', lambda: 1)
    monkeypatch.setattr(backends, 'torch_has_cuda', lambda: True)
    name, reason = choose_backend(make_config({'device': 'gpu'}))
    assert name == 'torch' and 'not tensorrt' in reason
    fallback = {'device': 'gpu', 'allow_cpu_fallback': True}
    name, reason = choose_backend(make_config({**fallback, 'gpu_id': 1}))
    assert name == 'onnxruntime' and 'no CUDA GPU 1' in reason
    with pytest.raises(ParameterError, match='no CUDA GPU 1.*allow_cpu_fallback'):
        choose_backend(make_config({'device': 'gpu', 'gpu_id': 1}))
    monkeypatch.setattr(backends, 'torch_has_cuda', lambda: False)
    name, reason = choose_backend(make_config(fallback))
    assert name == 'onnxruntime' and 'CPU-only build' in reason
    # An explicit torch on a gpu device it cannot use is a fallback too.
    with pytest.raises(ParameterError, match='allow_cpu_fallback'):
        choose_backend(make_config({'device': 'gpu', 'backend': 'torch'}))
    name, reason = choose_backend(make_config({**fallback, 'backend': 'torch'}))
    assert name == 'torch' and reason.startswith('CPU fallback')


def test_explicit_torch_is_chosen_and_refused_on_a_dla():
    assert choose_backend(make_config({'device': 'cpu', 'backend': 'torch'}))[0] == 'torch'
    with pytest.raises(ParameterError):
        choose_backend(make_config({'device': 'dla0', 'backend': 'torch'}))
    with pytest.raises(ParameterError, match='max_batch'):
        make_config({'device': 'dla1', 'max_batch': 2})


def test_torch_is_not_imported_unless_chosen(planted_model):
    code = ('import sys; from tensorrt_yolox_py.backends import create_backend;'
            'from tensorrt_yolox_py.params import make_config;'
            f"b = create_backend(make_config({{'model_path': r'{planted_model}', "
            "'device': 'cpu'}));"
            "assert b.name == 'onnxruntime', b.name;"
            "assert 'torch' not in sys.modules and 'onnx2torch' not in sys.modules;"
            "print('ok')")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and 'ok' in out.stdout, out.stderr


def test_create_backend_logs_the_torch_choice(planted_model, caplog):
    config = make_config({'model_path': str(planted_model), 'device': 'cpu',
                          'backend': 'torch', 'max_batch': 2})
    with caplog.at_level(logging.INFO):
        backend = create_backend(config)
    try:
        assert backend.name == 'torch' and backend.capabilities.max_batch == 2
        assert 'inference backend: torch (backend=torch was requested)' in caplog.text
    finally:
        backend.close()


# ---- dynamic batch --------------------------------------------------------------------

@pytest.mark.parametrize('decoded', [False, True])
def test_dynamic_batch_planted_model_batch_equals_singles(tmp_path, decoded):
    path = make_planted_model(tmp_path / 'p.onnx', (320, 320), decoded=decoded)
    model = onnx.load(str(path))
    dynamic = make_dynamic_batch(model)
    assert has_dynamic_batch(dynamic) and not has_dynamic_batch(model)
    assert batch_dim(dynamic.graph.output[0]) == 'batch'
    assert check_dynamic_batch(dynamic, 4) <= 1e-5
    again = make_dynamic_batch(dynamic)         # already dynamic: unchanged
    assert again.SerializeToString() == dynamic.SerializeToString()


def test_dynamic_batch_demo_model_batch_equals_singles():
    dynamic = make_dynamic_batch(onnx.load(str(DEFAULT_MODEL_PATH)))
    assert check_dynamic_batch(dynamic, 2) <= 1e-4


def test_dynamic_batch_refuses_models_out_of_contract(tmp_path):
    helper, tp = onnx.helper, onnx.TensorProto
    graph = helper.make_graph(
        [helper.make_node('Relu', ['x'], ['y']), helper.make_node('Relu', ['x'], ['z'])],
        'two_outputs', [helper.make_tensor_value_info('x', tp.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info('y', tp.FLOAT, [1, 3, 32, 32]),
         helper.make_tensor_value_info('z', tp.FLOAT, [1, 3, 32, 32])])
    with pytest.raises(ModelContractError, match='1 output'):
        make_dynamic_batch(helper.make_model(graph))
    graph = helper.make_graph(
        [helper.make_node('Relu', ['x'], ['y'])], 'batch2',
        [helper.make_tensor_value_info('x', tp.FLOAT, [2, 3, 32, 32])],
        [helper.make_tensor_value_info('y', tp.FLOAT, [2, 3, 32, 32])])
    with pytest.raises(ModelContractError, match='batch 1'):
        make_dynamic_batch(helper.make_model(graph))


def test_unsimplified_export_converts(tmp_path):
    """torch's exporter without onnxsim feeds weights through Identity nodes; still converts."""
    import onnx

    from tensorrt_yolox_py.devkit.export import export_variant

    path = tmp_path / 'raw.onnx'
    export_variant('yolox-tiny-test', str(path), (64, 64), num_classes=3, simplify=False)
    assert any(n.op_type == 'Identity' for n in onnx.load(str(path)).graph.node)
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32)
    with TorchBackend(path) as torch_be, OnnxRuntimeBackend(path) as ort_be:
        np.testing.assert_allclose(torch_be.infer(x), ort_be.infer(x), rtol=0, atol=1e-4)
