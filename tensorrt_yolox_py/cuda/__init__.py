"""CUDA preprocessing through cuda-python (cuda.core + cuda.bindings, NVRTC at run time).

Importing this package needs no CUDA: the driver, cuda.core and NVRTC are imported lazily when a
``CudaPreprocessor`` is created. ``cuda_available()`` says whether one can be.
"""

from .check import cuda_call, CudaError, CudaUnavailableError
from .preprocess import cuda_available, cuda_unavailable_reason, CudaPreprocessor

__all__ = ['cuda_available', 'cuda_unavailable_reason', 'cuda_call', 'CudaError',
           'CudaUnavailableError', 'CudaPreprocessor']
