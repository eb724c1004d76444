"""JetPack 5.1 (TensorRT 8.5): the API is there; the platform is why it is refused.

No TensorRT 8.5 bindings wheel exists on the package index, so 8.5's Python API was read from
NVIDIA's binding sources (NVIDIA/TensorRT tag ``8.5.2``, JetPack 5.1's TensorRT; the
``release/8.5`` branch (8.5.3) reads the same: ``python/src/**/*.cpp`` and
``python/packaging/tensorrt/__init__.py``) by ``trt_api/source_api.py`` into a names-only
manifest (``manifests/source-tensorrt-8.5.2.json``; its ``source`` says the commit). The same
reader run on ``release/8.6`` is checked here against the manifest dumped from the real 8.6.1
wheel, which is what makes the 8.5 reading trustworthy.
"""

import json

import pytest

from tensorrt_yolox_py.backends.tensorrt.capabilities import supports, unsupported_reason
from trt_api.api import Api, MANIFESTS
from trt_api.source_api import has

#: Real 8.6.1 classes the source reader does not see: pybind11 bind_vector / bind_map
#: containers (declared with py::bind_vector, not py::class_).
CONTAINERS = {'NodeIndices', 'PluginFieldCollection', 'SubGraphCollection'}
#: What the package's sources use and 8.5 lacks, and why that does not matter there.
ABSENT_IN_8_5 = {
    'OnnxParserFlag': 'the hardware checklist\'s ADJUST_FOR_DLA experiment, which runs on '
                      'TensorRT 11.4.1+ only',
}


def source_manifest(version):
    return json.loads((MANIFESTS / f'source-tensorrt-{version}.json').read_text())


def test_source_reader_reproduces_the_real_8_6_1_api():
    """Every class, method, property and enum member of the real 8.6.1 wheel is found in the
    8.6 sources, and the reader invents nothing the wheel lacks."""
    real, read = Api('8.6.1'), source_manifest('8.6.1')
    assert 'release/8.6' in read['source'] and '8.6.1' in read['source']
    missing, checked = [], 0
    for name, entry in real.classes.items():
        if name in CONTAINERS:
            continue
        for member in list(entry['methods']) + list(entry['properties']):
            checked += 1
            if not has(read, f'{name}.{member}'):
                missing.append(f'{name}.{member}')
    for name, entry in real.enums.items():
        for member in entry['members']:
            checked += 1
            if not has(read, f'{name}.{member}'):
                missing.append(f'{name}.{member}')
    assert checked > 900 and not missing, missing[:20]
    invented = [f'{name}.{member}' for table in ('classes', 'enums')
                for name, members in read[table].items() for member in members
                if not real.has(f'{name}.{member}')]
    assert not invented, invented[:20]


def test_tensorrt_8_5_has_every_name_the_package_uses():
    """So the named-tensor API is not why JetPack 5.1 is refused."""
    from test_tensorrt_api_conformance import _guarding, package_trt_names

    read = source_manifest('8.5.2')
    assert 'tag 8.5.2' in read['source'] and 'JetPack 5.1' in read['source']
    for name in ('IExecutionContext.set_tensor_address', 'IExecutionContext.execute_async_v3',
                 'IExecutionContext.set_input_shape', 'ICudaEngine.get_tensor_name',
                 'ICudaEngine.num_io_tensors', 'ICudaEngine.get_tensor_profile_shape',
                 'IBuilderConfig.set_memory_pool_limit', 'Builder.build_serialized_network',
                 'EngineInspector.get_layer_information', 'BuilderFlag.TF32'):
        assert has(read, name), name
    lacking = set()
    for name in package_trt_names():
        parts = name.split('.')
        short = '.'.join(parts[:3] if len(parts) > 2 and parts[:2] == ['ILogger', 'Severity']
                         else parts[:2])
        if has(read, short):
            continue
        if any(not supports((8, 5, 2), cap) for cap in _guarding(short)):
            continue        # guarded by a capability that is off before 8.6 / 10.0
        lacking.add(parts[0])
    assert lacking == set(ABSENT_IN_8_5), lacking
    assert not has(read, 'IProgressMonitor')       # 10.0+, guarded: progress_monitor


@pytest.mark.parametrize('version', [(8, 5, 2), (8, 5, 3)])
def test_tensorrt_8_5_is_refused_for_the_platform_not_the_api(version):
    reason = unsupported_reason(version)
    assert 'JetPack 5.1' in reason and 'Python 3.8' in reason and 'CUDA 11.4' in reason
    assert 'has every call this package makes' in reason and 'JetPack 6' in reason
    assert unsupported_reason((8, 4, 3)).startswith('TensorRT 8.4.3 is too old')
    assert unsupported_reason((8, 6, 1)) == ''
