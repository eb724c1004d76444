"""Shared pytest fixtures: the repository root on sys.path and small model files."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope='session')
def planted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hand-weighted 320x320 YOLOX-contract model: red cell -> CAR, green cell -> PEDESTRIAN."""
    from tensorrt_yolox_py.devkit.synthetic import make_planted_model

    return make_planted_model(tmp_path_factory.mktemp('models') / 'planted.onnx', (320, 320))


@pytest.fixture(scope='session')
def repo_root() -> Path:
    """Return the repository root."""
    return ROOT
