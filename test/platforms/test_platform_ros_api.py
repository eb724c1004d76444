"""The rclpy / launch / launch_ros calls the package makes exist in Humble, Jazzy and Kilted.

Held to each distribution's sources the way the TensorRT calls are held to the real bindings:
``snapshots/ros_api/<distro>.json`` records, for every name the installed code uses (found by
``ros_api.used_names``), what that distribution's sources define (``ros_api.snapshot``; the
sources and commits are named in each file: ros2/rclpy, ros2/launch and ros2/launch_ros at the
distribution's branch; Kilted's rclpy from the PyPI Kilted wheel, Kilted's launch and
launch_ros from rolling at 3.7.1 / 0.28.0, the newest in the snapshot of GitHub we have).
``scripts/platform_snapshots.py ros-api`` regenerates them. Here, offline:

- every used name exists in every distribution, and each of its call shapes binds to the
  signature there (a method called on an object of unknown type counts where it binds to a
  method of that name in Kilted; of names imported as alternatives, ``try`` / ``except
  ImportError``, one must);
- a name the snapshots do not know (new code) fails with the command that regenerates them;
- a return type that differs between distributions must be listed in ``REVIEWED`` with how
  the package copes (it once used Kilted's ``with rclpy.init():`` and Kilted's
  ``Executor.create_future``, which Humble and Jazzy lack).
"""

import json
from pathlib import Path

import pytest

import ros_api

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).resolve().parent / 'snapshots' / 'ros_api'
DISTROS = ('humble', 'jazzy', 'kilted')
REGENERATE = ('python3 scripts/platform_snapshots.py ros-api --rclpy RCLPY --launch LAUNCH '
              '--launch-ros LAUNCH_ROS --kilted-rclpy SITE_PACKAGES')
#: Return types that differ between the distributions, and how the package copes.
REVIEWED = {
    'rclpy:init': 'ros/lifecycle.init_ros: Humble and Jazzy return None; it returns a context '
                  'manager that calls rclpy.try_shutdown instead',
}


@pytest.fixture(scope='module')
def snapshots():
    return {d: json.loads((SNAPSHOTS / f'{d}.json').read_text()) for d in DISTROS}


@pytest.fixture(scope='module')
def used():
    universe = set(json.loads((SNAPSHOTS / 'methods.json').read_text())['methods'])
    names = ros_api.used_names(ROOT)
    return {name: shapes for name, shapes in names.items()
            if not name.startswith('*.') or name[2:] in universe}


def test_the_scan_sees_the_node_and_the_launch_files(used):
    for name in ('rclpy:init', 'rclpy.executors:SingleThreadedExecutor',
                 'rclpy.node:Node.create_subscription', 'launch_ros.actions:Node',
                 'launch.actions:DeclareLaunchArgument', '*.spin_until_future_complete'):
        assert name in used, name


def test_every_used_name_is_in_the_snapshots(used, snapshots):
    unknown = sorted(name for name in used
                     if any(name not in snapshots[d]['names'] for d in DISTROS))
    assert not unknown, (f'rclpy / launch names used but not in the snapshots: {unknown}; '
                         f'regenerate them: {REGENERATE}')


def problems_of(name, shapes, names, kilted):
    """Return why ``name`` (with its call shapes) fails in the distribution ``names``."""
    if name.startswith('*.'):
        # A method of an object of unknown type: an rclpy / launch call only where it binds
        # to a method of that name in Kilted's sources (what CI runs), e.g. not time.sleep.
        shapes = [shape for shape in shapes if any(
            ros_api.compatible(shape, sig)
            for sig in ros_api.callable_signatures(kilted.get(name)))]
        if not shapes:
            return []
    entry = names[name]
    if entry is None:
        return [f'{name}: not there']
    signatures = ros_api.callable_signatures(entry)
    if not signatures:
        return []   # a value, module, property or class without its own __init__
    return [f'{name}: a call with {shape[0]} positional and keywords {list(shape[1])} does '
            f'not bind: {[s["params"] for s in signatures]}'
            for shape in shapes if not any(ros_api.compatible(shape, sig)
                                           for sig in signatures)]


@pytest.mark.parametrize('distro', DISTROS)
def test_every_used_name_exists_and_binds(used, snapshots, distro):
    names = snapshots[distro]['names']
    kilted = snapshots['kilted']['names']
    problems = []
    groups = ros_api.alternatives(ROOT)
    grouped = {name for group in groups for name in group}
    for group in sorted(groups):
        # imported as alternatives (try / except ImportError): one of them must do
        found = [problems_of(name, used.get(name, []), names, kilted) for name in group
                 if name in names]
        if not any(not found_problems for found_problems in found):
            problems.append(f'none of the alternatives {list(group)} works: {found}')
    for name, shapes in used.items():
        if name not in names or name in grouped:
            continue   # reported by test_every_used_name_is_in_the_snapshots / above
        problems += problems_of(name, shapes, names, kilted)
    sources = snapshots[distro]['sources']
    assert not problems, f'{distro} ({sources}):\n' + '\n'.join(problems)


def _returns(entry):
    if isinstance(entry, dict) and entry.get('kind') == 'function' and entry.get('returns'):
        return entry['returns'].strip('\'"').split('[')[0]
    return None


def test_return_types_that_differ_are_reviewed(used, snapshots):
    differing = {}
    for name in used:
        returns = {d: _returns(snapshots[d]['names'].get(name)) for d in DISTROS}
        annotated = {value for value in returns.values() if value}
        if len(annotated) > 1:
            differing[name] = returns
    unreviewed = {name: r for name, r in differing.items() if name not in REVIEWED}
    assert not unreviewed, ('return types differ between distributions; make the package cope '
                            f'and add them to REVIEWED: {unreviewed}')
    assert set(REVIEWED) <= set(differing), 'REVIEWED lists a difference that is gone'


def test_init_copes_with_the_none_of_humble_and_jazzy(monkeypatch):
    """``init_ros`` gives a context manager on every distribution (Humble's init: None)."""
    import sys
    import types

    from tensorrt_yolox_py.ros import lifecycle

    calls = []
    fake = types.ModuleType('rclpy')
    fake.init = lambda **kwargs: calls.append(('init', kwargs))          # returns None
    fake.try_shutdown = lambda **kwargs: calls.append(('try_shutdown', kwargs))
    implementation = types.ModuleType('rclpy.impl.implementation_singleton')
    implementation.rclpy_implementation = types.SimpleNamespace(RCLError=RuntimeError)
    signals = types.ModuleType('rclpy.signals')
    signals.SignalHandlerOptions = types.SimpleNamespace(NO='NO')
    for name, module in (('rclpy', fake), ('rclpy.impl', types.ModuleType('rclpy.impl')),
                         ('rclpy.impl.implementation_singleton', implementation),
                         ('rclpy.signals', signals)):
        monkeypatch.setitem(sys.modules, name, module)
    with lifecycle.init_ros(['x']):
        assert calls == [('init', {'args': ['x'], 'signal_handler_options': 'NO'})]
    assert calls[-1] == ('try_shutdown', {})


def test_a_call_that_does_not_bind_is_caught():
    kilted = json.loads((SNAPSHOTS / 'kilted.json').read_text())['names']
    sig = kilted['rclpy.node:Node.create_subscription']
    assert ros_api.compatible((4, (), False, False), sig)
    assert ros_api.compatible((4, ('qos_overriding_options',), False, False), sig)
    assert not ros_api.compatible((4, ('no_such_option',), False, False), sig)
    assert not ros_api.compatible((3, (), False, False), sig)          # qos_profile missing
    assert not ros_api.compatible((5, (), False, False), sig)          # callback_group: kwonly
    init = kilted['rclpy:init']
    assert not ros_api.compatible((1, (), False, False), init)         # keyword-only there


def test_the_scanner_reads_calls_on_self_and_on_imports(tmp_path):
    package = tmp_path / 'tensorrt_yolox_py'
    package.mkdir()
    (tmp_path / 'launch').mkdir()
    (package / 'sample.py').write_text(
        'from rclpy.node import Node\n'
        'import rclpy\n\n\n'
        'class N(Node):\n'
        '    def go(self):\n'
        '        self.create_timer(1.0, self.go, autostart=False)\n'
        '        rclpy.spin_once(self, timeout_sec=0.1)\n')
    (package / 'either.py').write_text(
        'try:\n'
        '    from rclpy.event_handler import SubscriptionEventCallbacks\n'
        'except ImportError:\n'
        '    from rclpy.qos_event import SubscriptionEventCallbacks\n\n'
        'CALLBACKS = SubscriptionEventCallbacks(message_lost=print)\n')
    found = ros_api.used_names(tmp_path)
    assert found['rclpy.node:Node.create_timer'] == [(2, ('autostart',), False, False)]
    assert found['rclpy:spin_once'] == [(1, ('timeout_sec',), False, False)]
    group = ('rclpy.event_handler:SubscriptionEventCallbacks',
             'rclpy.qos_event:SubscriptionEventCallbacks')
    assert ros_api.alternatives(tmp_path) == {group}
    assert all(found[name] == [(0, ('message_lost',), False, False)] for name in group)
