"""YOLOX model family: shapes, Opt-variant constraints, ONNX export parity, complexity counter."""

from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip('torch')
onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

from tensorrt_yolox_py.errors import ModelContractError  # noqa: E402
from tensorrt_yolox_py.devkit import export  # noqa: E402
from tensorrt_yolox_py.model import complexity  # noqa: E402
from tensorrt_yolox_py.model.yolox import (  # noqa: E402
    build_model, canonical_variant, ELANLayer, Focus, num_anchors, SPPBottleneck, VARIANTS)
from tensorrt_yolox_py.stages.postprocess import make_anchors  # noqa: E402


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    """Run torch on one thread (2 OpenMP threads on a busy 2-core machine can be 20x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


OPT_VARIANTS = ('yolox-s-opt', 'yolox-s+-opt')
NUM_CLASSES = 8


def _randomize(model, seed=0):
    """Give BatchNorm non-trivial statistics and affine terms so outputs are not degenerate."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)
    return model.eval()


@pytest.mark.parametrize('name', list(VARIANTS))
def test_variant_output_shape_and_anchor_order(name):
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES).eval()
    hw = (64, 96)
    expected_n = (8 * 12) + (4 * 6) + (2 * 3)
    assert num_anchors(hw) == expected_n
    with torch.no_grad():
        out = model(torch.rand(1, 3, *hw) * 255)
    assert out.shape == (1, expected_n, 5 + NUM_CLASSES)
    scores = out[..., 4:]
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0
    # Training mode: raw logits + grids/strides in the postprocess stage's anchor order.
    model.train()
    head = model(torch.rand(2, 3, *hw) * 255)
    grid, strides = make_anchors(hw)
    assert head.raw.shape == (2, expected_n, 5 + NUM_CLASSES)
    np.testing.assert_array_equal(head.grids.numpy(), grid)
    np.testing.assert_array_equal(head.strides.numpy(), strides)


def test_eval_output_is_sigmoid_of_training_logits():
    torch.manual_seed(1)
    model = _randomize(build_model('yolox-tiny-test', 3))
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        out = model(x)
        model.head.training = True  # the head's own flag only: every BatchNorm stays in eval
        raw = model.head(model.neck(model.backbone(x))).raw
    torch.testing.assert_close(out[..., :4], raw[..., :4])
    torch.testing.assert_close(out[..., 4:], raw[..., 4:].sigmoid())


@pytest.mark.parametrize('name', OPT_VARIANTS)
def test_opt_channels_are_multiples_of_32(name):
    model = build_model(name, NUM_CLASSES)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    predictors = {id(m) for head_list in (model.head.cls_preds, model.head.reg_preds,
                                          model.head.obj_preds) for m in head_list}
    stem_first = model.backbone.stem.down.conv
    for conv in convs:
        if conv is not stem_first:
            assert conv.in_channels % 32 == 0, conv
        if id(conv) not in predictors:
            assert conv.out_channels % 32 == 0, conv
    assert stem_first.in_channels == 3 and stem_first.stride == (2, 2)


@pytest.mark.parametrize('name', OPT_VARIANTS)
def test_opt_variants_have_no_silu_focus_spp(name):
    model = build_model(name, NUM_CLASSES)
    kinds = {type(m) for m in model.modules()}
    assert not kinds & {torch.nn.SiLU, Focus, SPPBottleneck, torch.nn.MaxPool2d}
    assert ELANLayer in kinds
    assert kinds & {torch.nn.ReLU, torch.nn.ReLU6}
    # The checks above can fail: the original YOLOX-S has all three.
    ref_kinds = {type(m) for m in build_model('yolox-s', NUM_CLASSES).modules()}
    assert {torch.nn.SiLU, Focus, SPPBottleneck} <= ref_kinds


def test_splus_is_deeper_than_s_opt():
    s_opt = VARIANTS['yolox-s-opt']
    s_plus = VARIANTS['yolox-s+-opt']
    assert s_plus.width == s_opt.width and s_plus.depth == pytest.approx(2 * s_opt.depth, 0.02)
    assert s_plus.act == 'relu6'
    blocks = [m for m in build_model('yolox-s+-opt').backbone.dark3.modules()
              if isinstance(m, ELANLayer)]
    assert len(blocks[0].m) == 6  # 3 * round(3 * 0.67) bottlenecks in dark3


def _activation_ranges(model, x):
    lo, hi = [float('inf')], [float('-inf')]

    def hook(_m, _i, out):
        lo[0] = min(lo[0], float(out.min()))
        hi[0] = max(hi[0], float(out.max()))

    acts = (torch.nn.ReLU, torch.nn.ReLU6, torch.nn.SiLU)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, acts)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return lo[0], hi[0]


def test_relu6_bounds_every_activation():
    torch.manual_seed(2)
    x = torch.rand(1, 3, 64, 64) * 255
    relu6 = _randomize(build_model('yolox-tiny-test', NUM_CLASSES, act='relu6'))
    lo, hi = _activation_ranges(relu6, x)
    assert lo >= 0.0 and hi <= 6.0
    # Same weights with plain ReLU exceed 6: the bound comes from the activation.
    relu = build_model('yolox-tiny-test', NUM_CLASSES, act='relu')
    relu.load_state_dict(relu6.state_dict())
    _, hi_relu = _activation_ranges(relu.eval(), x)
    assert hi_relu > 6.0


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match='unknown YOLOX variant'):
        build_model('yolox-xl')
    with pytest.raises(ValueError, match='activation'):
        build_model('yolox-s-opt', act='gelu')
    with pytest.raises(ValueError, match='num_classes'):
        build_model('yolox-s-opt', num_classes=0)
    assert canonical_variant('YOLOX_SPLUS_OPT') == 'yolox-s+-opt'
    model = build_model('yolox-tiny-test').eval()
    with pytest.raises(ValueError, match='multiples of 32'):
        model(torch.zeros(1, 3, 65, 64))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        model(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match='multiples of 32'):
        export.export_onnx(model, str(tmp_path / 'x.onnx'), (100, 64))
    with pytest.raises(FileNotFoundError):
        export.load_checkpoint(str(tmp_path / 'missing.pt'))
    torch.save({'weights': {}}, tmp_path / 'bad.pt')
    with pytest.raises(ModelContractError, match='not a tensorrt_yolox_py checkpoint'):
        export.load_checkpoint(str(tmp_path / 'bad.pt'))


@pytest.fixture(scope='module')
def exported_splus(tmp_path_factory):
    """YOLOX-S+-Opt with randomized weights exported at 96x160 (H x W)."""
    torch.manual_seed(3)
    model = _randomize(build_model('yolox-s+-opt', NUM_CLASSES), seed=3)
    path = tmp_path_factory.mktemp('onnx') / 'splus.onnx'
    export.export_onnx(model, str(path), (96, 160))
    return model, path


def test_onnx_contract_names_shapes_and_metadata(exported_splus):
    _, path = exported_splus
    sess = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ('images', [1, 3, 96, 160], 'tensor(float)')
    n = 12 * 20 + 6 * 10 + 3 * 5
    assert (out.name, out.shape, out.type) == ('output', [1, n, 5 + NUM_CLASSES],
                                               'tensor(float)')
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta['yolox_variant'] == 'yolox-s+-opt' and meta['output_format'] == 'raw'
    assert meta['num_classes'] == '8' and meta['input_hw'] == '96,160'
    # The content checksum is stamped at export and verifies (onnx_model/integrity.py).
    from tensorrt_yolox_py.onnx_model import integrity

    assert meta[integrity.CHECKSUM_KEY] == integrity.graph_sha256(proto)
    assert integrity.verify_model_file(path) == 'verified'
    # Simplified: every Conv has its weight and bias as initializers (INT8 quantizers need it),
    # and the graph is DLA friendly: no Slice (Focus), MaxPool (SPP) or Mul (SiLU).
    assert export.conv_params_are_initializers(proto)
    ops = Counter(node.op_type for node in proto.graph.node)
    inits = {i.name for i in proto.graph.initializer}
    convs = [nd for nd in proto.graph.node if nd.op_type == 'Conv']
    assert all(len(nd.input) == 3 and nd.input[2] in inits for nd in convs)
    assert ops['Conv'] == 106 and ops['Clip'] == 97 and ops['Sigmoid'] == 6
    assert not {'Slice', 'MaxPool', 'Mul', 'BatchNormalization', 'Identity'} & set(ops)


def test_onnxruntime_matches_pytorch(exported_splus):
    # Tolerance: max |diff| < 1e-4 on sigmoid-ed obj/cls and < 1e-3 on raw regression, with
    # random weights (randomized BatchNorm) and random 0-255 inputs.
    model, path = exported_splus
    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 255, (1, 3, 96, 160)).astype(np.float32) for _ in range(2)]
    diff = export.compare_with_onnxruntime(model, str(path), images)
    assert diff['max_abs_diff_scores'] < 1e-4
    assert diff['max_abs_diff_reg'] < 1e-3
    # The comparison is not vacuous: outputs vary across anchors and images.
    with torch.no_grad():
        out = model(torch.from_numpy(images[0])).numpy()
    assert out[0, :, 4].std() > 1e-3 and out[0, :, :4].std() > 1e-2


def test_export_cli_with_check(tmp_path, capsys):
    from tensorrt_yolox_py.devkit.tools.export_model import main

    out = tmp_path / 'tiny.onnx'
    assert main(['--variant', 'yolox-tiny-test', '--num-classes', '3', '--input-size', '64',
                 '96', '--out', str(out), '--check']) == 0
    text = capsys.readouterr().out
    assert 'ONNX Runtime vs PyTorch' in text
    sess = ort.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert sess.get_outputs()[0].shape == [1, 8 * 12 + 4 * 6 + 2 * 3, 8]


def test_complexity_of_single_convs_by_hand():
    conv = torch.nn.Conv2d(3, 16, 3, padding=1)
    c = complexity.count_complexity(torch.nn.Sequential(conv), (32, 32))
    assert c.macs == 32 * 32 * 16 * 3 * 3 * 3
    assert c.gflops == pytest.approx(2 * 32 * 32 * 16 * 27 / 1e9)
    assert c.params == 16 * 3 * 9 + 16
    # Strided, grouped conv followed by BatchNorm: out 8x8, in/groups = 4 channels per filter.
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.Conv2d(8, 16, 3, 2, 1,
                                                                        groups=2, bias=False),
                              torch.nn.BatchNorm2d(16))
    c = complexity.count_complexity(net, (16, 16))
    assert c.macs == 16 * 16 * 8 * 3 + 8 * 8 * 16 * 4 * 9
    assert c.norm_ops == 8 * 8 * 16
    assert c.gflops_with_norm == pytest.approx((2 * c.macs + 2 * 8 * 8 * 16) / 1e9)


def test_complexity_reproduces_published_yolox_s():
    # YOLOX README: YOLOX-S, 640x640, 80 classes: 9.0 M params, 26.8 GFLOPs (thop MACs x 2).
    c = complexity.count_complexity(build_model('yolox-s', 80), (640, 640))
    assert c.mparams == pytest.approx(9.0, abs=0.05)
    assert c.gflops_with_norm == pytest.approx(26.8, rel=0.01)
