"""ONNX Runtime backend: runs any YOLOX ONNX on the CPU (CUDA provider used when present).

Contract: see ``backends.base``. Input and output names, shapes and dtypes are read from the
model and checked against the YOLOX contract at load time (``ModelContractError`` otherwise).
Batch: a model whose input dimension 0 is symbolic takes 1..``max_batch`` images per call; with
``max_batch`` > 1 a batch-1 model is made dynamic in memory first
(``onnx_model.dynamic_batch.make_dynamic_batch``), and ``capabilities.max_batch`` says what it got.
"""

import logging
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .._lazy import require
from ..errors import ModelContractError
from .base import Backend, BackendCapabilities, check_io_contract

LOGGER = logging.getLogger(__name__)

_ORT_TYPES = {'tensor(float)': np.float32, 'tensor(float16)': np.float16}


class OnnxRuntimeBackend(Backend):
    """YOLOX inference through ``onnxruntime.InferenceSession``."""

    name = 'onnxruntime'
    capabilities = BackendCapabilities(device_memory=False, max_batch=1,
                                       precisions=('fp32', 'int8'), devices=('cpu', 'gpu'))

    def __init__(self, model_path: Union[str, Path], num_threads: int = 0,
                 providers: Optional[Sequence[str]] = None, max_batch: int = 1) -> None:
        super().__init__()
        ort = require('onnxruntime', 'the ONNX Runtime backend', 'pip install onnxruntime')
        path = Path(model_path)
        if not path.is_file():
            raise ModelContractError(f'model file not found: {path}')
        options = ort.SessionOptions()
        if num_threads > 0:
            options.intra_op_num_threads = int(num_threads)
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider')
                         if p in available]
        source: Union[str, bytes] = str(path)
        if max_batch > 1:
            from ..onnx_model.dynamic_batch import dynamic_batch_bytes

            source = dynamic_batch_bytes(path)
        try:
            self._session = ort.InferenceSession(source, sess_options=options,
                                                 providers=list(providers))
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ModelContractError(f'{path}: ONNX Runtime cannot load the model: {exc}'
                                     ) from exc
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        in_shape = tuple(inputs[0].shape) if inputs else ()
        out_shape = tuple(outputs[0].shape) if outputs else ()
        dynamic = bool(in_shape) and not isinstance(in_shape[0], int)
        if dynamic:  # a symbolic batch: check the one-image contract
            in_shape = (1,) + in_shape[1:]
            out_shape = (1,) + out_shape[1:] if out_shape else out_shape
        check_io_contract(in_shape, out_shape, str(path), len(inputs), len(outputs),
                          inputs[0].name if inputs else None)
        if inputs[0].type not in _ORT_TYPES:
            raise ModelContractError(f'{path}: input must be float32 or float16, got '
                                     f'{inputs[0].type}')
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.input_shape = tuple(int(d) for d in in_shape)
        self.input_dtype = np.dtype(_ORT_TYPES[inputs[0].type])
        self.output_shape = tuple(d if isinstance(d, int) else -1 for d in out_shape)
        if dynamic:
            self.capabilities = replace(self.capabilities, max_batch=max(1, int(max_batch)))
        self.providers = self._session.get_providers()
        self.model_path = path
        LOGGER.info('ONNX Runtime %s on %s: %s', ort.__version__, ', '.join(self.providers),
                    self.describe())

    def _infer_impl(self, tensor: np.ndarray) -> np.ndarray:
        output = self._session.run([self.output_name], {self.input_name: tensor})[0]
        return np.asarray(output, dtype=np.float32)

    def close(self) -> None:
        """Drop the session (ONNX Runtime frees it with the last reference)."""
        self._session = None
        super().close()
