"""Run scripts/check_tensorrt_on_hardware.py on a GPU machine WITHOUT TensorRT (development).

The TensorRT double stands in for TensorRT while the memory layer is the real ``CudaMemory``
and the CUDA preprocessor runs for real, so the checklist's own plumbing, including the
GPU-resident path, can be exercised on the lent GPU. It proves nothing about TensorRT itself.

    python3 test/trt_double/check_with_double.py [checklist arguments...]
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]


def main() -> int:
    """Install the double over real device memory and run the checklist."""
    import importlib.util

    from tensorrt_yolox_py.cuda.memory import CudaMemory
    from trt_double.control import DoubleTensorRT, Hardware
    from trt_double.cuda_access import CudaAccess

    info = CudaMemory(0).device_info()
    double = DoubleTensorRT(memory=CudaAccess(), hardware=Hardware(
        gpu_name=info['name'], compute_capability=tuple(info['compute_capability'])))
    sys.modules['tensorrt'] = double.module
    script = HERE.parents[1] / 'scripts' / 'check_tensorrt_on_hardware.py'
    spec = importlib.util.spec_from_file_location('check_tensorrt_on_hardware', script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run(sys.argv[1:], trt=double.module)[0]


if __name__ == '__main__':
    sys.exit(main())
