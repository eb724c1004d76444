"""Every package.xml key resolves with rosdep for humble/jammy, jazzy/noble and kilted/noble.

rosdep itself (requirements-dev.txt) runs offline: its sources list points at the committed
snapshot of ros/rosdistro (``snapshots/rosdistro``: the package's keys in rosdep/base.yaml and
rosdep/python.yaml, the distributions' release files reduced to the repositories that release
a key; ``scripts/platform_snapshots.py rosdep`` regenerates it and names the commit), and
``ROSDISTRO_INDEX_URL`` at the snapshot's index. ``rosdep update`` builds its cache in a
temporary ROS_HOME; ``rosdep resolve`` then answers per distribution and Ubuntu release.
"""

import ast
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Set

import pytest

from platform_rows import ROS_MODULE

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).resolve().parent / 'snapshots' / 'rosdistro'
TARGETS = (('humble', 'jammy'), ('jazzy', 'noble'), ('kilted', 'noble'))
DEPEND_TAGS = ('depend', 'exec_depend', 'build_depend', 'build_export_depend', 'test_depend',
               'buildtool_depend')

ROSDEP_MISSING = shutil.which('rosdep', path=str(Path(sys.executable).parent)) is None
pytestmark = pytest.mark.skipif(ROSDEP_MISSING, reason='rosdep is not installed (pip install '
                                '-r requirements-dev.txt; scripts/setup.sh does)')


def package_keys() -> List[str]:
    root = ET.parse(ROOT / 'package.xml').getroot()
    return sorted({e.text.strip() for tag in DEPEND_TAGS for e in root.iter(tag) if e.text})


@pytest.fixture(scope='module')
def rosdep_env(tmp_path_factory) -> Dict[str, str]:
    """A ROS_HOME whose rosdep cache was updated from the snapshot only (file:// URLs)."""
    work = tmp_path_factory.mktemp('rosdep')
    sources = work / 'sources.list.d'
    sources.mkdir()
    (sources / '20-default.list').write_text(
        ''.join(f'yaml {(SNAPSHOT / "rosdep" / name).as_uri()}\n'
                for name in ('base.yaml', 'python.yaml')))
    env = dict(os.environ, ROSDEP_SOURCE_PATH=str(sources), ROS_HOME=str(work / 'home'),
               ROSDISTRO_INDEX_URL=(SNAPSHOT / 'index-v4.yaml').as_uri(),
               ROS_PYTHON_VERSION='3')
    for name in ('ROS_DISTRO', 'ROS_OS_OVERRIDE'):
        env.pop(name, None)
    done = subprocess.run([rosdep_exe(), 'update'], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


def rosdep_exe() -> str:
    return str(Path(sys.executable).parent / 'rosdep')


def resolve(env: Dict[str, str], distro: str, codename: str, keys: List[str]
            ) -> subprocess.CompletedProcess:
    return subprocess.run([rosdep_exe(), 'resolve', f'--os=ubuntu:{codename}',
                           f'--rosdistro={distro}', *keys], env=env, capture_output=True,
                          text=True, timeout=120)


def parse_resolution(text: str) -> Dict[str, tuple]:
    """Parse ``rosdep resolve`` output: key -> (installer, packages)."""
    found: Dict[str, tuple] = {}
    key = installer = None
    for line in text.splitlines():
        if line.startswith('#ROSDEP['):
            key, installer = line[len('#ROSDEP['):-1], None
        elif line.startswith('#') and key:
            installer = line[1:]
        elif key and installer and line.strip():
            found[key] = (installer, tuple(line.split()))
    return found


@pytest.mark.parametrize('distro,codename', TARGETS, ids=[f'{d}-{c}' for d, c in TARGETS])
def test_every_package_xml_key_resolves(rosdep_env, distro, codename):
    keys = package_keys()
    done = resolve(rosdep_env, distro, codename, keys)
    assert done.returncode == 0, f'{distro}/{codename}:\n{done.stdout}{done.stderr}'
    found = parse_resolution(done.stdout)
    assert sorted(found) == keys
    for key, (installer, packages) in found.items():
        assert installer in ('apt', 'pip') and packages, (key, installer, packages)
        if ROS_MODULE.match(key) or key.startswith('ament_'):
            # ROS packages come from that distribution's apt repository.
            assert packages == (f"ros-{distro}-{key.replace('_', '-')}",), (key, packages)


def test_an_unknown_key_fails_to_resolve(rosdep_env):
    done = resolve(rosdep_env, 'humble', 'jammy', ['python3-no-such-package-xyz'])
    assert done.returncode != 0 and 'no rosdep rule' in done.stderr


def test_kilted_does_not_resolve_on_jammy(rosdep_env):
    # The snapshot keeps each distribution's platforms: ROS keys bind to the Ubuntu release.
    done = resolve(rosdep_env, 'kilted', 'jammy', ['rclpy'])
    assert done.returncode != 0


def imported_modules() -> Set[str]:
    """Return the top-level modules the installed code imports (or ``require``s)."""
    names: Set[str] = set()
    files = list((ROOT / 'tensorrt_yolox_py').rglob('*.py')) + list((ROOT / 'launch').glob('*.py'))
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split('.')[0])
            elif (isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'require'
                  and node.args and isinstance(node.args[0], ast.Constant)):
                names.add(str(node.args[0].value).split('.')[0])
    return names


def test_every_ros_package_the_code_imports_is_declared():
    ros = {name for name in imported_modules() if ROS_MODULE.match(name)}
    assert {'rclpy', 'sensor_msgs', 'vision_msgs'} <= ros      # the scan sees the node
    missing = sorted(ros - set(package_keys()))
    assert not missing, f'imported but not in package.xml: {missing}'
