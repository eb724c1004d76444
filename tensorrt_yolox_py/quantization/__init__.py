"""INT8 quantization shared by the TensorRT builder and the ONNX Runtime INT8 study.

``images``: the calibration image set and its batches (the inference preprocessing);
``static``: ONNX Runtime static QDQ quantization and per-tensor calibration ranges;
``streaming``: the bounded-memory calibration both use (ONNX Runtime's range algorithms);
``strongly_typed``: FP16 and INT8 Q/DQ + FP16 models for strongly typed TensorRT 11 networks
(NVIDIA ModelOpt in its own environment through ``modelopt_worker``, or the ``static``
quantizer + onnxconverter-common).
Heavy dependencies (onnx, onnxruntime) are imported only when a function needs them.
"""

from .images import calibration_tensors, fingerprint, list_calibration_images, load_image
from .static import (QuantizationResult, calibrate, canonical_method, compute_tensor_ranges,
                     quantize_static_qdq, weighted_boundary_nodes)

__all__ = ['QuantizationResult', 'calibrate', 'calibration_tensors', 'canonical_method',
           'compute_tensor_ranges', 'fingerprint', 'list_calibration_images', 'load_image',
           'quantize_static_qdq', 'weighted_boundary_nodes']
