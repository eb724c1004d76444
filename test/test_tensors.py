"""Host and device tensors, and ``Backend.infer`` as the one entry for both (no GPU needed).

Where a device copy is needed, CUDA's ``copy_to_host`` is replaced by a host-memory stand-in
(the "device" memory is a NumPy array's; ``ctypes.memmove`` copies it), as test/trt_double
replaces the CUDA memory layer: the tensors' and the backend's own logic run unchanged.
"""

import ctypes
import logging

import numpy as np
import pytest

from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
from tensorrt_yolox_py.cuda import memory as cuda_memory
from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.tensors import as_tensor, DeviceTensor, HostTensor


@pytest.fixture()
def host_copies(monkeypatch):
    """Replace the CUDA device-to-host copy by a memmove; record (nbytes, stream, gpu)."""
    calls = []

    def copy_to_host(out, ptr, stream, gpu_id=0):
        calls.append((out.nbytes, stream, gpu_id))
        ctypes.memmove(out.ctypes.data, ptr, out.nbytes)

    monkeypatch.setattr(cuda_memory, 'copy_to_host', copy_to_host)
    return calls


def test_host_tensor_wraps_a_rank_4_array():
    array = np.zeros((2, 3, 4, 5), np.float16)
    tensor = as_tensor(array)
    assert isinstance(tensor, HostTensor) and tensor.layout == 'NCHW'
    assert tensor.shape == (2, 3, 4, 5) and tensor.batch == 2 and tensor.dtype == np.float16
    assert tensor.to_host() is array and as_tensor(tensor) is tensor
    assert HostTensor(np.zeros((1, 4, 5, 3)), 'NHWC').layout == 'NHWC'
    for bad, message in [((np.zeros((3, 4, 5)),), 'rank 4'),
                         ((np.zeros((1, 3, 4, 5)), 'CHWN'), 'layout'),
                         (([[1.0]],), 'numpy array')]:
        with pytest.raises(InputError, match=message):
            HostTensor(*bad)
    with pytest.raises(InputError, match='HostTensor, DeviceTensor or numpy array'):
        as_tensor([1, 2, 3])


def test_device_tensor_fields_and_checks():
    owner = object()
    tensor = DeviceTensor(0x7000, [2, 3, 8, 16], 'float16', 'NCHW', stream=42, device_id=1,
                          owner=owner)
    assert tensor.shape == (2, 3, 8, 16) and tensor.dtype == np.float16
    assert tensor.batch == 2 and tensor.nbytes == 2 * 3 * 8 * 16 * 2
    assert tensor.owner is owner and as_tensor(tensor) is tensor
    assert tensor == DeviceTensor(0x7000, (2, 3, 8, 16), np.float16, stream=42, device_id=1)
    for kwargs, message in [({'ptr': 0}, 'null'), ({'shape': (3, 8, 16)}, 'rank 4'),
                            ({'shape': (0, 3, 8, 16)}, 'positive'),
                            ({'dtype': np.float64}, 'dtype'), ({'layout': 'HWC'}, 'layout'),
                            ({'device_id': -1}, 'device id')]:
        args = dict(ptr=0x7000, shape=(1, 3, 8, 16), dtype=np.float32)
        args.update(kwargs)
        with pytest.raises(InputError, match=message):
            DeviceTensor(**args)


def test_cuda_array_interface_carries_the_stream():
    tensor = DeviceTensor(0x7000, (1, 3, 8, 16), np.float16, stream=42)
    cai = tensor.__cuda_array_interface__
    assert cai == {'shape': (1, 3, 8, 16), 'typestr': '<f2', 'data': (0x7000, False),
                   'version': 3, 'strides': None, 'stream': 42}
    assert 'stream' not in tensor.cuda_array_interface(with_stream=False)
    # CAI v3 forbids 0: the legacy default stream is spelled 1
    assert DeviceTensor(0x7000, (1, 3, 8, 16), np.float32).__cuda_array_interface__[
        'stream'] == 1


def test_to_host_copies_on_the_tensors_stream(host_copies):
    memory = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    tensor = DeviceTensor(memory.ctypes.data, memory.shape, memory.dtype, stream=7,
                          device_id=2, owner=memory)
    np.testing.assert_array_equal(tensor.to_host(), memory)
    out = np.empty_like(memory)
    assert tensor.to_host(out) is out
    np.testing.assert_array_equal(out, memory)
    assert host_copies == [(memory.nbytes, 7, 2)] * 2
    with pytest.raises(InputError, match='out must be'):
        tensor.to_host(np.empty((2, 3, 4, 5), np.float16))


def test_a_host_only_backend_gets_one_logged_to_host(planted_model, host_copies, caplog):
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 320, 320)).astype(np.float32)
    with OnnxRuntimeBackend(planted_model) as backend:
        assert not backend.capabilities.device_memory
        want = backend.infer(x)
        device = DeviceTensor(x.ctypes.data, x.shape, x.dtype, stream=5, owner=x)
        with caplog.at_level(logging.INFO, logger='tensorrt_yolox_py.backends.base'):
            first = backend.infer(device)
            second = backend.infer(device)
        np.testing.assert_array_equal(first, want)
        np.testing.assert_array_equal(second, want)
        assert host_copies == [(x.nbytes, 5, 0)] * 2           # one to_host per call
        told = [r for r in caplog.records if 'to_host' in r.getMessage()]
        assert len(told) == 1 and 'onnxruntime' in told[0].getMessage()   # logged once
        with pytest.raises(InputError, match='dtype'):         # checked before any copy
            backend.infer(DeviceTensor(x.ctypes.data, x.shape, np.float16))
        with pytest.raises(InputError, match='NCHW'):
            backend.infer(HostTensor(np.zeros((1, 320, 320, 3), np.float32), 'NHWC'))
    assert len(host_copies) == 2
