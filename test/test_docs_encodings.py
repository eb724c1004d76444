"""The docs' encoding tables agree with the one table, ``image.ENCODINGS``.

- README "Input encodings": one row per encoding, in table order, with its bytes per pixel;
- docs/ros_interface.md: the ``~/in/image`` row points to that table (no second list), and the
  ``~/out/image`` row names the encodings drawn as received (``visualize.annotated_encoding``).
"""

import re
from typing import List

from tensorrt_yolox_py.image import ENCODINGS
from tensorrt_yolox_py.visualize import annotated_encoding


def _section(text: str, heading: str) -> str:
    start = text.index(f'\n## {heading}\n')
    end = text.find('\n## ', start + 1)
    return text[start:end if end > 0 else len(text)]


def _names(cell: str) -> List[str]:
    return re.findall(r'`([a-z0-9_]+)`', cell)


def test_readme_encoding_table_is_the_encoding_table(repo_root):
    section = _section((repo_root / 'README.md').read_text(), 'Input encodings')
    rows = [line.split('|')[1:-1] for line in section.splitlines()
            if line.startswith('| `')]
    assert [_names(cells[0])[0] for cells in rows] == list(ENCODINGS), \
        'README "Input encodings": one row per image.ENCODINGS entry, in its order'
    for cells in rows:
        name = _names(cells[0])[0]
        assert int(cells[1]) == ENCODINGS[name].channels, f'{name}: bytes / pixel'


def test_ros_interface_lists_the_encodings(repo_root):
    rows = {line.split('|')[1].strip(): line.split('|')
            for line in (repo_root / 'docs' / 'ros_interface.md').read_text().splitlines()
            if line.startswith('| `~/')}
    image_in = rows['`~/in/image` (sub)']
    assert 'README.md#input-encodings' in image_in[4]
    assert not set(_names(image_in[4])) & set(ENCODINGS), 'a second list of encodings'
    image_out = rows['`~/out/image`'][4]
    as_received = _names(image_out.split('drawn (')[1].split('as received')[0])
    assert as_received == [e for e in ENCODINGS if annotated_encoding(e) == e]
