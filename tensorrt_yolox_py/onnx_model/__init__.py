"""Runtime helpers for the ONNX model file every backend loads (no training code).

- ``integrity``: the content checksum stamped at export and verified at load.
- ``dynamic_batch``: rewriting a batch-1 model to a dynamic batch (cross-camera batching).

Importing this package imports neither onnx nor onnxruntime.
"""
