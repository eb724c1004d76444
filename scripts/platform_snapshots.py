#!/usr/bin/env python3
"""Regenerate the committed snapshots that CI checks the platforms against (no network in CI).

    # rosdep: package.xml's keys as ros/rosdistro defines them (rosdep resolves them offline)
    python3 scripts/platform_snapshots.py rosdep --rosdistro PATH [--rev REV]
    # the cuda-bindings calls the package makes, per release (installs each from PyPI)
    python3 scripts/platform_snapshots.py cuda-bindings 12.8.0 12.9.10 13.0.0 13.5.0
    # the rclpy / launch / launch_ros API the package uses, per ROS 2 distribution
    python3 scripts/platform_snapshots.py ros-api --rclpy PATH --launch PATH --launch-ros PATH \
        [--kilted-rclpy SITE_PACKAGES]

PATH is a clone of the GitHub repository, or a bare git directory (read with ``git show``, no
work tree needed). Outputs (each file names its source commit):

- ``test/platforms/snapshots/rosdistro/``: ``index-v4.yaml`` (humble, jazzy, kilted only),
  ``<distro>/distribution.yaml`` (only the repositories that release a package.xml key, with
  their released package names), ``rosdep/base.yaml`` and ``rosdep/python.yaml`` (only
  package.xml's system keys, every OS entry kept).
- ``test/platforms/snapshots/cuda_bindings/<version>.json``: for every cuda.bindings driver /
  runtime / nvrtc name the package spells (``test/platforms/cuda_api.py``), its signature in
  that release (``inspect.signature``; each release is installed into a temporary folder).
- ``test/platforms/snapshots/ros_api/<distro>.json``: for every rclpy / launch / launch_ros name
  the package imports or calls (found by ``test/platforms/ros_api.py``): whether it exists in
  that distribution's sources and, for functions, classes and methods, its parameters.

Where a distribution's release tag is not in the clone, the head of its branch is used, and
Kilted's rclpy can be read from an installed ``ros-rclpy`` wheel (the PyPI Kilted wheels are
built from its sources) with ``--kilted-rclpy``.
"""

import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Set

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = ROOT / 'test' / 'platforms' / 'snapshots'
DISTROS = ('humble', 'jazzy', 'kilted')
DEPEND_TAGS = ('depend', 'exec_depend', 'build_depend', 'build_export_depend', 'test_depend',
               'buildtool_depend')
#: Where each distribution's sources are read: (repository, git ref) per distribution. The
#: release tags of rosdistro's distribution files when present in the clone, else branch heads.
REFS = {
    'rclpy': {'humble': 'humble', 'jazzy': 'jazzy', 'kilted': 'kilted'},
    'launch': {'humble': 'humble', 'jazzy': 'jazzy', 'kilted': 'kilted'},
    'launch_ros': {'humble': 'humble', 'jazzy': 'jazzy', 'kilted': 'kilted'},
}


class Source:
    """Files of one repository at one ref: a checkout or a bare git directory."""

    def __init__(self, path: Path, ref: Optional[str]):
        self.path = Path(path)
        self.ref = ref
        self.git = self._git_dir()

    def _git_dir(self) -> Optional[Path]:
        for candidate in (self.path / '.git', self.path):
            if (candidate / 'HEAD').is_file() and (candidate / 'objects').is_dir():
                return candidate
        return None

    def _run(self, *args: str) -> str:
        return subprocess.run(['git', '--git-dir', str(self.git), *args], check=True,
                              capture_output=True, text=True).stdout

    def has_ref(self, ref: str) -> bool:
        """Return whether ``ref`` (a tag or branch) exists."""
        if self.git is None:
            return False
        done = subprocess.run(['git', '--git-dir', str(self.git), 'rev-parse', '-q', '--verify',
                               f'{ref}^{{commit}}'], capture_output=True, text=True)
        return done.returncode == 0

    def commit(self) -> str:
        """Return the commit read (or 'working tree')."""
        if self.git is None:
            return 'working tree'
        return self._run('rev-parse', f'{self.ref or "HEAD"}^{{commit}}').strip()

    def describe(self) -> str:
        """Return ``git describe`` of the ref read."""
        if self.git is None:
            return 'working tree'
        done = subprocess.run(['git', '--git-dir', str(self.git), 'describe', '--tags',
                               self.ref or 'HEAD'], capture_output=True, text=True)
        return done.stdout.strip() or self.commit()[:12]

    def list(self, folder: str) -> List[str]:
        """Return the paths of the files under ``folder`` (relative to the repository)."""
        if self.git is None or self.ref is None:
            base = self.path / folder
            return sorted(str(p.relative_to(self.path)) for p in base.rglob('*') if p.is_file())
        return self._run('ls-tree', '-r', '--name-only', self.ref, '--', folder).split()

    def read(self, relative: str) -> Optional[str]:
        """Return the text of ``relative``, or None where it does not exist."""
        if self.git is None or (self.ref is None and (self.path / relative).exists()):
            target = self.path / relative
            return target.read_text() if target.is_file() else None
        done = subprocess.run(['git', '--git-dir', str(self.git), 'show',
                               f'{self.ref or "HEAD"}:{relative}'], capture_output=True,
                              text=True)
        return done.stdout if done.returncode == 0 else None


def package_keys(package_xml: Path = ROOT / 'package.xml') -> List[str]:
    """Return every dependency key of ``package_xml`` (all dependency tags), sorted."""
    root = ET.parse(package_xml).getroot()
    return sorted({e.text.strip() for tag in DEPEND_TAGS for e in root.iter(tag) if e.text})


def header(source: str, commit: str) -> str:
    """Return the comment that names a snapshot file's source."""
    return (f'# Derived from {source} at {commit} by scripts/platform_snapshots.py '
            '(regenerate there; do not edit).\n')


def write_rosdep(rosdistro: Source) -> None:
    """Write the rosdistro snapshot (see the module docstring)."""
    commit = rosdistro.commit()
    keys = set(package_keys())
    out = SNAPSHOTS / 'rosdistro'
    index = yaml.safe_load(rosdistro.read('index-v4.yaml'))
    kept = {}
    ros_keys: Set[str] = set()
    for distro in DISTROS:
        entry = index['distributions'][distro]
        files = entry['distribution']
        data = yaml.safe_load(rosdistro.read(files[0]))
        repos = {}
        for name, repo in sorted(data['repositories'].items()):
            release = repo.get('release')
            if not release:
                continue
            packages = release.get('packages', [name])
            hits = sorted(keys.intersection(packages))
            if hits:
                repos[name] = {'release': {key: release[key] for key in
                                           ('packages', 'tags', 'url', 'version')
                                           if key in release}}
                repos[name]['release']['packages'] = packages
                ros_keys.update(hits)
        trimmed = {key: data[key] for key in ('release_platforms', 'type', 'version')
                   if key in data}
        trimmed['repositories'] = repos
        target = out / distro / 'distribution.yaml'
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(header(f'ros/rosdistro {files[0]}', commit)
                          + yaml.safe_dump(trimmed, sort_keys=True))
        kept[distro] = {key: entry[key] for key in
                        ('distribution', 'distribution_status', 'distribution_type',
                         'python_version') if key in entry}
    (out / 'index-v4.yaml').write_text(
        header('ros/rosdistro index-v4.yaml', commit)
        + yaml.safe_dump({'type': 'index', 'version': 4, 'distributions': kept},
                         sort_keys=True))
    system = keys - ros_keys
    for name in ('base.yaml', 'python.yaml'):
        data = yaml.safe_load(rosdistro.read(f'rosdep/{name}'))
        trimmed = {key: value for key, value in data.items() if key in system}
        target = out / 'rosdep' / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(header(f'ros/rosdistro rosdep/{name}', commit)
                          + yaml.safe_dump(trimmed, sort_keys=True))
    print(f'rosdep snapshot from ros/rosdistro {commit}: {len(keys)} keys '
          f'({len(ros_keys)} ROS packages) -> {out}')


def write_ros_api(sources: Dict[str, Path], kilted_rclpy: Optional[Path]) -> None:
    """Write the per-distribution API snapshots of the names the package uses."""
    sys.path.insert(0, str(ROOT / 'test' / 'platforms'))
    import ros_api  # noqa: E402 - test/platforms/ros_api.py: the one scanner and reader

    used = ros_api.used_names(ROOT)
    out = SNAPSHOTS / 'ros_api'
    out.mkdir(parents=True, exist_ok=True)
    per_distro = {}
    for distro in DISTROS:
        readers = {}
        provenance = {}
        for repo, path in sources.items():
            ref = REFS[repo][distro]
            source = Source(path, ref)
            if repo == 'rclpy' and distro == 'kilted' and not source.has_ref(ref) \
                    and kilted_rclpy is not None:
                source = Source(kilted_rclpy, None)
                provenance[repo] = {'source': 'ros-rclpy wheel (PyPI, built from ros2/rclpy '
                                              'kilted)',
                                    'version': ros_api.wheel_version(kilted_rclpy, 'rclpy')}
            else:
                if not source.has_ref(ref):
                    fallback = 'rolling'
                    print(f'{repo}: no {ref} branch in {path}; {distro} read from {fallback}')
                    source = Source(path, fallback)
                provenance[repo] = {'source': f'ros2/{repo}', 'ref': source.ref,
                                    'commit': source.commit(), 'describe': source.describe()}
            readers[repo] = source
        per_distro[distro] = (readers, provenance)
    # Methods called on objects of unknown type count when some class of the packages (in any
    # of the distributions) defines a method of that name.
    universe: Set[str] = set()
    for readers, _ in per_distro.values():
        universe |= ros_api.method_universe(readers)
    kept = {name: shapes for name, shapes in used.items()
            if not name.startswith('*.') or name[2:] in universe}
    (out / 'methods.json').write_text(json.dumps(
        {'generated_by': 'scripts/platform_snapshots.py ros-api',
         'sources': {d: p for d, (_, p) in per_distro.items()},
         'methods': sorted(universe)}, indent=0, sort_keys=True) + '\n')
    for distro, (readers, provenance) in per_distro.items():
        api = ros_api.snapshot(kept, readers)
        data = {'distro': distro, 'generated_by': 'scripts/platform_snapshots.py ros-api',
                'sources': provenance, 'names': api}
        (out / f'{distro}.json').write_text(json.dumps(data, indent=1, sort_keys=True) + '\n')
        missing = sorted(name for name, entry in api.items() if entry is None)
        print(f'{distro}: {len(api)} names, missing: {missing or "none"}')


CUDA_DUMP = """
import json, sys
sys.path.insert(0, sys.argv[1])
import cuda_api
from cuda.bindings import driver, nvrtc, runtime
import cuda.bindings
used = json.loads(sys.stdin.read())
modules = {'driver': driver, 'runtime': runtime, 'nvrtc': nvrtc}
print(json.dumps({'version': cuda.bindings.__version__, 'location': cuda.bindings.__file__,
                  'names': {name: cuda_api.describe(modules, name) for name in used}}))
"""


def write_cuda_bindings(versions: List[str]) -> None:
    """Install each cuda-bindings release in a temporary folder; record the used names."""
    import tempfile

    sys.path.insert(0, str(ROOT / 'test' / 'platforms'))
    import cuda_api  # noqa: E402 - test/platforms/cuda_api.py: the one scanner

    used = sorted(cuda_api.used_names(ROOT))
    out = SNAPSHOTS / 'cuda_bindings'
    out.mkdir(parents=True, exist_ok=True)
    for version in versions:
        with tempfile.TemporaryDirectory() as folder:
            subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
                            '--only-binary=:all:', '--target', folder,
                            f'cuda-bindings=={version}'], check=True)
            done = subprocess.run([sys.executable, '-c', CUDA_DUMP,
                                   str(ROOT / 'test' / 'platforms')], input=json.dumps(used),
                                  capture_output=True, text=True, check=True,
                                  env={**os.environ, 'PYTHONPATH': folder})
        data = json.loads(done.stdout)
        if data['version'] != version or not data['location'].startswith(folder):
            raise SystemExit(f'imported cuda-bindings {data["version"]} from '
                             f'{data["location"]}, not {version} from {folder}')
        snapshot = {'cuda-bindings': version, 'source': 'PyPI wheel, inspect.signature',
                    'generated_by': 'scripts/platform_snapshots.py cuda-bindings',
                    'names': data['names']}
        (out / f'{version}.json').write_text(json.dumps(snapshot, indent=1, sort_keys=True)
                                             + '\n')
        missing = sorted(name for name, entry in data['names'].items() if entry is None)
        print(f'cuda-bindings {version}: {len(used)} names, missing: {missing or "none"}')


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the command line and write the chosen snapshot."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    sub = parser.add_subparsers(dest='command', required=True)
    rosdep = sub.add_parser('rosdep', help='the rosdistro / rosdep snapshot')
    rosdep.add_argument('--rosdistro', type=Path, required=True)
    rosdep.add_argument('--rev', default=None, help='git revision (default HEAD)')
    api = sub.add_parser('ros-api', help='the rclpy / launch / launch_ros API snapshots')
    api.add_argument('--rclpy', type=Path, required=True)
    api.add_argument('--launch', type=Path, required=True)
    api.add_argument('--launch-ros', type=Path, required=True)
    api.add_argument('--kilted-rclpy', type=Path, default=None,
                     help='site-packages holding the ros-rclpy Kilted wheel')
    cuda = sub.add_parser('cuda-bindings', help='the cuda-bindings API of each release')
    cuda.add_argument('versions', nargs='+', help='cuda-bindings releases (PyPI)')
    args = parser.parse_args(argv)
    if args.command == 'rosdep':
        write_rosdep(Source(args.rosdistro, args.rev))
    elif args.command == 'cuda-bindings':
        write_cuda_bindings(args.versions)
    else:
        write_ros_api({'rclpy': args.rclpy, 'launch': args.launch,
                       'launch_ros': args.launch_ros}, args.kilted_rclpy)
    return 0


if __name__ == '__main__':
    sys.exit(main())
