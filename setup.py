"""ament_python package setup of tensorrt_yolox_py."""

from glob import glob
from pathlib import Path
from typing import List

from setuptools import find_packages, setup

PACKAGE = 'tensorrt_yolox_py'
HERE = Path(__file__).resolve().parent


def requirements(name: str) -> List[str]:
    """Return the requirement lines of ``name`` (comments, blanks and ``-r`` lines dropped)."""
    lines = (line.split('#', 1)[0].strip() for line in (HERE / name).read_text().splitlines())
    return [line for line in lines if line and not line.startswith('-')]


setup(
    name=PACKAGE,
    version='0.1.0',
    # Only the package: benchmarks/, test/ and scripts/ stay in the checkout.
    packages=find_packages(include=[PACKAGE, PACKAGE + '.*']),
    # Everything read at run time: the CUDA sources NVRTC compiles, the demo model and labels.
    package_data={PACKAGE: ['cuda/*.cu', 'cuda/*.cuh', 'model/data/*', 'data/sample/*',
                            'data/sample/*/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config',
         glob('config/*.yaml') + glob('config/*.txt') + glob('config/*.xml')),
    ],
    python_requires='>=3.10',
    install_requires=['setuptools'] + requirements('requirements.txt'),
    extras_require={
        # The CUDA bindings and NVRTC for the driver's CUDA major (docs/platforms.md).
        'cuda12': requirements('requirements-cuda12.txt'),
        'cuda13': requirements('requirements-cuda13.txt'),
        'train': ['torch', 'onnxsim'],
        'eval': ['rosbags', 'pycocotools', 'matplotlib'],
    },
    # The kernels are read from files next to their module (cuda/kernels.py).
    zip_safe=False,
    maintainer='tensorrt_yolox_py maintainers',
    maintainer_email='maintainers@tensorrt-yolox-py.dev',
    description='YOLOX 2D object detection for ROS 2 (TensorRT / ONNX Runtime, CUDA '
                'preprocessing), with a ROS-free core',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'yolox_detect = tensorrt_yolox_py.tools.detect:main',
            'yolox_node = tensorrt_yolox_py.ros.entry_points:yolox_node',
            'yolox_multi_camera = tensorrt_yolox_py.ros.entry_points:yolox_multi_camera',
            'yolox_build_engine = tensorrt_yolox_py.tools.build_engine:main',
            'yolox_export = tensorrt_yolox_py.devkit.tools.export_model:main',
            'yolox_train = tensorrt_yolox_py.devkit.tools.train:main',
            'yolox_make_dataset = tensorrt_yolox_py.devkit.tools.make_dataset:main',
            'yolox_evaluate = tensorrt_yolox_py.tools.evaluate_bag:main',
            'yolox_demo = tensorrt_yolox_py.tools.demo:main',
            'yolox_train_demo = tensorrt_yolox_py.devkit.tools.train_demo:main',
        ],
    },
)
