"""Print the documentation generated from the parameter schema and the encoding table.

``python -m tensorrt_yolox_py.tools.params_doc --markdown`` prints the README parameter table;
``--yaml`` prints config/yolox.param.yaml; ``--encodings`` the README input-encoding table
(from ``image.ENCODINGS``). Tests check that the files match this output.
"""

import argparse
import sys
from typing import List, Optional

from ..backends.base import param_choices
from ..image import ENCODINGS
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


def encodings_table() -> str:
    """Render the README input-encoding table from ``image.ENCODINGS`` (in its order)."""
    lines = ['| encoding | bytes / pixel | layout |', '|---|---|---|']
    for encoding in ENCODINGS.values():
        layout = encoding.description
        if encoding.pixel_align > 1:
            layout += f'; width a multiple of {encoding.pixel_align}'
        lines.append(f'| `{encoding.name}` | {encoding.channels} | {layout} |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--markdown', action='store_true', help='README parameter table')
    group.add_argument('--yaml', action='store_true', help='config/yolox.param.yaml')
    group.add_argument('--encodings', action='store_true', help='README input-encoding table')
    args = parser.parse_args(argv)
    text = readme_table() if args.markdown else encodings_table() if args.encodings \
        else param_yaml()
    sys.stdout.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
