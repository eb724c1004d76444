"""tensorrt_yolox_py: YOLOX 2D object detection for ROS 2, with a ROS-free core.

Layout (folder names follow the architecture):

- ``stages/``     preprocess (CPU reference) and postprocess (decode + NMS)
- ``cuda/``       CUDA preprocessing kernels (cuda-python, NVRTC)
- ``backends/``   one ``Backend`` interface: ONNX Runtime and TensorRT
- ``pipeline.py`` the ``Detector`` (preprocess -> infer -> postprocess) with stage timing
- ``model/``      the YOLOX model family (PyTorch, optional) and ONNX export
- ``ros/``        the thin rclpy adapter (node, image conversion, multi-camera runner)
- ``tools/``      console scripts over the core
"""

__version__ = '0.1.0'
