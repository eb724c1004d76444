"""Calibration images: the image set, its fingerprint, and the batches fed to every calibrator.

Contract:

- ``list_calibration_images(path, limit)``: ``path`` is a text file listing one image path per
  line (blank lines and ``#`` comments ignored; relative paths are relative to the list file's
  folder) or a folder (its ``.jpg/.jpeg/.png/.bmp`` files, sorted by name). Returns at most
  ``limit`` existing files; a missing/empty list or a listed file that does not exist raises
  ``ParameterError('calibration_image_list_path', ...)`` naming the file.
- ``calibration_tensors(paths, input_hw)``: yields, per image, the (1, 3, H, W) float32 NCHW
  BGR 0-255 tensor of ``stages.preprocess.preprocess_cpu`` (the SAME preprocessing as
  inference, letterbox included), as a fresh array.
- ``fingerprint(paths, content=False)``: sha256 over the images' names, sizes and modification
  times (``content=True``: their bytes), so a calibration cache or an engine calibrated on other
  data is never reused. The cheap stat form is what the engine cache key uses at every start.
"""

import hashlib
import logging
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError, ParameterError
from ..image import SourceImage
from ..stages.preprocess import preprocess_cpu

LOGGER = logging.getLogger(__name__)

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
PARAM = 'calibration_image_list_path'


def list_calibration_images(path: Union[str, Path], limit: int = 0) -> List[Path]:
    """Return the calibration image files named by ``path`` (see the module contract)."""
    if not str(path):
        raise ParameterError(PARAM, 'INT8 calibration needs a list of calibration images '
                             '(a text file with one image path per line, or a folder)')
    source = Path(path).expanduser()
    if source.is_dir():
        files = sorted(p for p in source.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ParameterError(PARAM, f'folder {source} has no {"/".join(IMAGE_SUFFIXES)} '
                                 'images')
    elif source.is_file():
        try:
            lines = source.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ParameterError(PARAM, f'cannot read the image list {source}: {exc}') from exc
        files = []
        for number, line in enumerate(lines, 1):
            entry = line.strip()
            if not entry or entry.startswith('#'):
                continue
            image = Path(entry).expanduser()
            if not image.is_absolute():
                image = source.parent / image
            if not image.is_file():
                raise ParameterError(PARAM, f'{source} line {number}: image {image} does not '
                                     'exist')
            files.append(image)
        if not files:
            raise ParameterError(PARAM, f'the image list {source} names no images')
    else:
        raise ParameterError(PARAM, f'{source} does not exist (expected a text file listing '
                             'images, or a folder of images)')
    if limit and limit > 0:
        files = files[:int(limit)]
    return files


def load_image(path: Union[str, Path]) -> np.ndarray:
    """Read one image as (H, W, 3) uint8 BGR; raise InputError naming the file if unreadable."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f'calibration image {path} cannot be read as an image')
    return image


def calibration_tensors(paths: Sequence[Path], input_hw: Tuple[int, int],
                        dtype: type = np.float32) -> Iterator[np.ndarray]:
    """Yield the preprocessed (1, 3, H, W) tensor of each image, in order."""
    for path in paths:
        tensor, _ = preprocess_cpu(SourceImage.from_array(load_image(path), 'bgr8'), input_hw,
                                   dtype)
        yield tensor


def fingerprint(paths: Sequence[Path], content: bool = False) -> str:
    """Return a sha256 hex digest of the images (names + size + mtime, or contents), in order."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        digest.update(path.name.encode() + b'\0')
        if content:
            with open(path, 'rb') as handle:
                for block in iter(lambda: handle.read(1 << 20), b''):
                    digest.update(block)
        else:
            stat = path.stat()
            digest.update(f'{stat.st_size}:{stat.st_mtime_ns}'.encode())
        digest.update(b'\0')
    return digest.hexdigest()
