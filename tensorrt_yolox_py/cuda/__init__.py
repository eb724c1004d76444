"""CUDA through cuda-python (cuda.core + cuda.bindings, NVRTC at run time).

Importing this package needs no CUDA: the driver, cuda.core and NVRTC are imported lazily when a
``preprocess.CudaPreprocessor`` is created; ``preprocess.cuda_available()`` says whether one can
be. Modules: ``check`` (the one ``CudaError``), ``memory`` (device / pinned memory, streams,
copies), ``kernels`` (the runtime kernels), ``preprocess`` (``CudaPreprocessor``), ``driver``
(which CUDA major the driver runs).

Nothing is re-exported here: ``tensors`` reads device memory through ``cuda.memory``, and
``cuda.preprocess`` makes tensors, so importing ``preprocess`` with the package would tie the
two in a circle (test_import_graph).
"""
