"""Class labels: one name per line in a text file; the 8 Autoware classes by default."""

from pathlib import Path
from typing import List, Union

from .errors import FileError

DEFAULT_LABELS = ('UNKNOWN', 'CAR', 'TRUCK', 'BUS', 'BICYCLE', 'MOTORBIKE', 'PEDESTRIAN',
                  'ANIMAL')


def load_labels(path: Union[str, Path]) -> List[str]:
    """Read class names from ``path`` (blank lines and surrounding spaces are ignored).

    Raises FileError naming the file when it is missing, unreadable, empty or has duplicate
    names.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise FileError(path, f'cannot read label file {path}: {exc}') from exc
    except UnicodeDecodeError as exc:
        raise FileError(path, f'label file {path} is not UTF-8 text') from exc
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise FileError(path, f'label file {path} has no labels')
    duplicates = sorted({name for name in labels if labels.count(name) > 1})
    if duplicates:
        raise FileError(path, f'label file {path} repeats {", ".join(duplicates)}')
    return labels
