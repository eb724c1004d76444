"""Settings listed once: what is derived from the parameter schema stays derived.

Every check is parametrized over ``params.PARAMS`` (never a hand list), so a new parameter is
covered by its schema entry alone:

- two cameras with batching on that differ in any ENGINE or DETECTOR parameter never share a
  detector; cameras that differ only in NODE parameters do;
- ``EngineSettings`` has exactly the ENGINE parameters and takes each from the config;
- every KEY_VALUE parameter, and every KEY_INT8 one under int8, changes the engine key fields;
- ``DetectorConfig`` has exactly the schema's fields and defaults.
"""

from dataclasses import fields
from typing import Any, Iterator, List

import pytest

from tensorrt_yolox_py.backends.base import param_choices
from tensorrt_yolox_py.backends.tensorrt.builder import ENGINE_PARAMS, EngineSettings
from tensorrt_yolox_py.batching import BatchGroups, group_key
from tensorrt_yolox_py.errors import ParameterError
from tensorrt_yolox_py.params import (DETECTOR, DetectorConfig, ENGINE, KEY_CONTENT, KEY_INT8,
                                      KEY_NONE, KEY_VALUE, make_config, NODE, ParamSpec,
                                      PARAMS, params_affecting)

#: A batching camera: GPU, max_batch 2 (the config a shared detector is made from).
BASE = {'max_batch': 2, 'device': 'gpu'}


def candidates(spec: ParamSpec, current: Any) -> Iterator[Any]:
    """Values of ``spec`` other than ``current``, from its type, choices and range."""
    choices = param_choices(spec)
    if choices:
        yield from (c for c in choices if c != current)
    elif spec.type is bool:
        yield not current
    elif spec.type is str:
        yield f'/tmp/other-{spec.name}'
    else:
        low = spec.min if spec.min is not None else current - 10
        high = spec.max if spec.max is not None else current + 10
        for value in (current + 1, current - 1, (current + high) / 2, (current + low) / 2):
            value = spec.type(value)
            if low <= value <= high and value != current:
                yield value


def variant(base: DetectorConfig, spec: ParamSpec) -> DetectorConfig:
    """``base`` with ``spec`` set to another valid value (batching kept when it can be)."""
    current = getattr(base, spec.name)
    for value in candidates(spec, current):
        for extra in ({}, {'max_batch': 1}):     # a DLA core cannot batch: then it is alone
            for device_given in (None, False):   # False: dla_core_id may set the device
                try:
                    config = make_config({**base.values(), spec.name: value, **extra},
                                         device_given=device_given)
                except ParameterError:
                    continue
                if getattr(config, spec.name) != current:
                    return config
    raise AssertionError(f'no other valid value for {spec.name}')


class Made:
    """What the recording factory returns: the config it was made from.

    ``BatchGroups`` takes the detector factory as its seam; the sharing decision is what is
    tested, and many variants (TensorRT, a DLA core, a CUDA graph) cannot be built on this
    machine, so the factory records instead of loading a model (test_batch_groups.py runs the
    real shared ``Detector``).
    """

    class _Caps:
        max_batch = 4

    class _Backend:
        capabilities = None

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.backend = self._Backend()
        self.backend.capabilities = self._Caps()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _detectors_for(first: DetectorConfig, second: DetectorConfig) -> List[Made]:
    made: List[Made] = []

    def make(config: DetectorConfig) -> Made:
        made.append(Made(config))
        return made[-1]

    groups = BatchGroups(make)
    clients = [groups.factory('front')(first), groups.factory('left')(second)]
    for client in clients:
        client.close()
    return made


@pytest.mark.parametrize('spec', params_affecting(ENGINE, DETECTOR), ids=lambda s: s.name)
def test_cameras_differing_in_an_engine_or_detector_parameter_never_share(spec):
    base = make_config(BASE)
    other = variant(base, spec)
    assert getattr(other, spec.name) != getattr(base, spec.name)
    made = _detectors_for(base, other)
    assert len(made) == 2, f'cameras differing in {spec.name} shared a detector'
    assert made[1].config == other            # the second camera got its own settings
    assert group_key(base) != group_key(other) or group_key(other) is None


@pytest.mark.parametrize('spec', params_affecting(NODE), ids=lambda s: s.name)
def test_cameras_differing_only_in_a_node_parameter_share(spec):
    base = make_config(BASE)
    made = _detectors_for(base, variant(base, spec))
    assert len(made) == 1


def test_every_parameter_says_what_it_affects():
    assert {spec.affects for spec in PARAMS} <= {ENGINE, DETECTOR, NODE}
    for spec in PARAMS:
        assert (spec.engine_key is not None) == (spec.affects == ENGINE), spec.name
    with pytest.raises(ValueError, match='engine_key'):
        ParamSpec('x', int, 0, 'x', affects=ENGINE)
    with pytest.raises(ValueError, match='affects'):
        ParamSpec('x', int, 0, 'x', affects='everything')
    with pytest.raises(ValueError, match='affects'):
        ParamSpec('x', int, 0, 'x')                     # untagged


def test_detector_config_is_the_schema():
    assert [(f.name, f.default) for f in fields(DetectorConfig)] == \
        [(spec.name, spec.default) for spec in PARAMS]


def test_engine_settings_are_the_engine_parameters(tmp_path):
    assert [f.name for f in fields(EngineSettings)] == [s.name for s in ENGINE_PARAMS]
    assert {s.name for s in ENGINE_PARAMS} == {s.name for s in PARAMS if s.affects == ENGINE}
    base = make_config({'model_path': str(tmp_path / 'm.onnx')})
    for spec in ENGINE_PARAMS:
        config = variant(base, spec)
        settings = EngineSettings.from_config(config)
        want = config.resolved_model_path if spec.name == 'model_path' \
            else getattr(config, spec.name)
        assert getattr(settings, spec.name) == want, spec.name


@pytest.mark.parametrize('spec', [s for s in ENGINE_PARAMS
                                  if s.engine_key in (KEY_VALUE, KEY_INT8)],
                         ids=lambda s: s.name)
def test_engine_key_fields_follow_the_schema(spec, tmp_path):
    base = make_config({'model_path': str(tmp_path / 'm.onnx'), 'precision': 'int8'})
    other = variant(base, spec)
    fields_of = EngineSettings.from_config
    assert fields_of(base).key_fields() != fields_of(other).key_fields()
    if spec.engine_key == KEY_INT8 and spec.name != 'precision':
        fp16 = base.replace(precision='fp16')
        assert fields_of(fp16).key_fields() == \
            fields_of(variant(fp16, spec)).key_fields(), f'{spec.name} rebuilds fp16 engines'


def test_content_and_none_parameters_are_not_keyed_by_value(tmp_path):
    settings = EngineSettings.from_config(make_config({'model_path': str(tmp_path / 'm')}))
    keyed = set(settings.key_fields())
    for spec in ENGINE_PARAMS:
        if spec.engine_key in (KEY_CONTENT, KEY_NONE):
            assert spec.name not in keyed


def test_typed_model_key_takes_every_int8_parameter(tmp_path):
    # prepare_typed_model keys the strongly typed (Q/DQ) model by key_fields((KEY_INT8,)).
    config = make_config({'model_path': str(tmp_path / 'm'), 'precision': 'int8'})
    keyed = EngineSettings.from_config(config).key_fields((KEY_INT8,))
    assert set(keyed) == {s.name for s in ENGINE_PARAMS if s.engine_key == KEY_INT8}
    assert not EngineSettings.from_config(config.replace(precision='fp16')).key_fields(
        (KEY_INT8,))
