"""cameras.yaml -> one detector node spec per camera (pure: no rclpy, no launch).

Used by ``launch/multi_camera.launch.py`` (real ROS 2 installs) and by the in-process runner
``yolox_multi_camera`` (``ros/multi_camera.py``), so both start exactly the same nodes.

File format (``config/cameras.yaml``)::

    namespace: /perception/object_recognition/detection   # optional, default "/"
    node_name: tensorrt_yolox          # optional, default "tensorrt_yolox"
    exclusive_dla: true                # optional: at most one camera per DLA core
    parameters: {precision: int8}      # optional: node parameters for every camera
    cameras:
      - name: camera0                  # required, unique, [A-Za-z][A-Za-z0-9_]*
        image_topic: /sensing/camera/camera0/image_rect_color    # required
        device: gpu                    # gpu | dla0 | dla1 | cpu (default gpu)
        objects_topic: rois0           # optional: where ~/out/objects goes
        parameters: {score_threshold: 0.4}                       # optional, per camera

Each camera becomes a ``NodeSpec``: node ``node_name`` in namespace ``<namespace>/<name>``,
remapping ``~/in/image`` to ``image_topic`` (and ``~/out/objects`` to ``objects_topic`` when
given), parameters = shared parameters, then the camera's, then ``device`` (a shared
``max_batch`` does not apply to DLA cameras: they keep batch 1); every camera's
parameters are validated with ``params.make_config`` (and float parameters written as YAML
integers become floats, as ROS requires). Errors raise ``CameraConfigError`` naming
the camera and the field.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple, Union

from ..errors import FileError, ParameterError, YoloxError
from ..params import DEVICES, make_config, PARAMS_BY_NAME

DEFAULT_NODE_NAME = 'tensorrt_yolox'
_NAME_RE = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')
_TOKEN = r'[A-Za-z_][A-Za-z0-9_]*'
_TOPIC_RE = re.compile(rf'^/?{_TOKEN}(/{_TOKEN})*$')
_NAMESPACE_RE = re.compile(rf'^/({_TOKEN}(/{_TOKEN})*)?$')
_TOP_KEYS = {'namespace', 'node_name', 'exclusive_dla', 'parameters', 'cameras'}
_CAMERA_KEYS = {'name', 'image_topic', 'device', 'objects_topic', 'parameters'}


class CameraConfigError(YoloxError, ValueError):
    """cameras.yaml is malformed; the message names the camera and the field."""


class CameraFileError(CameraConfigError, FileError):
    """The cameras file cannot be read or is not YAML (a file problem, not a bad value)."""

    def __init__(self, path: object, message: str) -> None:
        FileError.__init__(self, path, message)


@dataclass(frozen=True)
class NodeSpec:
    """Everything needed to start one detector node for one camera."""

    camera: str
    device: str
    name: str
    namespace: str
    remappings: Tuple[Tuple[str, str], ...]
    parameters: Dict[str, Any]

    @property
    def fully_qualified_name(self) -> str:
        """Return ``/namespace/name``."""
        return self.namespace.rstrip('/') + '/' + self.name

    def ros_args(self) -> List[str]:
        """Return the remappings as ``--ros-args -r from:=to ...`` command-line arguments."""
        args = ['--ros-args']
        for source, target in self.remappings:
            args += ['-r', f'{source}:={target}']
        return args


def is_valid_topic(topic: Any) -> bool:
    """Return whether ``topic`` is a valid absolute or relative ROS topic name."""
    return isinstance(topic, str) and bool(_TOPIC_RE.match(topic))


def _typed(name: str, value: Any) -> Any:
    """Return ``value`` as the parameter's schema type (YAML ``1`` for a float means 1.0)."""
    spec = PARAMS_BY_NAME.get(name)
    if spec is not None and spec.type is float and not isinstance(value, bool):
        return float(value)
    return value


def _join_namespace(base: str, name: str) -> str:
    return base.rstrip('/') + '/' + name


def node_specs(config: Mapping[str, Any]) -> List[NodeSpec]:
    """Map a parsed cameras.yaml to one ``NodeSpec`` per camera; see the module docstring."""
    if not isinstance(config, Mapping):
        raise CameraConfigError('cameras file: expected a mapping with a "cameras" list')
    unknown = sorted(set(config) - _TOP_KEYS)
    if unknown:
        raise CameraConfigError(f'cameras file: unknown key(s) {", ".join(map(str, unknown))} '
                                f'(known: {", ".join(sorted(_TOP_KEYS))})')
    namespace = config.get('namespace', '/')
    if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace.rstrip('/') or '/'):
        raise CameraConfigError(f'cameras file: namespace {namespace!r} is not a valid '
                                'absolute ROS namespace (e.g. /perception/camera)')
    node_name = config.get('node_name', DEFAULT_NODE_NAME)
    if not isinstance(node_name, str) or not _NAME_RE.match(node_name):
        raise CameraConfigError(f'cameras file: node_name {node_name!r} is not a valid node '
                                'name')
    exclusive_dla = config.get('exclusive_dla', False)
    if not isinstance(exclusive_dla, bool):
        raise CameraConfigError(f'cameras file: exclusive_dla must be true or false, got '
                                f'{exclusive_dla!r}')
    shared = config.get('parameters') or {}
    if not isinstance(shared, Mapping):
        raise CameraConfigError('cameras file: parameters must be a mapping of node parameters')
    cameras = config.get('cameras')
    if not isinstance(cameras, list) or not cameras:
        raise CameraConfigError('cameras file: "cameras" must be a non-empty list')

    specs: List[NodeSpec] = []
    seen_names: Dict[str, int] = {}
    dla_users: Dict[str, str] = {}
    objects_users: Dict[str, str] = {}
    for index, camera in enumerate(cameras):
        where = f'cameras[{index}]'
        if not isinstance(camera, Mapping):
            raise CameraConfigError(f'{where}: expected a mapping with name and image_topic')
        name = camera.get('name')
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise CameraConfigError(f'{where}: name {name!r} must match '
                                    '[A-Za-z][A-Za-z0-9_]* (it becomes a ROS namespace)')
        where = f"camera '{name}'"
        if name in seen_names:
            raise CameraConfigError(f'{where}: duplicate camera name (cameras[{seen_names[name]}]'
                                    f' and cameras[{index}])')
        seen_names[name] = index
        unknown = sorted(set(camera) - _CAMERA_KEYS)
        if unknown:
            raise CameraConfigError(f'{where}: unknown key(s) {", ".join(map(str, unknown))} '
                                    f'(known: {", ".join(sorted(_CAMERA_KEYS))})')
        image_topic = camera.get('image_topic')
        if not is_valid_topic(image_topic):
            raise CameraConfigError(f'{where}: image_topic {image_topic!r} is not a valid ROS '
                                    'topic name (e.g. /sensing/camera/camera0/image_raw)')
        device = camera.get('device', 'gpu')
        if device not in DEVICES:
            raise CameraConfigError(f'{where}: unknown device {device!r} (use one of '
                                    f'{", ".join(DEVICES)})')
        if exclusive_dla and device.startswith('dla'):
            if device in dla_users:
                raise CameraConfigError(
                    f"{where}: {device} is already used by camera '{dla_users[device]}' and "
                    'exclusive_dla is true (one camera per DLA core)')
            dla_users[device] = name
        remappings = [('~/in/image', image_topic)]
        objects_topic = camera.get('objects_topic')
        if objects_topic is not None:
            if not is_valid_topic(objects_topic):
                raise CameraConfigError(f'{where}: objects_topic {objects_topic!r} is not a '
                                        'valid ROS topic name')
            resolved = (objects_topic if objects_topic.startswith('/')
                        else _join_namespace(_join_namespace(namespace, name), objects_topic))
            if resolved in objects_users:
                raise CameraConfigError(f"{where}: objects_topic {resolved} is also used by "
                                        f"camera '{objects_users[resolved]}'")
            objects_users[resolved] = name
            remappings.append(('~/out/objects', objects_topic))
        own = camera.get('parameters') or {}
        if not isinstance(own, Mapping):
            raise CameraConfigError(f'{where}: parameters must be a mapping')
        parameters = {**dict(shared), **dict(own), 'device': device}
        if device.startswith('dla') and 'max_batch' not in own:
            parameters.pop('max_batch', None)   # cameras on a DLA keep batch 1
        try:
            make_config(parameters)
        except ParameterError as exc:
            raise CameraConfigError(f'{where}: {exc}') from exc
        parameters = {name: _typed(name, value) for name, value in parameters.items()}
        specs.append(NodeSpec(camera=name, device=device, name=node_name,
                              namespace=_join_namespace(namespace, name),
                              remappings=tuple(remappings), parameters=parameters))
    return specs


def load_cameras_file(path: Union[str, Path]) -> List[NodeSpec]:
    """Read a cameras.yaml file and return its node specs (CameraConfigError names the file)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except OSError as exc:
        raise CameraFileError(path, f'cannot read cameras file {path}: {exc}') from exc
    except yaml.YAMLError as exc:
        raise CameraFileError(path, f'cameras file {path} is not valid YAML: {exc}') from exc
    try:
        return node_specs(data)
    except CameraConfigError as exc:
        raise CameraConfigError(f'{path}: {exc}') from exc
