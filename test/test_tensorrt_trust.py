"""The engine cache folder and its artefacts are trusted only when nobody else could write them.

Through the real build path (``prepare_engine`` on the TensorRT double): an open or foreign
cache folder is refused at start-up; a planted or tampered engine, calibration cache, ranges
file, Q/DQ model or strongly typed model is not used (remade); a symbolic link planted at an
artefact's name is replaced, never written through. Ownership is judged from ``lstat``, so the
foreign-owner cases (made with ``chown``) are meaningful when the tests run as root.
"""

import json
import logging
import os
from pathlib import Path

import pytest
from needs import qdq_from_ranges  # noqa: E402

from tensorrt_yolox_py import trust
from tensorrt_yolox_py.backends.tensorrt.builder import EngineSettings, prepare_engine
from tensorrt_yolox_py.trust import UntrustedPathError
from trt_double.helpers import calls_named, config

pytest_plugins = ['trt_double.fixtures']
OTHER_UID = 4242
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='chown to another uid needs root')


@pytest.fixture
def cache(tmp_path):
    folder = tmp_path / 'cache'
    folder.mkdir(mode=0o700)
    return folder


def prepare(trt, memory, model, folder, **values):
    settings = EngineSettings.from_config(config(model, folder, **values))
    return prepare_engine(settings, trt=trt.module if hasattr(trt, 'module') else trt,
                          memory=memory)


def builds(trt):
    return len(calls_named(trt.CALLS, 'Builder.build_serialized_network'))


def test_group_writable_cache_folder_is_refused_before_any_build(trt, host_memory, tiny_model,
                                                                 cache):
    os.chmod(cache, 0o777)
    with pytest.raises(UntrustedPathError, match=r'engine cache folder .*chmod go-w'):
        prepare(trt, host_memory, tiny_model, cache, precision='fp16')
    assert builds(trt) == 0 and list(cache.iterdir()) == []


@needs_root
def test_foreign_owned_cache_folder_is_refused(trt, host_memory, tiny_model, cache):
    os.chown(cache, OTHER_UID, -1)
    with pytest.raises(UntrustedPathError, match='not by you'):
        prepare(trt, host_memory, tiny_model, cache, precision='fp16')
    assert builds(trt) == 0


@needs_root
def test_planted_engine_with_a_recomputed_sidecar_is_not_loaded(trt, host_memory,
                                                                tiny_model, cache, caplog):
    first = prepare(trt, host_memory, tiny_model, cache, precision='fp16')
    for path in (first.path, Path(f'{first.path}.json')):     # as if another user wrote them
        os.chown(path, OTHER_UID, -1)
    with caplog.at_level(logging.WARNING):
        again = prepare(trt, host_memory, tiny_model, cache, precision='fp16')
    assert again.built and builds(trt) == 2
    assert 'untrusted entry' in caplog.text and 'not by you' in caplog.text
    assert os.lstat(again.path).st_uid == os.geteuid()


def test_tampered_calibration_cache_is_not_used(trt, host_memory, tiny_model, calib_images,
                                                cache, caplog):
    values = dict(precision='int8', int8_mode='implicit',
                  calibration_image_list_path=str(calib_images))
    prepare(trt, host_memory, tiny_model, cache, **values)
    calib = next(cache.glob('tiny.calib-*.cache'))
    assert trust.verify(calib) == ''
    calib.write_bytes(calib.read_bytes().replace(b':', b';', 1))   # one byte changed
    for entry in cache.glob('*.engine*'):
        entry.unlink()
    trt.CALLS.clear()
    with caplog.at_level(logging.WARNING):
        prepare(trt, host_memory, tiny_model, cache, **values)
    assert 'not using calibration cache' in caplog.text and 'sha256' in caplog.text
    assert [c for c in trt.CALLS if c[0] == 'calibration.batches'] == [
        ('calibration.batches', 6)]                  # calibrated again from the images
    assert trust.verify(calib) == ''


def test_tampered_ranges_are_recomputed_not_trusted(trt, host_memory, tiny_model, calib_images,
                                                    cache, caplog):
    values = dict(precision='int8', int8_mode='ranges',
                  calibration_image_list_path=str(calib_images))
    prepare(trt, host_memory, tiny_model, cache, **values)
    path, = [p for p in cache.glob('tiny.ranges-*.json')
             if not p.name.endswith(trust.DIGEST_SUFFIX)]
    honest = json.loads(path.read_text())
    path.write_text(json.dumps({k: [lo * 1000, hi * 1000] for k, (lo, hi) in honest.items()}))
    for entry in cache.glob('*.engine*'):
        entry.unlink()
    trt.CALLS.clear()
    with caplog.at_level(logging.WARNING):
        prepare(trt, host_memory, tiny_model, cache, **values)
    assert 'not using calibrated ranges' in caplog.text
    assert json.loads(path.read_text()) == honest
    applied = {c[1]: [c[2], c[3]] for c in calls_named(trt.CALLS, 'ITensor.set_dynamic_range')}
    common = set(applied) & set(honest)
    assert common and all(applied[name] == pytest.approx(honest[name]) for name in common)


@qdq_from_ranges
def test_symlink_planted_at_the_qdq_model_name_is_not_followed(trt, host_memory, tiny_model,
                                                               calib_images, cache):
    values = dict(precision='int8', int8_mode='explicit',
                  calibration_image_list_path=str(calib_images))
    prepare(trt, host_memory, tiny_model, cache, **values)
    qdq = next(cache.glob('tiny.qdq-*.onnx'))
    content = qdq.read_bytes()
    victim = cache.parent / 'victim.txt'
    victim.write_bytes(b'precious')
    for entry in list(cache.glob('tiny.qdq-*')) + list(cache.glob('*.engine*')):
        entry.unlink()
    qdq.symlink_to(victim)                           # the old '.partial' attack, at the name
    prepare(trt, host_memory, tiny_model, cache, **values)
    assert victim.read_bytes() == b'precious'
    assert not qdq.is_symlink() and qdq.read_bytes() == content and trust.verify(qdq) == ''
    assert not [p for p in cache.iterdir() if p.name.startswith('.')]    # no temporaries left


@qdq_from_ranges
def test_tampered_strongly_typed_model_is_remade(trt, host_memory, tiny_model, calib_images,
                                                 cache, caplog):
    trt.reset('11.4.0.106', memory=host_memory)
    values = dict(precision='int8', calibration_image_list_path=str(calib_images))
    first = prepare(trt, host_memory, tiny_model, cache, **values)
    typed = next(cache.glob('tiny.typed-int8-*.onnx'))
    honest = typed.read_bytes()
    typed.write_bytes(honest[:-10] + bytes(10))
    with caplog.at_level(logging.WARNING):
        again = prepare(trt, host_memory, tiny_model, cache, **values)
    assert 'not using strongly typed model' in caplog.text
    assert typed.read_bytes() == honest and again.key == first.key and not again.built


def test_build_tool_refuses_an_open_cache_folder_with_the_fix(trt, host_memory, tiny_model,
                                                              cache, monkeypatch, caplog):
    from tensorrt_yolox_py.backends.tensorrt import builder as builder_module
    from tensorrt_yolox_py.tools import build_engine

    monkeypatch.setattr(builder_module, 'CudaMemory', lambda gpu_id: host_memory)
    os.chmod(cache, 0o770)
    with caplog.at_level(logging.ERROR):
        status = build_engine.main(['--model', str(tiny_model), '--precision', 'fp16',
                                    '--cache-dir', str(cache), '--no-progress'])
    assert status == 2 and builds(trt) == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and f'chmod go-w {cache}' in errors[0]
