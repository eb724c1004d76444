"""Test-side control of the TensorRT double: version mode, hardware, memory, recorded calls.

The double's ``tensorrt`` module (``emulator.py``) is built anew for each version mode and
holds nothing but that version's real API (``conform``). Everything a test needs to steer or
inspect it lives here, outside the ``tensorrt`` namespace:

- ``DoubleTensorRT.reset(version, hardware, memory)`` builds the module for ``version`` (its
  API surface is the nearest real manifest, ``trt_api.api.surface_for``; its behaviour follows
  ``version`` itself) and installs it as ``sys.modules['tensorrt']``;
- ``calls``: every recorded call, in order (``('Class.method', args...)``);
- ``api_calls``: every call the package made into the module, as validated against the
  version's real signatures (``(qualname, args, kwargs)``);
- ``callback_errors``: exceptions the double caught inside application callbacks (real
  TensorRT prints them and carries on with a default);
- attribute access falls through to the current module, so ``trt.BuilderFlag.INT8`` works.
"""

import ctypes
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

from trt_api.api import Api, surface_for

from .conform import conform

EMULATOR = Path(__file__).resolve().parent / 'emulator.py'
DEFAULT_VERSION = '10.3.0'


@dataclass
class Hardware:
    """The platform the double pretends to be (set by tests)."""

    gpu_name: str = 'Double GPU'
    compute_capability: Tuple[int, int] = (8, 7)
    num_dla_cores: int = 0
    fast_fp16: bool = True
    fast_int8: bool = True
    #: Seconds a build takes (to widen race windows in the concurrency test).
    build_delay_s: float = 0.0


class CtypesMemory:
    """Default memory access: pointers are host addresses (ctypes), no validation."""

    def read(self, ptr: int, nbytes: int) -> bytes:
        """Return ``nbytes`` at ``ptr``."""
        return ctypes.string_at(ptr, nbytes)

    def write(self, ptr: int, data: bytes) -> None:
        """Copy ``data`` to ``ptr``."""
        ctypes.memmove(ptr, data, len(data))


def build_module(control: 'DoubleTensorRT', version: str) -> Any:
    """Execute the emulator for ``version`` and conform it to the real API surface."""
    api = Api(surface_for(version))
    spec = importlib.util.spec_from_file_location('tensorrt', EMULATOR)
    module = importlib.util.module_from_spec(spec)
    module._CONTROL = control
    module._API = api
    module.__version__ = version
    spec.loader.exec_module(module)
    conform(module, api, control)
    return module


class DoubleTensorRT:
    """One controllable TensorRT double; see the module docstring."""

    Hardware = Hardware

    def __init__(self, version: str = DEFAULT_VERSION, hardware: Optional[Hardware] = None,
                 memory: Any = None) -> None:
        self.calls: List[Tuple[Any, ...]] = []
        self.api_calls: List[Tuple[str, tuple, dict]] = []
        self.callback_errors: List[Tuple[str, BaseException]] = []
        self.pruned: List[str] = []
        self._monkeypatch: Any = None
        self.module: Any = None
        self.reset(version, hardware, memory)

    @property
    def __version__(self) -> str:  # noqa: D401 - mirrors the module attribute
        """The emulated version."""
        return self.module.__version__

    @property
    def CALLS(self) -> List[Tuple[Any, ...]]:  # noqa: N802 - the name tests used before
        """Alias of ``calls``."""
        return self.calls

    def reset(self, version: str = DEFAULT_VERSION, hardware: Optional[Hardware] = None,
              memory: Any = None) -> Any:
        """Start over as ``version`` on ``hardware`` reading ``memory``; return the module."""
        self.calls.clear()
        self.api_calls.clear()
        self.callback_errors.clear()
        self.pruned = []
        self.version = version
        self.hardware = hardware or Hardware()
        self.memory = memory or CtypesMemory()
        if hasattr(self.memory, 'calls'):
            self.memory.calls = self.calls
        self.module = build_module(self, version)
        if self._monkeypatch is not None:
            self._monkeypatch.setitem(sys.modules, 'tensorrt', self.module)
        return self.module

    def install(self, monkeypatch: Any) -> 'DoubleTensorRT':
        """Install the module as ``tensorrt`` for the test (undone at teardown)."""
        self._monkeypatch = monkeypatch
        monkeypatch.setitem(sys.modules, 'tensorrt', self.module)
        return self

    def record(self, *entry: Any) -> None:
        """Append one recorded call."""
        self.calls.append(entry)

    def __getattr__(self, name: str) -> Any:
        if name.startswith('__') or name in ('module',):
            raise AttributeError(name)
        return getattr(self.module, name)
