"""The static ONNX converter, the decode head and the captured unit (CPU torch).

References are independent: ONNX Runtime for the network output, the CPU postprocess
(``stages.postprocess.Postprocessor``) for the decoded detections.
"""

import logging

import numpy as np
import pytest

torch = pytest.importorskip('torch')
onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

from onnx import helper, TensorProto  # noqa: E402

from tensorrt_yolox_py.backends.torch_captured import CapturedModel  # noqa: E402
from tensorrt_yolox_py.backends.torch_decode import DecodeHead  # noqa: E402
from tensorrt_yolox_py.backends.torch_graph import convert_static, UnsupportedGraph  # noqa
from tensorrt_yolox_py.errors import InputError  # noqa: E402
from tensorrt_yolox_py.onnx_model.dynamic_batch import make_dynamic_batch  # noqa: E402
from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH  # noqa: E402
from tensorrt_yolox_py.stages.postprocess import make_anchors, Postprocessor  # noqa: E402
from tensorrt_yolox_py.stages.preprocess import compute_letterbox  # noqa: E402


def _ort(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope='module')
def demo_dynamic():
    return make_dynamic_batch(onnx.load(str(DEFAULT_MODEL_PATH)))


@pytest.mark.parametrize('channels_last', [False, True])
def test_demo_model_equals_onnxruntime_batch_2(demo_dynamic, channels_last):
    graph = convert_static(demo_dynamic, 2, 'cpu', torch.float32, channels_last)
    assert graph.op_counts['Conv'] == 106 and graph.output_shape == (2, 12600, 13)
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 640, 960)).astype(np.float32)
    inp = torch.from_numpy(x)
    if channels_last:
        inp = inp.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        got = graph(inp).numpy()
    want = _ort(demo_dynamic, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_planted_model_and_host_folded_shapes(planted_model):
    """A graph whose Reshape target comes from Shape / Gather / Concat on the host."""
    model = onnx.load(str(planted_model))
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 320, 320)).astype(np.float32)
    with torch.inference_mode():
        got = convert_static(model, 1, 'cpu', torch.float32)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, _ort(model, x), rtol=0, atol=1e-4)

    nodes = [helper.make_node('Shape', ['x'], ['s']),
             helper.make_node('Gather', ['s', 'i0'], ['b'], axis=0),
             helper.make_node('Unsqueeze', ['b', 'ax'], ['b1']),
             helper.make_node('Concat', ['b1', 'rest'], ['shape'], axis=0),
             helper.make_node('Reshape', ['x', 'shape'], ['r']),
             helper.make_node('Transpose', ['r'], ['y'], perm=[0, 2, 1])]
    inits = [helper.make_tensor('i0', TensorProto.INT64, [], [0]),
             helper.make_tensor('ax', TensorProto.INT64, [1], [0]),
             helper.make_tensor('rest', TensorProto.INT64, [2], [3, -1])]
    g = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info(
        'x', TensorProto.FLOAT, ['batch', 3, 4, 4])], [helper.make_tensor_value_info(
            'y', TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])
    m.ir_version = 8          # what every ONNX Runtime here reads (onnx 1.23 writes 14)
    conv = convert_static(m, 3, 'cpu', torch.float32)
    assert conv.op_counts == {'Reshape': 1, 'Transpose': 1}   # Shape..Concat folded
    x = np.random.default_rng(2).normal(size=(3, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(conv(torch.from_numpy(x)).numpy(), _ort(m, x))


def test_unsupported_operator_names_the_reason():
    nodes = [helper.make_node('NonMaxSuppression', ['x', 'x'], ['y'])]
    g = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info(
        'x', TensorProto.FLOAT, [1, 3, 4, 4])], [helper.make_tensor_value_info(
            'y', TensorProto.INT64, None)])
    with pytest.raises(UnsupportedGraph, match='NonMaxSuppression'):
        convert_static(helper.make_model(g), 1, 'cpu', torch.float32)


def test_foreign_model_falls_back_to_onnx2torch_and_says_why_once(tmp_path, caplog):
    from tensorrt_yolox_py.backends.torch_backend import import_onnx2torch, TorchBackend

    import_onnx2torch()     # CI installs it (--no-deps); the placeholder covers torchvision

    # a contract model with an Erf (not covered by the static converter) in its head
    model = onnx.load(str(DEFAULT_MODEL_PATH))
    last = model.graph.node[-1]
    erf_in = last.input[0]
    last.input[0] = 'erf_out'
    model.graph.node.insert(len(model.graph.node) - 1,
                            helper.make_node('Erf', [erf_in], ['erf_out']))
    path = tmp_path / 'foreign.onnx'
    onnx.save(model, str(path))
    with caplog.at_level(logging.WARNING):
        with TorchBackend(path) as backend:
            assert backend.converter == 'onnx2torch'
            assert 'Erf' in backend.converter_fallback_reason
            backend.infer(np.zeros((1, 3, 640, 960), np.float32))
            backend.infer(np.zeros((1, 3, 640, 960), np.float32))
    assert caplog.text.count('not covered by the static converter') == 1


def _synthetic_output(rng, batch, n, classes, decoded=False, hw=(640, 960)):
    out = np.empty((batch, n, 5 + classes), np.float32)
    out[..., 0:2] = rng.uniform(-0.5, 1.5, (batch, n, 2))
    out[..., 2:4] = rng.uniform(-1.0, 3.0, (batch, n, 2))
    if decoded:
        out[..., 0] = rng.uniform(0, hw[1], (batch, n))
        out[..., 1] = rng.uniform(0, hw[0], (batch, n))
        out[..., 2:4] = rng.uniform(4, 200, (batch, n, 2))
    out[..., 4] = rng.uniform(0, 1, (batch, n)) ** 8
    out[..., 5:] = rng.uniform(0, 1, (batch, n, classes))
    # ties between classes, as half-precision sigmoids give them
    out[:, ::7, 6] = out[:, ::7, 5]
    return out


@pytest.mark.parametrize('select', ['compact', 'topk'])
@pytest.mark.parametrize('fmt', ['raw', 'decoded'])
def test_decode_head_and_host_nms_equal_the_cpu_postprocess(fmt, select):
    rng = np.random.default_rng(3)
    hw = (640, 960)
    n = make_anchors(hw)[0].shape[0]
    out = _synthetic_output(rng, 3, n, 8, fmt == 'decoded', hw)
    head = DecodeHead(hw, 0.3, top_k=4096, output_format=fmt, select=select)
    cands, counts = head(torch.from_numpy(out))
    assert cands.shape == (3, 4096, 7) and counts.dtype == torch.int32
    post = Postprocessor(hw, 0.3, 0.45, 100, fmt)
    lb = compute_letterbox(1280, 1920, *hw)
    for b in range(3):
        want = post(out[b], lb)
        assert int(counts[b]) == int(((out[b, :, 4] * out[b, :, 5:].max(1)) >= 0.3).sum())
        got = post.from_candidates(cands[b].numpy(), int(counts[b]), lb)
        assert len(want) > 10
        np.testing.assert_array_equal(got.class_ids, want.class_ids)
        np.testing.assert_array_equal(got.scores, want.scores)
        np.testing.assert_allclose(got.boxes, want.boxes, rtol=1e-6, atol=1e-3)  # exp ulps


def test_compacted_candidates_are_the_passing_anchors_in_anchor_order():
    rng = np.random.default_rng(6)
    hw = (320, 480)
    n = make_anchors(hw)[0].shape[0]
    out = _synthetic_output(rng, 2, n, 4, hw=hw)
    out[1, :, 4] = 0.0                                  # image 1: nothing passes
    head = DecodeHead(hw, 0.3, top_k=512, select='compact')
    cands, counts = (t.numpy() for t in head(torch.from_numpy(out)))
    score = out[..., 4] * out[..., 5:].max(-1)
    for b in range(2):
        passing = np.flatnonzero(score[b] >= 0.3)
        assert counts[b] == len(passing) <= 512
        np.testing.assert_array_equal(cands[b, :counts[b], 6], passing.astype(np.float32))
        np.testing.assert_array_equal(cands[b, :counts[b], 4],
                                      score[b, passing].astype(np.float32))
        assert (cands[b, counts[b]:] == -1).all()
    assert counts[1] == 0 and counts[0] > 10


def test_decode_head_refuses_an_unknown_select_method():
    with pytest.raises(ValueError, match='select must be one of'):
        DecodeHead((320, 320), 0.3, select='sort')


@pytest.mark.parametrize('select', ['compact', 'topk'])
def test_more_candidates_than_top_k_asks_for_the_full_output(select):
    rng = np.random.default_rng(4)
    hw = (320, 320)
    n = make_anchors(hw)[0].shape[0]
    out = _synthetic_output(rng, 1, n, 3, hw=hw)
    out[..., 4:] = 0.9                                  # every anchor passes
    head = DecodeHead(hw, 0.3, top_k=16, select=select)
    cands, counts = head(torch.from_numpy(out))
    assert int(counts[0]) == n > 16
    post = Postprocessor(hw, 0.3, 0.45, 100, 'raw')
    with pytest.raises(InputError, match='full output'):
        post.from_candidates(cands[0].numpy(), int(counts[0]), compute_letterbox(320, 320,
                                                                                 *hw))


def test_captured_model_on_the_cpu_runs_network_and_decode(demo_dynamic):
    shared = {}
    graphs = {}

    def make(batch):
        graphs[batch] = convert_static(demo_dynamic, batch, 'cpu', torch.float32, shared=shared)
        return graphs[batch].forward

    head = DecodeHead((640, 960), 0.3)
    runner = CapturedModel(make, (3, 640, 960), torch.float32, 'cpu', decode=head)
    slot = runner.slot(2)
    assert slot.layout == 'nchw' and not runner.captured(2)
    x = np.random.default_rng(5).uniform(0, 255, (2, 3, 640, 960)).astype(np.float32)
    slot.input.copy_(torch.from_numpy(x))
    out = runner.run(2)
    np.testing.assert_allclose(out.raw.numpy(), _ort(demo_dynamic, x), rtol=0, atol=1e-4)
    assert tuple(out.host_candidates.shape) == (2, head.top_k, 7)
    runner.slot(1)
    # one copy of the weights for both batch sizes
    w2 = [s for s in graphs[2].steps if s[2][0].endswith('Conv_output_0')][0][0]
    w1 = [s for s in graphs[1].steps if s[2][0].endswith('Conv_output_0')][0][0]
    assert w1.__defaults__[0] is w2.__defaults__[0]


@pytest.mark.parametrize('decoded', [False, True])
def test_output_format_probe_and_decoded_candidates_on_the_cpu(tmp_path, decoded):
    """configure_decode('auto') tells a raw head from a decoded one (gray probe) and the
    decode head's candidates give the CPU postprocess's detections for the planted object."""
    from tensorrt_yolox_py.backends.torch_backend import TorchBackend
    from tensorrt_yolox_py.devkit.synthetic import make_planted_model

    path = make_planted_model(tmp_path / 'planted.onnx', (320, 320), decoded=decoded)
    with TorchBackend(path) as backend:
        assert backend.converter == 'static'
        fmt = backend.configure_decode(0.3, 'auto')
        assert fmt == ('decoded' if decoded else 'raw')
        x = np.full((1, 3, 320, 320), 114.0, np.float32)
        x[0, 2, 64:96, 96:128], x[0, :2, 64:96, 96:128] = 255.0, 0.0     # a red cell
        raw = backend.infer(x)
        cands, counts = backend._decode(torch.from_numpy(raw))
    post = Postprocessor((320, 320), 0.3, 0.45, 100, fmt)
    lb = compute_letterbox(320, 320, 320, 320)
    want = post(raw[0], lb)
    got = post.from_candidates(cands[0].numpy(), int(counts[0]), lb)
    assert len(want) >= 1
    np.testing.assert_array_equal(got.class_ids, want.class_ids)
    np.testing.assert_allclose(got.boxes, want.boxes, rtol=1e-6, atol=1e-3)


def test_inductor_cache_folder_is_keyed_by_model_torch_device_precision_layout(tmp_path):
    from tensorrt_yolox_py.backends.torch_backend import inductor_cache_dir

    folder = inductor_cache_dir(tmp_path, 'ab' * 32, torch, torch.device('cpu'), 'fp16', 'nhwc')
    assert folder.parent == tmp_path / 'torch_inductor'
    assert folder.name == f"{'ab' * 8}-torch{torch.__version__}-cpu-fp16-nhwc"
    other = inductor_cache_dir(tmp_path, 'cd' * 32, torch, torch.device('cpu'), 'fp16', 'nhwc')
    assert other != folder


def test_host_tensors_must_be_nchw_even_for_a_channels_last_backend(planted_model):
    from tensorrt_yolox_py.backends.torch_backend import TorchBackend
    from tensorrt_yolox_py.tensors import HostTensor

    with TorchBackend(planted_model, channels_last=True) as backend:
        assert backend.input_layout == 'NHWC'
        x = np.full((1, 3, 320, 320), 114.0, np.float32)
        want = backend.infer(x)                               # NCHW host input: converted
        with pytest.raises(InputError, match='NCHW'):
            backend.infer(HostTensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), 'NHWC'))
    with TorchBackend(planted_model) as plain:
        np.testing.assert_allclose(plain.infer(x), want, rtol=0, atol=1e-4)
