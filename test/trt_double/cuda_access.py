"""MEMORY hooks of the TensorRT double over real device memory (for the GPU tests).

The double reads the engine input from, and writes the output to, device pointers with blocking
``cudaMemcpy`` after synchronizing the engine's stream (a real engine would run kernels on that
stream instead). This lets the production ``CudaMemory`` layer and the CUDA preprocessor's
device buffer be exercised end to end on a GPU machine without TensorRT.
"""

import numpy as np


class CudaAccess:
    """read / write / engine_sync through cuda.bindings.runtime."""

    def __init__(self) -> None:
        from tensorrt_yolox_py.cuda.memory import import_cudart

        self._rt = import_cudart()

    def _check(self, result, call: str):
        err = result[0] if isinstance(result, tuple) else result
        if int(err) != 0:
            raise RuntimeError(f'{call} failed: {err}')

    def read(self, ptr: int, nbytes: int) -> bytes:
        host = np.empty(nbytes, np.uint8)
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self._rt.cudaMemcpy(host.ctypes.data, ptr, nbytes, kind), 'cudaMemcpy D2H')
        return host.tobytes()

    def write(self, ptr: int, data: bytes) -> None:
        host = np.frombuffer(data, np.uint8).copy()
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self._rt.cudaMemcpy(ptr, host.ctypes.data, host.nbytes, kind),
                    'cudaMemcpy H2D')

    def engine_sync(self, stream: int) -> None:
        self._check(self._rt.cudaStreamSynchronize(stream), 'cudaStreamSynchronize')
