"""scripts/ament_layout.py: a prefix laid out as colcon installs the package (no ROS needed)."""

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

PACKAGE = 'tensorrt_yolox_py'


@pytest.fixture()
def layout(repo_root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location('ament_layout',
                                                  repo_root / 'scripts' / 'ament_layout.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prefix_with_scripts(tmp_path: Path, repo_root: Path) -> Path:
    """A prefix whose bin/ holds one file per console script of setup.py (read as text here)."""
    prefix = tmp_path / 'prefix'
    (prefix / 'bin').mkdir(parents=True)
    text = (repo_root / 'setup.py').read_text()
    scripts = [line.split('=')[0].strip(" '") for line in text.splitlines()
               if ' = tensorrt_yolox_py.' in line]
    assert 'yolox_node' in scripts and 'yolox_multi_camera' in scripts
    for name in scripts:
        (prefix / 'bin' / name).write_text('#!/bin/sh\n')
    return prefix


def test_layout_is_what_ros2_launch_needs_and_idempotent(layout: ModuleType, tmp_path: Path,
                                                         repo_root: Path) -> None:
    prefix = _prefix_with_scripts(tmp_path, repo_root)
    changes = layout.apply(prefix)
    assert changes
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    assert marker.resolve() == (repo_root / 'resource' / PACKAGE).resolve()
    share = prefix / 'share' / PACKAGE
    for name in ('yolox.launch.py', 'multi_camera.launch.py'):
        assert (share / 'launch' / name).resolve() == (repo_root / 'launch' / name).resolve()
        assert not (share / 'launch').is_symlink()  # ros2 launch's os.walk skips linked folders
    for name in ('yolox.param.yaml', 'cameras.yaml', 'label.txt', 'fastdds_large_data.xml'):
        assert (share / 'config' / name).is_file()
    assert (share / 'package.xml').is_file()
    for name in ('yolox_node', 'yolox_multi_camera'):
        link = prefix / 'lib' / PACKAGE / name
        assert Path(os.readlink(link)) == prefix / 'bin' / name
    assert layout.apply(prefix) == []  # a second run changes nothing


def test_stale_links_are_removed_and_foreign_files_kept(layout: ModuleType, tmp_path: Path,
                                                        repo_root: Path) -> None:
    prefix = _prefix_with_scripts(tmp_path, repo_root)
    layout.apply(prefix)
    launch_dir = prefix / 'share' / PACKAGE / 'launch'
    stale = launch_dir / 'removed.launch.py'
    stale.symlink_to(repo_root / 'README.md')  # a link of ours no longer in setup.py
    foreign = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'rclpy'
    foreign.write_text('')  # another package's marker: not ours
    wrong = prefix / 'lib' / PACKAGE / 'yolox_node'
    wrong.unlink()
    wrong.symlink_to(prefix / 'bin' / 'yolox_demo')
    changes = layout.apply(prefix)
    assert not stale.exists() and foreign.exists()
    assert Path(os.readlink(wrong)) == prefix / 'bin' / 'yolox_node'
    assert len(changes) == 2, changes


def test_missing_console_script_is_an_error(layout: ModuleType, tmp_path: Path,
                                            repo_root: Path) -> None:
    prefix = _prefix_with_scripts(tmp_path, repo_root)
    (prefix / 'bin' / 'yolox_node').unlink()
    with pytest.raises(FileNotFoundError, match='yolox_node'):
        layout.apply(prefix)
