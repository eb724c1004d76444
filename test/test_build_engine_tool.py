"""yolox_build_engine: build_only through the engine cache, progress bars and the summary."""

import json
import logging

from tensorrt_yolox_py.backends.tensorrt import builder as builder_module
from tensorrt_yolox_py.tools import build_engine
from trt_double.helpers import calls_named

pytest_plugins = ['trt_double.fixtures']


def run(monkeypatch, host_memory, argv):
    monkeypatch.setattr(builder_module, 'CudaMemory', lambda gpu_id: host_memory)
    return build_engine.main(argv)


def test_builds_with_progress_then_finds_it_in_the_cache(trt, host_memory, tiny_model,
                                                         calib_images, tmp_path, monkeypatch,
                                                         capsys):
    trt.reset(memory=host_memory, hardware=trt.Hardware(num_dla_cores=2))
    argv = ['--model', str(tiny_model), '--precision', 'int8', '--device', 'dla0',
            '--calibration-images', str(calib_images), '--cache-dir', str(tmp_path),
            '--param', 'percentile=99.99', '--param', 'quantize_first_layer=true',
            '--json', str(tmp_path / 'report.json')]
    assert run(monkeypatch, host_memory, argv) == 0
    captured = capsys.readouterr()
    assert 'calibration' in captured.err  # the tqdm bar
    summary = captured.out
    for text in ('engine      :', 'built now', 'precision   : int8', 'device      : dla0',
                 'INT8 path   : ranges', 'GPU fallback:', 'spp (POOLING)', 'FP16 layers : stem',
                 'build time  :', 'MB'):
        assert text in summary, text
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['built'] and report['report']['device'] == 'dla0'
    assert run(monkeypatch, host_memory, argv) == 0
    assert 'found in the cache' in capsys.readouterr().out
    assert len(calls_named(trt.CALLS, 'Builder.build_serialized_network')) == 1


def test_bad_parameters_exit_2_with_the_reason(trt, host_memory, tiny_model, tmp_path,
                                               monkeypatch, caplog):
    with caplog.at_level(logging.ERROR):
        status = run(monkeypatch, host_memory, ['--model', str(tiny_model), '--device', 'dla0',
                                                '--precision', 'fp16', '--cache-dir',
                                                str(tmp_path)])
    assert status == 2 and "parameter 'device'" in caplog.text and 'no DLA' in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        status = run(monkeypatch, host_memory, ['--model', str(tmp_path / 'none.onnx'),
                                                '--precision', 'fp16'])
    assert status == 2 and 'not found' in caplog.text
    assert run(monkeypatch, host_memory, ['--param', 'device=cpu']) == 2
