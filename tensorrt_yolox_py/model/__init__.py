"""The YOLOX model family (PyTorch definition, optional ``train`` extra) and the bundled model.

- ``yolox``: the network definition (runtime may use it, e.g. to run the package's own
  PyTorch YOLOX); ``complexity``: parameters and FLOPs of a variant.
- ``data/``: the bundled demo model (ONNX), its labels and measured metrics.

Training, loss and export are in ``devkit``. Importing this package does not import torch;
``yolox`` and ``complexity`` do (through ``_lazy.require``, with an error that says what to
install).
"""
