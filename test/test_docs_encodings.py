"""The docs' input encodings come from the one table, ``image.ENCODINGS``.

- README "Input encodings": the table between the ``encodings`` markers is generated
  (``python -m tensorrt_yolox_py.tools.params_doc --encodings``);
- docs/ros_interface.md: the ``~/in/image`` row points to that table (no second list), and the
  ``~/out/image`` row names the encodings drawn as received (``visualize.annotated_encoding``).
"""

import re
from typing import List

from tensorrt_yolox_py.image import ENCODINGS
from tensorrt_yolox_py.tools.params_doc import encodings_table
from tensorrt_yolox_py.visualize import annotated_encoding


def _names(cell: str) -> List[str]:
    return re.findall(r'`([a-z0-9_]+)`', cell)


def test_readme_encoding_table_is_generated_from_the_encoding_table(repo_root):
    readme = (repo_root / 'README.md').read_text()
    match = re.search(r'<!-- encodings:begin -->\n(.*?)<!-- encodings:end -->', readme, re.S)
    assert match, 'README.md needs the generated encoding table between encodings markers'
    assert match.group(1) == encodings_table(), \
        'regenerate with: python -m tensorrt_yolox_py.tools.params_doc --encodings'
    rows = [line.split('|')[1:-1] for line in match.group(1).splitlines()
            if line.startswith('| `')]
    assert [(_names(r[0])[0], int(r[1])) for r in rows] == \
        [(e.name, e.channels) for e in ENCODINGS.values()]


def test_ros_interface_points_to_the_table(repo_root):
    rows = {line.split('|')[1].strip(): line.split('|')
            for line in (repo_root / 'docs' / 'ros_interface.md').read_text().splitlines()
            if line.startswith('| `~/')}
    image_in = rows['`~/in/image` (sub)'][4]
    assert 'README.md#input-encodings' in image_in
    assert not set(_names(image_in)) & set(ENCODINGS), 'a second list of encodings'
    image_out = rows['`~/out/image`'][4]
    as_received = _names(image_out.split('drawn (')[1].split('as received')[0])
    assert as_received == [e for e in ENCODINGS if annotated_encoding(e) == e]
