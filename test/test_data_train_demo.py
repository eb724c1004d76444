"""The demo-model training wrapper runs end to end on the CPU at a tiny size (smoke test)."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('torch')
pytest.importorskip('onnxsim')


def test_lr_schedule_warms_up_then_decays() -> None:
    from tensorrt_yolox_py.devkit.tools.train_demo import lr_at_time

    lrs = [lr_at_time(p, 1e-3, 0.1, 0.05) for p in np.linspace(0, 1, 101)]
    assert lrs[0] < lrs[5] < lrs[10] == pytest.approx(1e-3)
    assert all(a >= b - 1e-12 for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.05e-3)


def test_width_variant_is_registered_with_the_same_design() -> None:
    from tensorrt_yolox_py.model.yolox import VARIANTS
    from tensorrt_yolox_py.devkit.tools.train_demo import register_width_variant

    name = register_width_variant('yolox-s+-opt', 0.25)
    assert name == 'yolox-s+-opt-w0.25'
    base, narrow = VARIANTS['yolox-s+-opt'], VARIANTS[name]
    assert (narrow.depth, narrow.act, narrow.stem, narrow.block, narrow.spp) == (
        base.depth, base.act, base.stem, base.block, base.spp)
    assert narrow.width == 0.25
    assert register_width_variant('yolox-s+-opt', 0.5) == 'yolox-s+-opt'


def test_train_demo_tiny_run_exports_a_working_model(tmp_path: Path) -> None:
    import onnxruntime as ort

    from tensorrt_yolox_py.devkit.tools.train_demo import main

    out = tmp_path / 'run'
    assert main(['--out', str(out), '--scene-size', '128', '192', '--input-size', '64', '96',
                 '--minutes', '1', '--max-steps', '2', '--batch', '2', '--train-frames', '6',
                 '--start-frames', '4', '--val-frames', '2', '--workers', '1', '--export',
                 '--log-every', '0']) == 0
    summary = json.loads((out / 'train_summary.json').read_text())
    assert summary['steps'] == 2 and summary['variant'] == 'yolox-s+-opt-w0.25'
    assert summary['act'] == 'relu6' and summary['input_hw'] == [64, 96]
    assert 'mAP50' in summary['val_metrics_torch']
    session = ort.InferenceSession(str(out / 'model.onnx'), providers=['CPUExecutionProvider'])
    y = session.run(None, {'images': np.zeros((1, 3, 64, 96), np.float32)})[0]
    assert y.shape == (1, (8 * 12 + 4 * 6 + 2 * 3), 13)
    assert np.all((y[..., 4:] >= 0) & (y[..., 4:] <= 1))
