"""ament_python package setup of tensorrt_yolox_py."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'tensorrt_yolox_py'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['model/data/*', 'data/sample/*', 'data/sample/*/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config',
         glob('config/*.yaml') + glob('config/*.txt') + glob('config/*.xml')),
    ],
    install_requires=['setuptools', 'numpy', 'opencv-python-headless', 'pyyaml',
                      'onnxruntime>=1.32', 'filelock'],
    extras_require={
        'cuda': ['cuda-core>=1.2,<2', 'cuda-bindings>=12.6'],
        'train': ['torch', 'onnx', 'onnxsim'],
        'eval': ['rosbags', 'pycocotools', 'matplotlib', 'tqdm'],
    },
    zip_safe=True,
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
