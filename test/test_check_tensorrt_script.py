"""scripts/check_tensorrt_on_hardware.py runs end to end (against the double: plumbing only)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
from needs import qdq_from_ranges  # noqa: E402

from tensorrt_yolox_py.stages.postprocess import Detections

pytest_plugins = ['trt_double.fixtures']
SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'check_tensorrt_on_hardware.py'


def load_script():
    spec = importlib.util.spec_from_file_location('check_tensorrt_on_hardware', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@qdq_from_ranges
def test_checklist_builds_runs_compares_and_gives_a_verdict(trt, host_memory, planted_model,
                                                            tmp_path, capsys):
    script = load_script()
    trt.reset(memory=host_memory, hardware=trt.Hardware(num_dla_cores=1))
    report = tmp_path / 'check.json'
    status, results = script.run(
        ['--model', str(planted_model), '--num-images', '3', '--cache-dir', str(tmp_path / 'c'),
         '--json', str(report)], trt=trt, memory_factory=lambda gpu_id: host_memory)
    out = capsys.readouterr().out
    rows = {row['config']: row for row in results['rows']}
    assert set(rows) == {'gpu-fp32', 'gpu-fp16', 'gpu-int8', 'gpu-fp16-b4', 'gpu-int8-b4',
                         'gpu-int8-implicit', 'gpu-int8-clip', 'dla0-int8',
                         'dla0-int8-clip'}   # 10.3 with 1 DLA core: every one that applies
    assert results['environment']['dla_cores'] == 1
    assert all(row['built'] and row['cache_reload'] for row in rows.values())
    assert rows['gpu-int8']['int8_path'] == 'explicit' and rows['dla0-int8']['int8_path'] == \
        'ranges'
    assert rows['gpu-int8-implicit']['int8_path'] == 'implicit'
    assert rows['gpu-int8-clip']['int8_path'] == 'clip' and rows['gpu-int8-clip'][
        'clip_value'] == 6.0
    assert rows['gpu-fp16-b4']['max_batch'] == 4 and rows['gpu-fp16-b4']['batch_score_diff'] \
        is not None and rows['gpu-fp16']['batch_score_diff'] is None
    assert rows['gpu-fp32']['max_score_diff'] == 0.0  # the double runs the same float graph
    samples = rows['dla0-int8']['inspector_samples']  # one raw layer per LayerType
    assert 'DLA' in samples and samples['DLA']['Name'].startswith('{ForeignNode[')
    assert all(raw['LayerType'] == kind for kind, raw in samples.items())
    assert status == 0 and 'verdict: PASS' in out
    assert json.loads(report.read_text())['rows'][0]['config'] == 'gpu-fp32'
    assert ('IBuilderConfig.clear_flag', 'TF32') in trt.CALLS      # fp32 is IEEE FP32


def test_int8_mode_and_clip_value_are_selectable(trt, host_memory, planted_model, tmp_path):
    script = load_script()
    trt.reset(memory=host_memory)
    status, results = script.run(
        ['--model', str(planted_model), '--num-images', '2', '--cache-dir', str(tmp_path / 'c'),
         '--configs', 'gpu-int8,gpu-int8-clip', '--int8-mode', 'ranges', '--clip-value', '4',
         '--json', str(tmp_path / 'r.json')], trt=trt, memory_factory=lambda g: host_memory)
    rows = {row['config']: row for row in results['rows']}
    assert rows['gpu-int8']['int8_path'] == 'ranges' and rows['gpu-int8']['clip_value'] == 0
    assert rows['gpu-int8']['int8_mode'] == 'ranges'
    assert rows['gpu-int8-clip']['clip_value'] == 4.0
    assert rows['gpu-int8-clip']['int8_path'] == 'clip'


def test_every_error_is_recorded_and_the_json_always_written(trt, host_memory, planted_model,
                                                             tmp_path, monkeypatch):
    """A first real run would most likely hit RuntimeError / pybind11 TypeError /
    AttributeError: each is recorded for its configuration and the others still run."""
    import tensorrt_yolox_py.backends.tensorrt as package

    script = load_script()
    trt.reset(memory=host_memory)
    real = package.prepare_engine
    raised = {'fp16': RuntimeError('[TRT] engine build failed'),
              'int8': TypeError('incompatible function arguments'),
              }

    def failing(settings, *args, **kwargs):
        if settings.precision in raised:
            raise raised[settings.precision]
        return real(settings, *args, **kwargs)

    monkeypatch.setattr(package, 'prepare_engine', failing)
    report = tmp_path / 'r.json'
    argv = ['--model', str(planted_model), '--num-images', '2', '--cache-dir',
            str(tmp_path / 'c'), '--configs', 'gpu-fp16,gpu-int8,gpu-fp32', '--json',
            str(report)]
    status, results = script.run(argv, trt=trt, memory_factory=lambda g: host_memory)
    rows = json.loads(report.read_text())['rows']
    assert [row['config'] for row in rows] == ['gpu-fp16', 'gpu-int8', 'gpu-fp32']
    assert rows[0]['error'].startswith('RuntimeError') and 'Traceback' in rows[0]['traceback']
    assert rows[1]['error'].startswith('TypeError')
    assert rows[2]['verdict'] == 'PASS' and status == 1

    def interrupted(settings, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(package, 'prepare_engine', interrupted)
    status, _ = script.run(argv, trt=trt, memory_factory=lambda g: host_memory)
    rows = json.loads(report.read_text())['rows']
    assert status == 130 and [row['error'] for row in rows] == ['interrupted']

    def no_cuda(gpu_id):
        raise RuntimeError('cudaErrorNoDevice: no CUDA-capable device is detected')

    status, _ = script.run(argv, trt=trt, memory_factory=no_cuda)
    written = json.loads(report.read_text())
    assert status == 2 and 'cudaErrorNoDevice' in written['environment_error']


def test_help_lists_the_configurations_and_options(capsys):
    import pytest

    with pytest.raises(SystemExit):
        load_script().run(['--help'])
    text = capsys.readouterr().out
    for word in ('--int8-mode', '--clip-value', 'gpu-int8-b4', 'gpu-int8-implicit',
                 'gpu-int8-clip', 'gpu-int8-ort-qdq', 'dla0-int8-adjust-for-dla',
                 'ADJUST_FOR_DLA', 'TF32', 'LayerType'):
        assert word in text, word


def test_matching_counts_same_class_overlaps_once():
    script = load_script()
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    want = Detections(boxes, np.array([0.9, 0.8], np.float32), np.array([1, 2], np.int32))
    shifted = Detections(boxes + 1, np.array([0.7, 0.6], np.float32), np.array([1, 3], np.int32))
    assert script.match(shifted, want) == (1, 2, 2)
    assert script.f1(1, 2, 2) == 0.5 and script.f1(0, 0, 0) == 1.0


@qdq_from_ranges
def test_checklist_on_tensorrt_11_takes_the_strongly_typed_path(trt, host_memory,
                                                                planted_model, tmp_path):
    script = load_script()
    trt.reset('11.4.0.106', memory=host_memory, hardware=trt.Hardware(num_dla_cores=2))
    status, results = script.run(
        ['--model', str(planted_model), '--num-images', '3', '--cache-dir', str(tmp_path / 'c'),
         '--json', str(tmp_path / 'r.json')],
        trt=trt.module, memory_factory=lambda gpu_id: host_memory)
    env = results['environment']
    assert env['strongly_typed'] and env['dla_cores'] == 0   # 11.4.0: no DLA support
    assert 'no DLA support' in env['dla_support']
    assert env['typed_model_tools']['int8 MinMax']
    rows = {row['config']: row for row in results['rows']}
    assert set(rows) == {'gpu-fp32', 'gpu-fp16', 'gpu-int8', 'gpu-fp16-b4', 'gpu-int8-b4',
                         'gpu-int8-clip', 'gpu-int8-ort-qdq'}
    assert rows['gpu-int8']['int8_path'] == 'typed-qdq'
    assert rows['gpu-int8']['typed_model_tool'] and rows['gpu-fp16']['typed_model_tool']
    assert 'onnxruntime' in rows['gpu-int8-ort-qdq']['typed_model_tool']
    assert any(key.startswith('GPU-INT8') for key in rows['gpu-int8']['layers'])
    assert all(raw['LayerType'] for raw in rows['gpu-fp16']['inspector_samples'].values())
    assert 'accepts' in results['questions']['fp16_scale_qdq_around_concat']
    assert status == 0, rows


@qdq_from_ranges
def test_adjust_for_dla_question_on_tensorrt_11_4_1(trt, host_memory, planted_model, tmp_path):
    """The strongly typed DLA question: the same DLA build with and without ADJUST_FOR_DLA
    (the double does not model what the flag changes; this checks the experiment runs)."""
    script = load_script()
    trt.reset('11.4.1', memory=host_memory, hardware=trt.Hardware(num_dla_cores=2))
    status, results = script.run(
        ['--model', str(planted_model), '--num-images', '2', '--cache-dir', str(tmp_path / 'c'),
         '--configs', 'dla0-int8,dla0-int8-adjust-for-dla', '--json', str(tmp_path / 'r.json')],
        trt=trt.module, memory_factory=lambda gpu_id: host_memory)
    flags = [c for c in trt.CALLS if c[0] == 'OnnxParser.set_flag']
    assert flags and set(flags) == {('OnnxParser.set_flag', 'ADJUST_FOR_DLA')}
    rows = {row['config']: row for row in results['rows']}
    assert rows['dla0-int8-adjust-for-dla']['experiment'] == 'adjust-for-dla'
    assert 'ADJUST_FOR_DLA' in results['questions']['adjust_for_dla']
    assert status == 0, rows


def test_configurations_that_do_not_apply_are_skipped_with_why(trt, host_memory,
                                                               planted_model, tmp_path):
    script = load_script()
    trt.reset('11.4.0.106', memory=host_memory)
    status, results = script.run(
        ['--model', str(planted_model), '--num-images', '2', '--cache-dir', str(tmp_path / 'c'),
         '--configs', 'gpu-int8-implicit,dla0-int8,gpu-fp32', '--json',
         str(tmp_path / 'r.json')], trt=trt.module, memory_factory=lambda g: host_memory)
    rows = {row['config']: row for row in results['rows']}
    assert rows['gpu-int8-implicit']['verdict'] == 'SKIP'
    assert 'calibrators' in rows['gpu-int8-implicit']['skipped']
    assert rows['dla0-int8']['verdict'] == 'SKIP' and rows['gpu-fp32']['verdict'] == 'PASS'
    assert status == 0
