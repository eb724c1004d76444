"""The parameter schema: validation, device/DLA reconciliation, YAML and README agreement."""

import re

import pytest

from tensorrt_yolox_py.errors import FileError, ParameterError
from tensorrt_yolox_py.params import (
    DetectorConfig, defaults, load_param_yaml, make_config, PARAMS)
from tensorrt_yolox_py.tools.params_doc import DERIVED, param_yaml, readme_table


def test_schema_and_config_fields_agree():
    from dataclasses import fields

    assert [f.name for f in fields(DetectorConfig)] == [p.name for p in PARAMS]
    config = DetectorConfig()
    for spec in PARAMS:
        assert getattr(config, spec.name) == spec.default, spec.name
        assert spec.validate(spec.default) == spec.default


def test_autoware_defaults():
    d = defaults()
    assert d['score_threshold'] == 0.35 and d['nms_threshold'] == 0.7
    assert d['precision'] == 'int8' and d['calibration_algorithm'] == 'MinMax'
    assert d['dla_core_id'] == -1 and d['preprocess_on_gpu'] is True


@pytest.mark.parametrize('values, name', [
    ({'score_threshold': 1.5}, 'score_threshold'),
    ({'score_threshold': 'high'}, 'score_threshold'),
    ({'nms_threshold': -0.1}, 'nms_threshold'),
    ({'precision': 'int4'}, 'precision'),
    ({'device': 'dla2'}, 'device'),
    ({'max_detections': 0}, 'max_detections'),
    ({'max_detections': 2.5}, 'max_detections'),
    ({'preprocess_on_gpu': 'yes'}, 'preprocess_on_gpu'),
    ({'dla_core_id': 2}, 'dla_core_id'),
    ({'no_such_param': 1}, 'no_such_param'),
    ({'device': 'dla0', 'dla_core_id': 1}, 'dla_core_id'),
    ({'device': 'cpu', 'backend': 'tensorrt'}, 'backend'),
])
def test_bad_values_name_the_parameter(values, name):
    with pytest.raises(ParameterError) as info:
        make_config(values)
    assert info.value.name == name
    assert f"'{name}'" in str(info.value)


def test_device_sets_dla_core_and_core_sets_device():
    assert make_config({'device': 'dla1'}).dla_core_id == 1
    assert make_config({'device': 'dla0', 'dla_core_id': 0}).dla_core_id == 0
    assert make_config({'dla_core_id': 0}).device == 'dla0'
    assert make_config({'score_threshold': 1}).score_threshold == 1.0


def test_param_yaml_is_generated_from_the_schema(repo_root):
    text = (repo_root / 'config' / 'yolox.param.yaml').read_text()
    assert text == param_yaml(), \
        'regenerate with: python -m tensorrt_yolox_py.tools.params_doc --yaml'
    loaded = load_param_yaml(repo_root / 'config' / 'yolox.param.yaml')
    expected = {k: v for k, v in defaults().items() if k not in DERIVED}
    assert loaded == expected
    make_config(loaded)


def test_readme_table_is_generated_from_the_schema(repo_root):
    readme = (repo_root / 'README.md').read_text()
    match = re.search(r'<!-- params:begin -->\n(.*?)<!-- params:end -->', readme, re.S)
    assert match, 'README.md needs the generated parameter table between params markers'
    assert match.group(1) == readme_table(), \
        'regenerate with: python -m tensorrt_yolox_py.tools.params_doc --markdown'


@pytest.mark.parametrize('content, message', [
    ('/**:\n  ros__parameters: [1, 2]\n', 'ros__parameters'),
    (': : :\n', 'not valid YAML'),
    ('a: 1\nb: 2\n', 'one node entry'),
])
def test_malformed_param_files(tmp_path, content, message):
    path = tmp_path / 'p.yaml'
    path.write_text(content)
    with pytest.raises(FileError, match=message):
        load_param_yaml(path)
    with pytest.raises(FileError, match='cannot read'):
        load_param_yaml(tmp_path / 'missing.yaml')
