"""YOLOX model family (PyTorch, optional ``train`` extra), ONNX export, loss and training.

Importing this package does not import torch; ``yolox``, ``complexity``, ``export``, ``loss``
and ``train`` do (through ``_lazy.require``, with an error that says what to install).
"""
