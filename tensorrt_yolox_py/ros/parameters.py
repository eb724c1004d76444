"""Declare the detector's ROS parameters from the one schema (``params.PARAMS``) and validate.

Every ``ParamSpec`` becomes one read-only ROS parameter with a ``ParameterDescriptor``: its type,
description, ``FloatingPointRange`` / ``IntegerRange`` from min/max, and the allowed values in
``additional_constraints``. The values the user set (parameter file, ``-p``, launch, or
``parameter_overrides``) then go through ``params.make_config``, so the node, the tools and the
tests apply exactly the same rules; any problem raises ``ParameterError`` naming the parameter.
"""

import math
from typing import Any, Dict, Set, Tuple

from .._lazy import require
from ..backends.base import param_choices
from ..errors import ParameterError
from ..params import PARAMS, PARAMS_BY_NAME, DetectorConfig, ParamSpec, make_config

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
#: Parameters every rclpy node has; never reported as unknown.
_ROS_OWN = ('use_sim_time', 'start_type_description_service')


def descriptor_for(spec: ParamSpec) -> Any:
    """Return the rcl_interfaces ParameterDescriptor of ``spec``."""
    rcl = require('rcl_interfaces.msg', 'the ROS node', 'pip install ros-rclpy')
    kind = {bool: rcl.ParameterType.PARAMETER_BOOL,
            int: rcl.ParameterType.PARAMETER_INTEGER,
            float: rcl.ParameterType.PARAMETER_DOUBLE,
            str: rcl.ParameterType.PARAMETER_STRING}[spec.type]
    descriptor = rcl.ParameterDescriptor(name=spec.name, type=kind,
                                         description=spec.description, read_only=True)
    choices = param_choices(spec)
    if choices is not None:
        descriptor.additional_constraints = 'one of: ' + ', '.join(choices)
    if spec.min is not None or spec.max is not None:
        if spec.type is int:
            low = _INT64_MIN if spec.min is None else int(spec.min)
            high = _INT64_MAX if spec.max is None else int(spec.max)
            descriptor.integer_range = [rcl.IntegerRange(from_value=low, to_value=high, step=0)]
        else:
            low = -math.inf if spec.min is None else float(spec.min)
            high = math.inf if spec.max is None else float(spec.max)
            descriptor.floating_point_range = [
                rcl.FloatingPointRange(from_value=low, to_value=high, step=0.0)]
    return descriptor


def user_overrides(node: Any) -> Dict[str, Any]:
    """Return {name: value} of the parameters given to ``node`` at start-up (files, -p, ...)."""
    # rclpy keeps them in Node._parameter_overrides (there is no public getter).
    overrides = getattr(node, '_parameter_overrides', {}) or {}
    return {name: param.value for name, param in overrides.items()}


def declare_detector_parameters(node: Any) -> Tuple[DetectorConfig, Set[str]]:
    """Declare every schema parameter on ``node``; return (validated config, names set by user).

    Raises ParameterError naming the parameter for a wrong type, an out-of-range value, an
    unknown choice or contradicting values (e.g. ``device`` and ``dla_core_id``).
    """
    rclpy_exceptions = require('rclpy.exceptions', 'the ROS node', 'pip install ros-rclpy')
    given = user_overrides(node)
    # Check the user's values with the schema first: its messages name the rule broken.
    for name, value in given.items():
        if name in PARAMS_BY_NAME:
            PARAMS_BY_NAME[name].validate(value)
    for spec in PARAMS:
        try:
            node.declare_parameter(spec.name, spec.type(spec.default), descriptor_for(spec))
        except rclpy_exceptions.InvalidParameterTypeException as exc:
            value = given.get(spec.name)
            hint = ' (write it as a float, e.g. 1.0)' if spec.type is float else ''
            raise ParameterError(spec.name, f'expected a {spec.type.__name__}, got '
                                 f'{type(value).__name__} {value!r}{hint}') from exc
        except rclpy_exceptions.InvalidParameterValueException as exc:
            raise ParameterError(spec.name, f'{given.get(spec.name)!r} was rejected: {exc}'
                                 ) from exc
    unknown = sorted(set(given) - set(PARAMS_BY_NAME) - set(_ROS_OWN))
    unknown = [name for name in unknown if not name.startswith('qos_overrides.')]
    if unknown:
        node.get_logger().warning('ignoring unknown parameter(s): ' + ', '.join(unknown))
    values = {name: node.get_parameter(name).value for name in given if name in PARAMS_BY_NAME}
    return make_config(values), set(values)
