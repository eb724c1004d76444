"""Test doubles for the TensorRT backend: the TensorRT 10 API subset and a host-memory layer."""
