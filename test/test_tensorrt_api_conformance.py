"""The package and its TensorRT double against the REAL TensorRT Python API of every version.

Reference: the JSON manifests of the real bindings of TensorRT 8.6.1, 10.3.0, 10.13.3.9,
10.16.1.11 and 11.4.0.106 (``test/trt_api/manifests``; ``bash scripts/trt_api.sh
--manifests`` regenerates them from the wheels). Checked here:

- every TensorRT name the package spells (``trt.X``, ``trt.X.Y``, calibrator base names) exists
  in every supported version, or is listed in ``capabilities.CAPABILITIES`` and that capability
  is off wherever the name is missing;
- the package's builder and runtime run in each version mode of the double (which has exactly
  that version's names, and checks every call against its real pybind11 signatures);
- the double exposes nothing a version lacks, invents no member that no version has, and its
  enum values are the real ones.
"""

import ast
import warnings
from pathlib import Path
from typing import Dict, List, Set

import numpy as np
import pytest

from tensorrt_yolox_py.backends.tensorrt import TensorRTBackend
from tensorrt_yolox_py.backends.tensorrt.calibration import BASES
from tensorrt_yolox_py.backends.tensorrt.capabilities import CAPABILITIES, supports
from trt_api.api import Api, manifest, version_tuple, VERSIONS
from trt_double.control import DoubleTensorRT, Hardware
from trt_double.helpers import config
from trt_double.host_memory import HostMemory

pytest_plugins = ['trt_double.fixtures']

PACKAGE = Path(__file__).resolve().parents[1] / 'tensorrt_yolox_py'
TRT_VARS = {'trt', 'self._trt', 'self.trt'}


def _chain(node: ast.AST) -> List[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Attribute):
        return []
    return list(reversed(parts))


#: Files whose TensorRT names are checked: the package and the hardware checklist.
CHECKLIST = PACKAGE.parent / 'scripts' / 'check_tensorrt_on_hardware.py'
SOURCES = sorted(PACKAGE.rglob('*.py')) + [CHECKLIST]
#: What an enum member has besides its enum (pybind11 enums).
ENUM_MEMBER_ATTRS = {'name', 'value'}
#: Module attributes every Python module has (the manifests list public names only).
MODULE_DUNDERS = {'__version__', '__file__', '__name__'}


def _trt_chain(node: ast.AST) -> List[str]:
    """Return the chain after the TensorRT module ([] when ``node`` is not rooted there)."""
    chain = _chain(node)
    if len(chain) > 2 and chain[0] == 'self' and chain[1] in ('_trt', 'trt'):
        chain = chain[1:]
    if not chain or chain[0] not in ('trt', '_trt') or len(chain) < 2:
        return []
    return chain[1:]


def package_trt_names() -> Dict[str, Set[str]]:
    """Return {'X', 'X.Y', 'X.Y.Z', ...: files} for every TensorRT attribute chain spelled.

    Full chains at any depth (``trt.X.Y.Z``), and ``getattr(trt.X, 'Y')`` with a literal name
    and no default (with a default, or under ``hasattr``, the code is ready for its absence).
    """
    found: Dict[str, Set[str]] = {}
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            chain: List[str] = []
            if isinstance(node, ast.Attribute):
                chain = _trt_chain(node)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id == 'getattr' and len(node.args) == 2 and \
                    isinstance(node.args[1], ast.Constant) and \
                    isinstance(node.args[1].value, str):
                target = node.args[0]
                if isinstance(target, ast.Name) and target.id in ('trt', '_trt'):
                    chain = [node.args[1].value]
                elif _trt_chain(target):
                    chain = _trt_chain(target) + [node.args[1].value]
            if chain and chain[0] not in MODULE_DUNDERS:
                found.setdefault('.'.join(chain), set()).add(path.name)
    for base in BASES.values():
        found.setdefault(base, set()).add('calibration.py (BASES)')
    return found


def resolves(api: Api, dotted: str) -> bool:
    """Whether a TensorRT attribute chain exists in ``api`` at every step.

    Module name -> class or enum -> nested classes -> member; after an enum member only
    ``name`` / ``value``. A chain through a method or property (whose result type the
    manifest does not give) resolves if the member exists (the double, pruned to the
    version, checks what follows at run time).
    """
    parts = dotted.split('.')
    if len(parts) <= 2:
        return api.has(dotted)
    owner = parts[0]
    if not api.has(owner):
        return False
    for index, part in enumerate(parts[1:], start=1):
        if owner in api.enums:
            if part not in api.members(owner):
                return False
            rest = parts[index + 1:]
            return len(rest) <= 1 and set(rest) <= ENUM_MEMBER_ATTRS
        kind = api.members(owner).get(part)
        if kind is None:
            return False
        if kind != 'nested':
            return True
        owner = f'{owner}.{part}'
    return True


def _guarding(name: str) -> List[str]:
    """Capabilities guarding ``name`` (or its class, for ``Class.member``)."""
    owner = name.split('.')[0]
    return [cap for cap, spec in CAPABILITIES.items()
            if name in spec.api_names or owner in spec.api_names]


def test_manifests_are_the_five_real_versions():
    for version in VERSIONS:
        data = manifest(version)
        assert data['version'] == version
        assert data['stats']['classes'] > 100 and data['stats']['methods'] > 300


def test_package_uses_trt_names_of_every_version_or_guards_them():
    names = package_trt_names()
    assert {'Builder', 'Runtime', 'OnnxParser', 'BuilderFlag.INT8',
            'NetworkDefinitionCreationFlag.STRONGLY_TYPED'} <= set(names)
    assert 'OnnxParserFlag.ADJUST_FOR_DLA' not in names     # a checklist getattr(name)
    apis = [Api(v) for v in VERSIONS]
    problems = []
    for name, files in sorted(names.items()):
        missing = [api.version for api in apis if not resolves(api, name)]
        if not missing:
            continue
        caps = _guarding(name)
        if not caps:
            problems.append(f'{name} (used in {", ".join(sorted(files))}) is missing in '
                            f'{", ".join(missing)} and no capability guards it')
            continue
        for version in missing:
            if any(supports(version_tuple(version)[:3], cap) for cap in caps):
                problems.append(f'{name}: capability {caps} claims TensorRT {version} has it')
    assert not problems, '\n'.join(problems)


def test_chains_resolve_at_every_depth_or_fail():
    api = Api('10.3.0')
    assert resolves(api, 'BuilderFlag.TF32') and resolves(api, 'BuilderFlag.TF32.name')
    assert resolves(api, 'IBuilderConfig.set_flag') and resolves(api, 'DataType.HALF.value')
    for bad in ('BuilderFlag.NOPE', 'BuilderFlag.TF32.bogus', 'BuilderFlag.TF32.name.x',
                'IBuilderConfig.nope.x', 'Nope.X.Y'):
        assert not resolves(api, bad), bad
    names = package_trt_names()
    assert {'BuilderFlag.TF32', 'NetworkDefinitionCreationFlag.EXPLICIT_BATCH'} <= set(names)
    assert 'LayerType.CONSTANT' not in names     # getattr(..., 'CONSTANT', None): guarded


@pytest.mark.parametrize('name', sorted(CAPABILITIES))
def test_capability_names_exist_wherever_the_capability_holds(name):
    spec = CAPABILITIES[name]
    for version in VERSIONS:
        if not supports(version_tuple(version)[:3], name):
            continue
        api = Api(version)
        absent = [n for n in spec.api_names if not api.has(n)]
        assert not absent, f'{name} holds on {version} but it lacks {absent}'


def test_capability_boundaries_match_the_real_api():
    """Where a capability's names vanish, the capability ends (and vice versa)."""
    for name, spec in CAPABILITIES.items():
        for api_name in spec.api_names:
            present = [v for v in VERSIONS if Api(v).has(api_name)]
            held = [v for v in VERSIONS if supports(version_tuple(v)[:3], name)]
            assert set(held) <= set(present), (name, api_name, held, present)


def _scenarios(version: str) -> List[Dict]:
    out = [dict(precision='fp32'), dict(precision='fp16'), dict(precision='fp16', max_batch=3)]
    if not supports(version_tuple(version)[:3], 'strongly_typed_only'):
        out.append(dict(precision='int8', int8_mode='implicit'))
        out.append(dict(precision='int8', int8_mode='implicit', max_batch=2))
        out.append(dict(precision='int8', clip_value=6.0))
    return out


@pytest.mark.parametrize('version', VERSIONS)
def test_package_runs_in_every_version_mode(version, monkeypatch, tiny_model, calib_images,
                                            tmp_path):
    """Builder + runtime against the version-exact double: names and signatures are real."""
    memory = HostMemory()
    control = DoubleTensorRT(version, Hardware(), memory).install(monkeypatch)
    for index, values in enumerate(_scenarios(version)):
        cfg = config(tiny_model, tmp_path / f'c{index}', profile_per_layer=True,
                     calibration_image_list_path=str(calib_images), **values)
        with warnings.catch_warnings():
            warnings.simplefilter('error', DeprecationWarning)  # the package silences its own
            with TensorRTBackend.from_config(cfg, memory=memory, trt=control.module) as backend:
                batch = backend.capabilities.max_batch
                assert batch == values.get('max_batch', 1)
                out = backend.infer(np.zeros((batch, 3, 64, 64), np.float32))
                if batch > 1:
                    out = backend.infer(np.zeros((1, 3, 64, 64), np.float32))
                layers = backend.engine_layer_info()
        assert out.shape[0] == 1 and np.isfinite(out).all()
        assert layers and all(layer['detailed'] for layer in layers)
    assert not control.callback_errors
    called = {name for name, _, _ in control.api_calls}
    assert {'Builder.create_network', 'IBuilderConfig.set_memory_pool_limit',
            'IExecutionContext.set_tensor_address', 'IExecutionContext.execute_async_v3',
            'EngineInspector.get_layer_information'} <= called
    api = Api(control.module._API.version)
    for name in called:
        owner, _, member = name.rstrip('=').rpartition('.')
        assert api.has(f'{owner}.{member}') or member == '__init__', name
    assert memory.live() == 0


@pytest.mark.parametrize('version', VERSIONS)
def test_double_exposes_only_the_real_api(version):
    control = DoubleTensorRT(version)
    module, api = control.module, Api(version)
    public = [n for n in vars(module) if not n.startswith('_') and n != 'annotations']
    assert set(public) <= set(api.module_names())
    for name in public:
        obj = getattr(module, name)
        if isinstance(obj, type) and name in api.classes:
            members = api.members(name)
            extra = [a for a in vars(obj) if not a.startswith('_') and a not in members]
            assert not extra, f'{version}: {name} has {extra}'
        if isinstance(obj, type) and name in api.enums:
            assert {k: int(v) for k, v in obj.__members__.items()} == \
                api.enums[name]['members']


def test_double_invents_no_member_of_its_own():
    """A member the double defines that NO real version has is an invention."""
    pruned = [set(DoubleTensorRT(v).pruned) for v in VERSIONS]
    invented = set.intersection(*pruned) - {'annotations', 'Any', 'Dict', 'List', 'Optional',
                                            'Sequence', 'Tuple'}
    assert not invented


@pytest.mark.parametrize('version', VERSIONS)
def test_double_instances_have_only_real_attributes(version, tiny_model):
    control = DoubleTensorRT(version)
    trt = control.module
    api = Api(version)

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            pass

    builder = trt.Builder(Logger())
    network = builder.create_network(0)
    assert trt.OnnxParser(network, Logger()).parse_from_file(str(tiny_model))
    objects = {'Builder': builder, 'INetworkDefinition': network,
               'IBuilderConfig': builder.create_builder_config(),
               'ILayer': network.get_layer(0), 'ITensor': network.get_input(0)}
    for qualname, obj in objects.items():
        members = api.members(qualname)
        extra = [k for k in vars(obj) if not k.startswith('_') and k not in members]
        assert not extra, f'{version}: {qualname} instance has {extra}'
        with pytest.raises(AttributeError):
            obj.not_a_tensorrt_member = 1


def test_tensorrt_11_mode_lacks_the_removed_api():
    trt = DoubleTensorRT('11.4.0.106').module
    for name in ('IInt8EntropyCalibrator2', 'IInt8MinMaxCalibrator', 'IInt8LegacyCalibrator',
                 'CalibrationAlgoType'):
        assert not hasattr(trt, name)
    for flag in ('FP16', 'INT8', 'PREFER_PRECISION_CONSTRAINTS'):
        assert not hasattr(trt.BuilderFlag, flag)
    assert not hasattr(trt.NetworkDefinitionCreationFlag, 'EXPLICIT_BATCH')
    assert not hasattr(trt.IBuilderConfig, 'int8_calibrator')
    assert not hasattr(trt.ITensor, 'set_dynamic_range')
    assert not hasattr(trt.ILayer, 'precision') and not hasattr(trt.ILayer, 'set_output_type')
    assert not hasattr(trt.Builder, 'platform_has_fast_fp16')
    assert hasattr(trt.BuilderFlag, 'GPU_FALLBACK') and hasattr(trt, 'IProgressMonitor')


@pytest.mark.parametrize('version', VERSIONS)
def test_double_has_every_name_the_package_uses_where_the_version_has_it(version):
    module, api = DoubleTensorRT(version).module, Api(version)
    missing = []
    for name in package_trt_names():
        if not api.has(name):
            continue
        obj = module
        for part in name.split('.'):
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(name)
    assert not missing, f'the double of {version} lacks {missing}'
