"""One place that checks every CUDA return code (driver, runtime, NVRTC).

cuda-python's low-level calls (``cuda.bindings.driver`` / ``runtime`` / ``nvrtc``) return a
tuple ``(status, *results)`` instead of raising. ``cuda_call`` checks the status and returns
the results, or raises ``CudaError`` carrying the CUDA error name (``CUDA_ERROR_OUT_OF_MEMORY``)
and the call that failed, like ``cuda_call`` in the TensorRT samples' ``common_runtime.py``
(minus their print/exit). Works with cuda-bindings 12.x and 13.x.
"""

from typing import Any

from ..errors import YoloxError


class CudaError(YoloxError, RuntimeError):
    """A CUDA driver / runtime / NVRTC call failed; ``name`` is the CUDA error name."""

    def __init__(self, name: str, code: int, what: str = '', detail: str = '') -> None:
        where = f' in {what}' if what else ''
        extra = f': {detail}' if detail else ''
        super().__init__(f'CUDA error {name} ({code}){where}{extra}')
        self.name = name
        self.code = code
        self.what = what


class CudaUnavailableError(YoloxError, RuntimeError):
    """No usable CUDA driver, GPU or NVRTC here (see ``cuda_unavailable_reason``)."""


def error_name(status: Any) -> str:
    """Return the CUDA name of a status enum (driver, runtime or NVRTC), or its repr."""
    kind = type(status).__name__
    try:
        if kind == 'CUresult':
            from cuda.bindings import driver
            err, name = driver.cuGetErrorName(status)
            if int(err) == 0 and name:
                return name.decode() if isinstance(name, bytes) else str(name)
        elif kind == 'cudaError_t':
            from cuda.bindings import runtime
            name = runtime.cudaGetErrorName(status)
            name = name[1] if isinstance(name, tuple) else name
            return name.decode() if isinstance(name, bytes) else str(name)
        elif kind == 'nvrtcResult':
            from cuda.bindings import nvrtc
            err, name = nvrtc.nvrtcGetErrorString(status)
            return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - the name is best effort; the code is still reported
        pass
    return getattr(status, 'name', repr(status))


def check_status(status: Any, what: str = '') -> None:
    """Raise CudaError unless ``status`` (a CUresult / cudaError_t / nvrtcResult) is success."""
    if int(status) != 0:
        raise CudaError(error_name(status), int(status), what)


def cuda_call(result: Any, what: str = '') -> Any:
    """Check a cuda-python call's ``(status, *values)`` result and return the values.

    Returns None for no value, the value itself for one, a tuple for several. ``what`` names the
    call in the error message, e.g. ``cuda_call(driver.cuMemAlloc(n), 'cuMemAlloc')``.
    """
    if isinstance(result, tuple):
        status, values = result[0], result[1:]
    else:
        status, values = result, ()
    check_status(status, what)
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return values
