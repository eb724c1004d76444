"""pep257 docstring checks (pydocstyle with ament_pep257's conventions from setup.cfg)."""

import subprocess
import sys

import pytest


@pytest.mark.linter
def test_pep257(repo_root):
    result = subprocess.run([sys.executable, '-m', 'pydocstyle', '--config',
                             str(repo_root / 'setup.cfg'), 'tensorrt_yolox_py', 'test',
                             'launch', 'benchmarks', 'scripts', 'setup.py'],
                            cwd=repo_root, capture_output=True, text=True)
    assert result.returncode == 0, f'pep257 problems:\n{result.stdout}{result.stderr}'
