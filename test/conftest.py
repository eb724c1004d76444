"""Shared pytest fixtures: the repository root on sys.path and small model files."""

import logging
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope='session', autouse=True)
def no_fast_dds_leftovers() -> Iterator[None]:
    """Start with no Fast DDS shared-memory files of dead processes in /dev/shm; leave none.

    A participant that reopens a stale port segment left by a process killed hard can crash in
    Fast DDS (SIGSEGV in ``open_port_internal``, eProsima/Fast-DDS#6501); a CI machine's
    /dev/shm may hold such files from earlier jobs. Only files that no running process owns are
    removed (``ros.shm_leftovers``: what ``fastdds shm clean`` removes).
    """
    from tensorrt_yolox_py.ros import shm_leftovers

    def clean(when: str) -> None:
        removed = shm_leftovers.remove_leftovers(shm_leftovers.find_leftovers())
        if removed:
            logging.getLogger('conftest').warning(
                '%s: removed %d Fast DDS shared-memory leftover(s): %s', when, len(removed),
                ' '.join(removed))

    clean('before the tests')
    yield
    clean('after the tests')


@pytest.fixture(scope='session')
def planted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hand-weighted 320x320 YOLOX-contract model: red cell -> CAR, green cell -> PEDESTRIAN."""
    from tensorrt_yolox_py.devkit.synthetic import make_planted_model

    return make_planted_model(tmp_path_factory.mktemp('models') / 'planted.onnx', (320, 320))


@pytest.fixture(scope='session')
def repo_root() -> Path:
    """Return the repository root."""
    return ROOT
