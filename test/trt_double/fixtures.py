"""Pytest fixtures installing the TensorRT double as ``tensorrt`` (use via ``pytest_plugins``)."""

from pathlib import Path

import pytest

from .control import DoubleTensorRT
from .host_memory import HostMemory
from .models import make_tiny_yolox, write_images


@pytest.fixture
def host_memory() -> HostMemory:
    """Return a fresh validating host-memory layer."""
    return HostMemory()


@pytest.fixture
def trt(monkeypatch: pytest.MonkeyPatch, host_memory: HostMemory):
    """Install the TensorRT double (10.3.0 mode) as ``tensorrt``, reading ``host_memory``."""
    control = DoubleTensorRT(memory=host_memory)  # one journal: memory calls interleave
    control.install(monkeypatch)
    yield control


@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the tiny YOLOX-contract model (ReLU, SPP-like pool)."""
    return make_tiny_yolox(tmp_path_factory.mktemp('tiny') / 'tiny.onnx')


@pytest.fixture(scope='session')
def calib_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write a folder of 6 calibration images."""
    folder = tmp_path_factory.mktemp('calib')
    write_images(folder, 6)
    return folder
