"""Engine cache: one build for concurrent starters, corrupt/truncated/stale plans rebuilt."""

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tensorrt_yolox_py.backends.tensorrt import TensorRTBackend
from tensorrt_yolox_py.backends.tensorrt.builder import EngineSettings, prepare_engine
from tensorrt_yolox_py.backends.tensorrt.engine_cache import EngineCache, engine_key
from trt_double.helpers import calls_named, config

pytest_plugins = ['trt_double.fixtures']
WORKER = Path(__file__).resolve().parent / 'trt_double' / 'build_worker.py'


def prepare(trt, memory, model, cache, **values):
    settings = EngineSettings.from_config(config(model, cache, precision='fp16', **values))
    return prepare_engine(settings, trt=trt, memory=memory)


def builds(trt):
    return len(calls_named(trt.CALLS, 'Builder.build_serialized_network'))


def test_second_start_loads_the_cached_engine(trt, host_memory, tiny_model, tmp_path):
    first = prepare(trt, host_memory, tiny_model, tmp_path)
    second = prepare(trt, host_memory, tiny_model, tmp_path)
    assert first.built and not second.built and builds(trt) == 1
    assert first.path == second.path == tmp_path / 'tiny.fp16.gpu.engine'
    sidecar = json.loads(Path(f'{first.path}.json').read_text())
    assert sidecar['key'] == first.key and sidecar['size'] == first.path.stat().st_size
    assert sidecar['fields']['trt_version'] == '10.3.0'
    assert sidecar['fields']['gpu'] == 'Double GPU'
    assert sidecar['report']['precision'] == 'fp16'


@pytest.mark.timing
def test_concurrent_builders_in_several_processes_build_once(tiny_model, tmp_path):
    cache = tmp_path / 'cache'
    go = tmp_path / 'go'
    procs, results = [], []
    for index in range(4):
        ready, result = tmp_path / f'ready{index}', tmp_path / f'result{index}.json'
        procs.append((subprocess.Popen([sys.executable, str(WORKER), str(tiny_model),
                                        str(cache), str(ready), str(go), str(result)]),
                      ready))
        results.append(result)
    deadline = time.time() + 120
    while not all(ready.exists() for _, ready in procs):
        assert time.time() < deadline, 'workers did not start'
        assert all(p.poll() is None for p, _ in procs), 'a worker died while starting'
        time.sleep(0.05)
    go.touch()
    for proc, _ in procs:
        assert proc.wait(timeout=120) == 0
    outcomes = [json.loads(r.read_text()) for r in results]
    assert sum(o['built'] for o in outcomes) == 1
    assert sum(o['builds'] for o in outcomes) == 1
    assert len({o['sha256'] for o in outcomes}) == 1
    assert not list(cache.glob('*.tmp'))


@pytest.mark.parametrize('damage, reason', [
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), 'truncated'),
    (lambda p: p.write_bytes(p.read_bytes()[:100] + bytes([p.read_bytes()[100] ^ 0xFF])
                             + p.read_bytes()[101:]), 'sha256'),
    (lambda p: Path(f'{p}.json').unlink(), 'no sidecar'),
    (lambda p: Path(f'{p}.json').write_text('{not json'), 'unreadable'),
])
def test_damaged_plans_are_rebuilt_never_loaded(trt, host_memory, tiny_model, tmp_path,
                                                caplog, damage, reason):
    first = prepare(trt, host_memory, tiny_model, tmp_path)
    good = first.path.read_bytes()
    damage(first.path)
    with caplog.at_level(logging.WARNING):
        again = prepare(trt, host_memory, tiny_model, tmp_path)
    assert again.built and builds(trt) == 2
    assert reason in caplog.text
    assert again.path.read_bytes() == good  # the double builds deterministically
    assert not calls_named(trt.CALLS, 'Runtime.deserialize_cuda_engine')  # never loaded


def test_changed_tensorrt_version_rebuilds(trt, host_memory, tiny_model, tmp_path, caplog):
    first = prepare(trt, host_memory, tiny_model, tmp_path)
    trt.reset('10.4.0', memory=host_memory)
    with caplog.at_level(logging.WARNING):
        again = prepare(trt, host_memory, tiny_model, tmp_path)
    assert again.built and again.key != first.key
    assert "trt_version: '10.3.0' -> '10.4.0'" in caplog.text
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(again.path.read_bytes())
    assert engine is not None and engine._header['version'] == '10.4.0'


def test_changed_calibration_rebuilds(trt, host_memory, tiny_model, calib_images, tmp_path,
                                      caplog):
    values = dict(precision='int8', clip_value=6.0)
    settings = EngineSettings.from_config(config(tiny_model, tmp_path, **values))
    first = prepare_engine(settings, trt=trt, memory=host_memory)
    settings = EngineSettings.from_config(config(tiny_model, tmp_path, precision='int8',
                                                 clip_value=4.0))
    with caplog.at_level(logging.WARNING):
        again = prepare_engine(settings, trt=trt, memory=host_memory)
    assert again.built and again.key != first.key and 'clip_value: 6.0 -> 4.0' in caplog.text


def test_refused_plan_is_invalidated_and_rebuilt_once(trt, host_memory, tiny_model, tmp_path,
                                                      caplog):
    cfg = config(tiny_model, tmp_path, precision='fp16')
    TensorRTBackend.from_config(cfg, memory=host_memory, trt=trt).close()
    # Same key (the memory layer reports the same GPU) but TensorRT now refuses the plan.
    trt.hardware.gpu_name = 'Other GPU'
    with caplog.at_level(logging.WARNING):
        backend = TensorRTBackend.from_config(cfg, memory=host_memory, trt=trt)
    assert 'incompatible device' in caplog.text and 'rebuilding it once' in caplog.text
    assert builds(trt) == 2
    x = np.zeros((1, 3, 64, 64), np.float32)
    assert backend.infer(x).shape == (1, 64, 13)
    backend.close()


def test_calibration_and_timing_caches_are_reused(trt, host_memory, tiny_model, calib_images,
                                                  tmp_path):
    trt.reset('10.0.1', memory=host_memory)
    values = dict(precision='int8', calibration_image_list_path=str(calib_images))
    settings = EngineSettings.from_config(config(tiny_model, tmp_path, **values))
    first = prepare_engine(settings, trt=trt, memory=host_memory)
    assert len(calls_named(trt.CALLS, 'IInt8Calibrator.get_batch')) == 7
    timing = list(tmp_path.glob('timing-trt10.0.1-Double-GPU-sm87.cache'))
    assert len(timing) == 1 and timing[0].stat().st_size > 0
    first.cache.invalidate(first.name)
    trt.CALLS.clear()
    again = prepare_engine(settings, trt=trt, memory=host_memory)
    assert again.built
    assert ('IInt8Calibrator.read_calibration_cache', True) in trt.CALLS
    assert not calls_named(trt.CALLS, 'IInt8Calibrator.get_batch')
    created = calls_named(trt.CALLS, 'IBuilderConfig.create_timing_cache')
    assert created and created[0][1] > 0  # the saved timing cache was handed to TensorRT


def test_engine_key_covers_every_field(tmp_path):
    base = {'model_sha256': 'a', 'precision': 'int8', 'device': 'dla', 'dla_core': 0,
            'trt_version': '10.3.0', 'gpu': 'Orin', 'compute_capability': [8, 7],
            'calibration_algorithm': 'MinMax', 'calibration_images': 'x', 'clip_value': 0.0}
    keys = {engine_key(base)}
    for name, value in [('model_sha256', 'b'), ('precision', 'fp16'), ('dla_core', 1),
                        ('trt_version', '10.4.0'), ('gpu', 'RTX'),
                        ('compute_capability', [8, 6]), ('calibration_algorithm', 'Entropy'),
                        ('calibration_images', 'y'), ('clip_value', 6.0)]:
        keys.add(engine_key({**base, name: value}))
    assert len(keys) == 10
    assert engine_key(dict(reversed(list(base.items())))) == engine_key(base)
    cache = EngineCache(tmp_path)
    assert cache.check('nothing', 'k') == (None, 'no cached engine')
