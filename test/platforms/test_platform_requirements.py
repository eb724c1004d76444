"""Every third-party module the run-time code imports directly is a declared requirement.

The run-time code is the package without ``devkit`` (the development kit: training, scenes).
An ``import`` statement of a third-party module, even inside a function, fails with a bare
``ImportError`` where the module is missing, so the module must be installed with the package:
listed in requirements.txt (the wheel's ``install_requires``; package.xml's rosdep keys
mirror it), in a CUDA requirements file (the bindings), or be a ROS package (package.xml,
checked by test_platform_rosdep.py). Optional dependencies go through ``_lazy.require``, which
names the install command; they are not checked here. Independent of the package: the imports
come from the source files' syntax trees, the declared names from the requirement files.
"""

import ast
import sys
from pathlib import Path
from typing import Dict, Set

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from platform_rows import ROS_MODULE

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = 'tensorrt_yolox_py'
#: Import name -> distribution name, where they differ (the distributions' own top-level names).
DISTRIBUTION_OF = {'cv2': 'opencv-python-headless', 'yaml': 'pyyaml', 'cuda': 'cuda-bindings'}
#: Direct imports that are not installed with the package, and why that is right.
NOT_INSTALLED = {
    # quantization/modelopt_worker.py runs in ModelOpt's own venv (scripts/setup_modelopt.sh),
    # started by quantization/strongly_typed.py, never imported by the package's process.
    'modelopt': 'quantization/modelopt_worker.py',
    # evaluation/report.py imports matplotlib.pyplot after require('matplotlib', ...).
    'matplotlib': 'evaluation/report.py',
}


def direct_imports() -> Dict[str, Set[str]]:
    """Top-level third-party module -> the run-time files that ``import`` it."""
    found: Dict[str, Set[str]] = {}
    for path in sorted((ROOT / PACKAGE).rglob('*.py')):
        rel = path.relative_to(ROOT / PACKAGE)
        if rel.parts[0] == 'devkit':
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top != PACKAGE and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(rel.as_posix())
    return found


def declared() -> Set[str]:
    """Canonical distribution names in requirements.txt and the CUDA requirement files."""
    names: Set[str] = set()
    for name in ('requirements.txt', 'requirements-cuda12.txt', 'requirements-cuda13.txt'):
        for raw in (ROOT / name).read_text().splitlines():
            line = raw.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                names.add(canonicalize_name(Requirement(line).name))
    return names


def test_every_direct_third_party_import_of_the_runtime_is_declared():
    imports = direct_imports()
    assert {'numpy', 'cv2', 'yaml', 'rclpy'} <= set(imports)     # the scan sees the code
    have = declared()
    missing = {}
    for module, files in sorted(imports.items()):
        if ROS_MODULE.match(module):
            continue
        if module in NOT_INSTALLED:
            assert files == {NOT_INSTALLED[module]}, f'{module} is now imported by {files}'
            continue
        if canonicalize_name(DISTRIBUTION_OF.get(module, module)) not in have:
            missing[module] = sorted(files)
    assert not missing, f'imported by the run-time code but not a requirement: {missing}'


def test_the_check_sees_an_undeclared_import(tmp_path, monkeypatch):
    """The scan is not vacuous: a run-time file importing an undeclared module is reported."""
    fake = tmp_path / PACKAGE / 'tools'
    fake.mkdir(parents=True)
    (fake / 'progress.py').write_text('def bar():\n    from tqdm_like_module import tqdm\n')
    monkeypatch.setattr(sys.modules[__name__], 'ROOT', tmp_path)
    assert direct_imports() == {'tqdm_like_module': {'tools/progress.py'}}
