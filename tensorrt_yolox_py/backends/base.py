"""The one inference ``Backend`` interface, what each backend can do, and the registry.

Contract:

- Input: one tensor (B, 3, H, W), dtype ``input_dtype`` (float32, or float16 for engines that
  take half input), NCHW, BGR, values 0-255: the preprocess stage's output, B images stacked
  (1 <= B <= ``capabilities.max_batch``; ``input_shape`` is the one-image shape (1, 3, H, W)).
  Either kind of ``tensors.Tensor``: a ``HostTensor`` (or a bare NumPy array) or a
  ``DeviceTensor`` (CUDA memory written on its ``stream``).
- Output: one array (B, N, 5 + C) float32 in host memory: the YOLOX head (raw, sigmoid-ed
  obj/cls) or the already decoded form; the postprocess stage tells which. Row b belongs to
  input image b.
- ``infer(tensor)`` is the one entry (Polygraphy's runner pattern): it checks state, layout,
  shape, batch, dtype (and, for a device tensor, the GPU) once, then delegates to
  ``_infer_impl()``, which gets a contiguous NumPy array or, when
  ``capabilities.device_memory`` is true, the ``DeviceTensor`` itself, to read in place and
  run after it on its stream. A backend that cannot read device memory gets a device tensor
  copied to the host here (``DeviceTensor.to_host``, logged once per backend).
  ``close()`` releases resources explicitly.
- ``capabilities`` (``BackendCapabilities``): ``device_memory`` (see above), ``max_batch`` =
  the largest first dimension B one call takes; ``precisions`` and ``devices`` it runs;
  ``device_decode``: ``infer_decoded(tensor)`` (same checks) runs decode, score threshold and
  top-k on the device and returns a ``DecodedBatch`` (candidates, not the full output), and
  ``input_tensor(batch)`` offers the backend's static device input in its own dtype and
  ``input_layout`` ('NCHW' or 'NHWC', which ``infer`` then also accepts from device tensors)
  for a preprocessor to write in place, under ``device_lock()`` (callers sharing the backend
  take turns).
  ``device_id``: the GPU a device-memory backend reads (a device tensor on another GPU is an
  ``InputError``); None for host-only backends.
- ``REGISTRY``: backend name -> ``BackendEntry`` (``usable(config)`` -> '' or why not,
  ``create(config)``), in the order ``backend: auto`` tries them; ``backends.create_backend``
  is the only factory.
"""

import abc
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from ..errors import InputError, ModelContractError
from ..tensors import as_tensor, DeviceTensor, HostTensor

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodedBatch:
    """What ``infer_decoded`` returns: per image candidates or, past top-k, the full rows.

    ``candidates`` (B, K, 7) float32 rows (x1, y1, x2, y2, score, class, anchor) in model-input
    pixels, best first, and ``counts`` (B,) int32, the anchors passing the score threshold
    (``backends.torch_decode``); ``raw[i]`` (N, 5 + C) float32 for each image i whose count
    exceeds K (its full output, copied only then).
    """

    candidates: np.ndarray
    counts: np.ndarray
    raw: Dict[int, np.ndarray]


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend instance can do (see the module contract)."""

    #: ``_infer_impl`` reads a ``DeviceTensor`` in place (else ``infer`` copies it to host).
    device_memory: bool = False
    #: ``infer_decoded`` / ``input_tensor`` (see the module contract; the torch backend).
    device_decode: bool = False
    max_batch: int = 1
    precisions: Tuple[str, ...] = ('fp32',)
    devices: Tuple[str, ...] = ('cpu',)


class Backend(abc.ABC):
    """Base class of the inference backends (ONNX Runtime, TensorRT, ...)."""

    #: Short name used in logs and timing reports.
    name = 'backend'
    #: What this backend can do; instances may narrow it (e.g. to their model's batch size).
    capabilities = BackendCapabilities()

    def __init__(self) -> None:
        self.input_name = ''
        self.output_name = ''
        self.input_shape: Tuple[int, int, int, int] = (1, 3, 0, 0)
        self.output_shape: Tuple[int, int, int] = (1, 0, 0)
        self.input_dtype = np.dtype(np.float32)
        #: The GPU whose memory ``_infer_impl`` reads (device-memory backends), else None.
        self.device_id: Optional[int] = None
        #: The layout ``infer`` accepts besides NCHW (the torch backend's channels_last: NHWC).
        self.input_layout = 'NCHW'
        self._closed = False
        self._told_to_host = False

    @property
    def input_hw(self) -> Tuple[int, int]:
        """Model input (height, width)."""
        return int(self.input_shape[2]), int(self.input_shape[3])

    @property
    def num_classes(self) -> int:
        """Number of classes C of the (1, N, 5 + C) output."""
        return int(self.output_shape[2]) - 5

    def infer(self, tensor: Union[np.ndarray, HostTensor, DeviceTensor]) -> np.ndarray:
        """Run the model on a (B, 3, H, W) preprocessed tensor; return its (B, N, 5 + C)."""
        tensor = self._checked(tensor)
        if isinstance(tensor, HostTensor):
            return self._infer_impl(np.ascontiguousarray(tensor.array))
        if not self.capabilities.device_memory:
            if not self._told_to_host:
                self._told_to_host = True
                LOGGER.info('%s reads host memory: device tensors are copied to the host '
                            '(to_host) before inference', self.name)
            return self._infer_impl(tensor.to_host())
        return self._infer_impl(tensor)

    def infer_decoded(self, tensor: Union[HostTensor, DeviceTensor]) -> DecodedBatch:
        """As ``infer``, decoded on the device (``capabilities.device_decode``)."""
        if not self.capabilities.device_decode:
            raise NotImplementedError(f'{self.name} backend does not decode on the device')
        return self._infer_decoded_impl(self._checked(tensor))

    def _checked(self, tensor: Any) -> Any:
        """Check state, layout, shape, batch, dtype and GPU of an input; return it as a tensor."""
        if self._closed:
            raise RuntimeError(f'{self.name} backend is closed')
        tensor = as_tensor(tensor)
        if tensor.layout != 'NCHW' and (isinstance(tensor, HostTensor)
                                        or tensor.layout != self.input_layout):
            raise InputError(f'{self.name} takes NCHW input (device tensors also '
                             f'{self.input_layout}), got a {tensor.layout} '
                             f'{type(tensor).__name__}')
        shape = tuple(tensor.shape)
        if tensor.layout == 'NHWC':
            shape = (shape[0], shape[3], shape[1], shape[2])
        batch = int(shape[0])
        if shape[1:] != tuple(self.input_shape[1:]) or \
                not 1 <= batch <= self.capabilities.max_batch:
            raise InputError(f'input shape {tuple(tensor.shape)} ({tensor.layout}) does not '
                             f'match the model input {tuple(self.input_shape)} (batch 1..'
                             f'{self.capabilities.max_batch})')
        if tensor.dtype != self.input_dtype:
            raise InputError(f'input dtype {tensor.dtype} does not match the model input '
                             f'{self.input_dtype}')
        if isinstance(tensor, DeviceTensor) and self.capabilities.device_memory and \
                self.device_id is not None and tensor.device_id != self.device_id:
            raise InputError(f'input is on GPU {tensor.device_id}, the {self.name} backend '
                             f'runs on GPU {self.device_id}')
        return tensor

    def _infer_decoded_impl(self, tensor: Any) -> DecodedBatch:
        """Backend-specific decoded inference (``capabilities.device_decode``)."""
        raise NotImplementedError(f'{self.name} backend does not decode on the device')

    def input_tensor(self, batch: int) -> Optional[DeviceTensor]:
        """Return the static device input for ``batch`` images (``capabilities.device_decode``)."""
        return None

    def prepare(self, batches: Optional[Any] = None) -> Dict[int, bool]:
        """Build what the batch sizes need before the first frame; return batch -> captured.

        The torch backend compiles / captures its work here; nothing to do by default.
        """
        return {}

    def device_lock(self) -> Any:
        """Return the lock held while a caller writes ``input_tensor`` and runs on it.

        Re-entrant; a null context for backends without a static input.
        """
        return contextlib.nullcontext()

    @abc.abstractmethod
    def _infer_impl(self, tensor: Any) -> np.ndarray:
        """Backend-specific inference on a checked input (see the module contract).

        ``tensor``: a C-contiguous NumPy array, or a ``DeviceTensor`` when
        ``capabilities.device_memory`` is true.
        """

    def close(self) -> None:
        """Release the backend's resources; further ``infer()`` calls raise."""
        self._closed = True

    def __enter__(self) -> 'Backend':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """One line describing the backend and its model, for logs."""
        return (f'{self.name}: input {self.input_name} {tuple(self.input_shape)} '
                f'{self.input_dtype}, output {self.output_name} {tuple(self.output_shape)}')


def check_io_contract(input_shape: Tuple, output_shape: Tuple, model: str,
                      num_inputs: int = 1, num_outputs: int = 1,
                      input_name: Optional[str] = None) -> None:
    """Raise ModelContractError unless the model has the YOLOX input/output contract.

    One input (1, 3, H, W) with static H, W; one output (1, N, 5 + C) with C >= 1.
    """
    if num_inputs != 1:
        raise ModelContractError(f'{model}: expected 1 input, found {num_inputs}')
    if num_outputs != 1:
        raise ModelContractError(f'{model}: expected 1 output (1, N, 5+C), found {num_outputs}')
    if len(input_shape) != 4 or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ModelContractError(
            f'{model}: input {input_name or ""} must be a static (1, 3, H, W) tensor, '
            f'got {tuple(input_shape)}')
    if input_shape[0] != 1 or input_shape[1] != 3:
        raise ModelContractError(f'{model}: input must be (1, 3, H, W), got {tuple(input_shape)}')
    if len(output_shape) != 3:
        raise ModelContractError(
            f'{model}: output must be (1, N, 5+C), got rank {len(output_shape)} '
            f'{tuple(output_shape)}')
    last = output_shape[2]
    if not isinstance(last, int) or last < 6:
        raise ModelContractError(
            f'{model}: output last dimension must be 5 + C with C >= 1, got {last}')


@dataclass(frozen=True)
class BackendEntry:
    """One registered backend: how to tell whether it can run, and how to make it."""

    name: str
    #: '' when the backend can serve ``config`` here, else the reason it cannot.
    usable: Callable[[Any], str]
    create: Callable[[Any], Backend]
    #: One line for the parameter table and logs.
    summary: str = ''


#: Registered backends, in the order ``backend: auto`` tries them.
REGISTRY: Dict[str, BackendEntry] = {}


def register(entry: BackendEntry) -> BackendEntry:
    """Add ``entry`` to the registry (keeps registration order) and return it."""
    REGISTRY[entry.name] = entry
    return entry


def backend_choices() -> Tuple[str, ...]:
    """Return the values of ``backend``: ``auto``, then the registry in its order."""
    return ('auto',) + tuple(REGISTRY)


def param_choices(spec: Any) -> Optional[Tuple[str, ...]]:
    """Return the allowed values of a ``params.ParamSpec``: the registry's for ``backend``.

    Every other parameter's are its own ``choices``. The registry is complete once
    ``backends`` is imported (importing this module does it first).
    """
    return backend_choices() if spec.name == 'backend' else spec.choices
