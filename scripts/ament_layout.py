"""Make a Python prefix (a venv) an ament prefix of this package, as colcon would install it.

    python scripts/ament_layout.py [PREFIX]      # PREFIX: default sys.prefix (the venv)

pip installs no ament layout: an editable install (``pip install -e``) installs no data_files
(no ``share/``, no ament index marker), and pip puts console scripts in ``bin/`` while
``ros2 launch`` / ``ros2 run`` look for them in ``lib/<package>/``. This script adds what
``colcon build --symlink-install`` would, as symbolic links into this checkout (so edits are
live, as with the editable install):

- every ``data_files`` entry of setup.py under PREFIX (the index marker
  ``share/ament_index/resource_index/packages/<package>``, ``share/<package>/package.xml``,
  ``share/<package>/{launch,config}/*``);
- ``lib/<package>/<script>`` for every console script, linked to PREFIX/bin/<script> (the
  entry point pip wrote; it runs PREFIX's Python).

setup.py is the one owner of that list (read with ``run_setup(stop_after='init')``). Links this
script made earlier that are no longer wanted are removed. Idempotent; prints what changed.
Then ``AMENT_PREFIX_PATH=PREFIX ros2 launch <package> <file>`` finds the package.
"""

import os
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]


def wanted_links(prefix: Path) -> Dict[Path, Path]:
    """Return {link path under prefix: target} for this checkout's setup.py."""
    import setuptools  # noqa: F401  (first: it provides distutils on Python >= 3.12)
    from distutils.core import run_setup

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        dist = run_setup(str(ROOT / 'setup.py'), stop_after='init')
    finally:
        os.chdir(cwd)
    package = dist.get_name()
    links: Dict[Path, Path] = {}
    for destination, files in dist.data_files:
        for name in files:
            links[prefix / destination / Path(name).name] = ROOT / name
    for line in dist.entry_points.get('console_scripts', []):
        script = line.split('=', 1)[0].strip()
        links[prefix / 'lib' / package / script] = prefix / 'bin' / script
    return links


def apply(prefix: Path) -> List[str]:
    """Create or fix every wanted link, remove stale ones of ours; return what changed."""
    links = wanted_links(prefix)
    changes: List[str] = []
    for link, target in links.items():
        if not target.exists():
            raise FileNotFoundError(f'{target} (named in setup.py) does not exist')
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
        changes.append(f'{link} -> {target}')
    folders = {link.parent for link in links}
    for folder in folders:
        for entry in folder.iterdir():
            if entry in links or not entry.is_symlink():
                continue
            target = Path(os.readlink(entry))
            ours = ROOT in target.parents or (prefix / 'bin') in target.parents
            if ours:
                entry.unlink()
                changes.append(f'{entry} removed (no longer in setup.py)')
    return changes


def main(argv: List[str]) -> int:
    """Apply the layout to argv[0] (default: this Python's prefix) and report the changes."""
    prefix = Path(argv[0] if argv else sys.prefix).resolve()
    for change in apply(prefix):
        print(f'ament layout: {change}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
