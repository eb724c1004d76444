"""flake8 over the whole package, tests, launch files, tools and benchmarks (as ament_flake8)."""

import subprocess
import sys

import pytest


@pytest.mark.linter
def test_flake8(repo_root):
    result = subprocess.run([sys.executable, '-m', 'flake8', '--config',
                             str(repo_root / 'setup.cfg'), 'tensorrt_yolox_py', 'test',
                             'launch', 'benchmarks', 'scripts', 'setup.py'],
                            cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 0, f'flake8 found problems:\n{result.stdout}{result.stderr}'
