"""Print the parameter documentation generated from the schema (README table or param YAML).

``python -m tensorrt_yolox_py.tools.params_doc --markdown`` prints the README table;
``--yaml`` prints config/yolox.param.yaml. A test checks that both files match this output.
"""

import argparse
import sys
from typing import List, Optional

from ..backends import param_choices
from ..params import markdown_table, PARAMS

#: Parameters left out of the default file because another one sets them (device -> DLA core).
DERIVED = ('dla_core_id',)


def param_yaml() -> str:
    """Render the default parameter file (``/**: ros__parameters``) from the schema."""
    lines = ['# Defaults of every tensorrt_yolox_py node parameter.',
             '# Generated from tensorrt_yolox_py/params.py by',
             '#   python -m tensorrt_yolox_py.tools.params_doc --yaml',
             '/**:', '  ros__parameters:']
    for spec in PARAMS:
        if spec.name in DERIVED:
            continue
        lines.append(f'    {spec.name}: {spec.default_text()}  # {spec.description}'[:200])
    return '\n'.join(lines) + '\n'


def readme_table() -> str:
    """Render the README parameter table (backend choices from the registry)."""
    return markdown_table(PARAMS, param_choices)


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--markdown', action='store_true', help='README parameter table')
    group.add_argument('--yaml', action='store_true', help='config/yolox.param.yaml')
    args = parser.parse_args(argv)
    sys.stdout.write(readme_table() if args.markdown else param_yaml())
    return 0


if __name__ == '__main__':
    sys.exit(main())
