"""scripts/check_tensorrt_on_hardware.py runs end to end (against the double: plumbing only)."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from tensorrt_yolox_py.stages.postprocess import Detections

pytest_plugins = ['trt_double.fixtures']
SCRIPT = Path(__file__).resolve().parents[1] / 'scripts' / 'check_tensorrt_on_hardware.py'


def load_script():
    spec = importlib.util.spec_from_file_location('check_tensorrt_on_hardware', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    assert set(rows) == {'gpu-fp32', 'gpu-fp16', 'gpu-int8', 'dla0-int8'}  # 1 DLA core
    assert results['environment']['dla_cores'] == 1
    assert all(row['built'] and row['cache_reload'] for row in rows.values())
    assert rows['gpu-int8']['int8_path'] == 'explicit' and rows['dla0-int8']['int8_path'] == \
        'ranges'
    assert rows['gpu-fp32']['max_score_diff'] == 0.0  # the double runs the same float graph
    assert status == 0 and 'verdict: PASS' in out
    assert json.loads(report.read_text())['rows'][0]['config'] == 'gpu-fp32'


def test_matching_counts_same_class_overlaps_once():
    script = load_script()
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    want = Detections(boxes, np.array([0.9, 0.8], np.float32), np.array([1, 2], np.int32))
    shifted = Detections(boxes + 1, np.array([0.7, 0.6], np.float32), np.array([1, 3], np.int32))
    assert script.match(shifted, want) == (1, 2, 2)
    assert script.f1(1, 2, 2) == 0.5 and script.f1(0, 0, 0) == 1.0


def test_checklist_on_tensorrt_11_takes_the_strongly_typed_path(trt, host_memory,
                                                                planted_model, tmp_path):
    script = load_script()
    trt.reset('11.4.0.106', memory=host_memory, hardware=trt.Hardware(num_dla_cores=2))
    status, results = script.run(
        ['--model', str(planted_model), '--num-images', '3', '--cache-dir', str(tmp_path / 'c')],
        trt=trt.module, memory_factory=lambda gpu_id: host_memory)
    env = results['environment']
    assert env['strongly_typed'] and env['dla_cores'] == 0   # 11.4.0: no DLA support
    assert 'no DLA support' in env['dla_support']
    rows = {row['config']: row for row in results['rows']}
    assert set(rows) == {'gpu-fp32', 'gpu-fp16', 'gpu-int8'}
    assert rows['gpu-int8']['int8_path'] == 'typed-qdq'
    assert any(key.startswith('GPU-INT8') for key in rows['gpu-int8']['layers'])
    assert rows['gpu-fp16']['inspector_sample'][0]['LayerType']
    assert status == 0, rows
