"""Model checksum: stamped at export, verified at load; corrupted files refused by name."""

import logging
from pathlib import Path

import numpy as np
import pytest

from tensorrt_yolox_py.errors import FileError
from tensorrt_yolox_py.image import SourceImage
from tensorrt_yolox_py.onnx_model import integrity
from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH, make_config
from tensorrt_yolox_py.pipeline import Detector
from tensorrt_yolox_py.tools import model_integrity

onnx = pytest.importorskip('onnx')
DEMO = DEFAULT_MODEL_PATH


def _largest_initializer(model):
    return max(model.graph.initializer, key=lambda t: len(t.raw_data))


def _corrupt_weights(src: Path, dst: Path, nbytes: int = 4096) -> None:
    """Zero ``nbytes`` inside the largest weight tensor's bytes, as a disk error would."""
    data = bytearray(src.read_bytes())
    weights = _largest_initializer(onnx.load(str(src))).raw_data
    start = data.find(weights) + len(weights) // 2
    assert start >= len(weights) // 2
    nbytes = min(nbytes, len(weights) // 4)
    data[start:start + nbytes] = bytes(b ^ 0xFF for b in data[start:start + nbytes])
    dst.write_bytes(bytes(data))


@pytest.fixture()
def stamped(planted_model: Path, tmp_path: Path) -> Path:
    path = tmp_path / 'stamped.onnx'
    integrity.stamp_file(planted_model, path)
    return path


def test_the_bundled_demo_model_carries_a_checksum_that_verifies():
    model = onnx.load(str(DEMO))
    assert integrity.stamped_checksum(model) == integrity.graph_sha256(model)
    assert integrity.verify_model_file(DEMO) == 'verified'


def test_stamping_changes_metadata_only(planted_model, stamped):
    before, after = onnx.load(str(planted_model)), onnx.load(str(stamped))
    assert before.graph.SerializeToString() == after.graph.SerializeToString()
    assert integrity.stamped_checksum(before) == ''
    assert len(integrity.stamped_checksum(after)) == 64


def test_a_corrupted_model_is_refused_naming_the_file(stamped, tmp_path):
    bad = tmp_path / 'corrupted.onnx'
    _corrupt_weights(stamped, bad)
    with pytest.raises(FileError, match=r'corrupted\.onnx fails its checksum') as info:
        Detector.from_config(make_config({'model_path': str(bad), 'device': 'cpu'}))
    assert info.value.path == str(bad)
    # The same file without its stamp is not caught: the checksum is what catches it.
    model = onnx.load(str(bad))
    del model.metadata_props[:]
    assert integrity.verify_model(model, bad) == 'unstamped'


def test_stamped_model_loads_and_says_so(stamped, caplog):
    with caplog.at_level(logging.INFO, logger='tensorrt_yolox_py.onnx_model.integrity'):
        with Detector.from_config(make_config({'model_path': str(stamped), 'device': 'cpu'})):
            pass
    assert 'checksum verified' in caplog.text


def test_model_without_checksum_loads_with_a_warning(planted_model, caplog):
    with caplog.at_level(logging.INFO, logger='tensorrt_yolox_py.onnx_model.integrity'):
        with Detector.from_config(make_config({'model_path': str(planted_model),
                                               'device': 'cpu'})) as detector:
            result = detector.detect(SourceImage.from_array(np.zeros((64, 64, 3), np.uint8)))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and 'has no checksum' in warnings[0].getMessage()
    assert 'WITHOUT an integrity check' in warnings[0].getMessage()
    assert len(result.detections) == 0


def _stripped_and_altered(stamped: Path, tmp_path: Path):
    stripped = onnx.load(str(stamped))
    del stripped.metadata_props[:]
    onnx.save(stripped, str(tmp_path / 'stripped.onnx'))
    altered = onnx.load(str(stamped))
    for prop in altered.metadata_props:
        if prop.key == integrity.PRODUCER_KEY:
            prop.value = 'someone else'
    onnx.save(altered, str(tmp_path / 'altered.onnx'))
    return tmp_path / 'stripped.onnx', tmp_path / 'altered.onnx'


def test_stripped_or_altered_checksum_warns_and_is_refused_on_request(stamped, tmp_path,
                                                                      caplog):
    stripped, altered = _stripped_and_altered(stamped, tmp_path)
    for path, outcome in ((stripped, 'unstamped'), (altered, 'rewritten')):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger='tensorrt_yolox_py.onnx_model.integrity'):
            with Detector.from_config(make_config({'model_path': str(path),
                                                   'device': 'cpu'})):
                pass
        mine = [r.levelno for r in caplog.records if r.name == integrity.__name__]
        assert mine == [logging.WARNING], outcome
        assert integrity.verify_model_file(path) == outcome
        with pytest.raises(FileError, match='require_verified_model is true') as info:
            Detector.from_config(make_config({'model_path': str(path), 'device': 'cpu',
                                              'require_verified_model': True}))
        assert info.value.path == str(path) and 'model_integrity stamp' in str(info.value)
    with Detector.from_config(make_config({'model_path': str(stamped), 'device': 'cpu',
                                           'require_verified_model': True})):
        pass


def test_a_model_rewritten_by_another_producer_is_not_checked(stamped, tmp_path):
    model = onnx.load(str(stamped))
    model.producer_name = 'onnx.quantize'  # what ONNX Runtime's quantizer writes
    model.graph.node[0].name = 'renamed'
    path = tmp_path / 'rewritten.onnx'
    onnx.save(model, str(path))
    assert integrity.verify_model_file(path) == 'rewritten'


@pytest.mark.parametrize('content', [b'', b'not an onnx file at all \x00\xff' * 10])
def test_a_file_that_is_not_onnx_is_refused_naming_it(tmp_path, content):
    path = tmp_path / 'junk.onnx'
    path.write_bytes(content)
    if content:
        with pytest.raises(FileError, match='junk.onnx'):
            integrity.verify_model_file(path)
    with pytest.raises(FileError, match='missing.onnx'):
        integrity.verify_model_file(tmp_path / 'missing.onnx')


def test_command_line_verify_and_stamp(planted_model, stamped, tmp_path):
    copy = tmp_path / 'copy.onnx'
    copy.write_bytes(planted_model.read_bytes())
    assert model_integrity.main(['stamp', str(copy)]) == 0
    assert model_integrity.main(['verify', str(copy), str(stamped)]) == 0
    bad = tmp_path / 'bad.onnx'
    _corrupt_weights(stamped, bad)
    assert model_integrity.main(['verify', str(bad)]) == 1
