"""The package needs nothing newer than Python 3.10 (JetPack 6 and Ubuntu 22.04's Python).

vermin (requirements-dev.txt) reads the sources and reports the minimum Python each language
feature and standard-library name needs; ``--target=3.10-`` fails on anything newer. What it
checks: the installed code (the package, the launch files, setup.py) and the scripts, benchmarks
and tests that run beside it on a Python 3.10 machine. Third-party APIs are not its business
(the rclpy / launch check and the resolution check cover those).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ('tensorrt_yolox_py', 'launch', 'setup.py', 'scripts', 'benchmarks', 'test')
VERMIN = [sys.executable, '-c', 'import sys, vermin; sys.exit(vermin.main())',
          '--target=3.10-', '--violations', '--no-tips', '--eval-annotations',
          '--no-parse-comments', '--processes', '1']

pytestmark = pytest.mark.skipif(importlib.util.find_spec('vermin') is None,
                                reason='vermin is not installed (pip install -r '
                                       'requirements-dev.txt; scripts/setup.sh does)')


def run_vermin(*paths: str) -> subprocess.CompletedProcess:
    return subprocess.run(VERMIN + list(paths), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_the_installed_code_runs_on_python_310():
    done = run_vermin(*CHECKED)
    assert done.returncode == 0, f'needs a Python newer than 3.10:\n{done.stdout}{done.stderr}'
    assert 'Target versions not met' not in done.stdout


def test_the_check_sees_311_features(tmp_path):
    """vermin parses with the running Python: 3.11 syntax (``except*``) is seen from 3.11 on
    (CI); on 3.10 such a file cannot even be imported, and the library features are seen."""
    syntax = sys.version_info >= (3, 11)
    sample = tmp_path / 'newer.py'
    sample.write_text('import tomllib\nfrom typing import Self\n\n\n'
                      + ('def f():\n    try:\n        pass\n    except* ValueError:\n'
                         '        pass\n' if syntax else ''))
    done = run_vermin(str(sample))
    assert done.returncode != 0
    for needs in ("'tomllib' module", "'typing.Self' member") + (('`except*`',) if syntax
                                                                 else ()):
        assert needs in done.stdout, done.stdout
