"""GPU end-to-end: the Detector with CUDA preprocessing gives the CPU path's detections.

Skipped cleanly without a CUDA GPU. On a GPU: the bundled demo model on generated driving
scenes, and the planted model on a planted scene, through ``preprocess_on_gpu: true`` (fused CUDA
kernel) and ``false`` (OpenCV reference), with the same ONNX Runtime backend; detections must
match (same classes, boxes within 1 px, scores within 0.02), since the two preprocessors agree
within 1.0 on the 0-255 scale.
"""

import numpy as np
import pytest

from tensorrt_yolox_py.cuda.preprocess import cuda_available
from tensorrt_yolox_py.image import SourceImage
from tensorrt_yolox_py.params import make_config
from tensorrt_yolox_py.pipeline import Detector

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason='no CUDA GPU / driver / NVRTC')]


def _detectors(**values):
    gpu = Detector.from_config(make_config({**values, 'preprocess_on_gpu': True}))
    # ONNX Runtime reads host memory: Backend.infer copies the CUDA tensor (to_host)
    cpu = Detector.from_config(make_config({**values, 'preprocess_on_gpu': False}))
    assert gpu.preprocessor.name == 'cuda' and cpu.preprocessor.name == 'cpu'
    return gpu, cpu


def _covered(a, b, margin):
    """Check every detection of a scoring >= margin has a twin in b (class, box, score)."""
    for box, score, cls in zip(a.boxes, a.scores, a.class_ids):
        if score < margin:
            continue
        twins = [j for j in range(len(b)) if b.class_ids[j] == cls
                 and np.abs(b.boxes[j] - box).max() <= 1.0 and abs(b.scores[j] - score) < 0.02]
        assert twins, f'no twin for class {cls} box {box} score {score:.3f}'


def _match(a, b, threshold=0.5):
    """Detections agree both ways; those within 0.03 of the threshold may fall either side."""
    _covered(a, b, threshold + 0.03)
    _covered(b, a, threshold + 0.03)


def test_planted_scene_same_answer_on_gpu(planted_model):
    gpu, cpu = _detectors(model_path=str(planted_model), backend='onnxruntime')
    pixels = np.random.default_rng(0).integers(40, 200, (1280, 1920, 3), dtype=np.uint8)
    pixels[384:576, 576:768] = (0, 0, 255)
    img = SourceImage.from_array(pixels)
    with gpu, cpu:
        result = gpu.detect(img)
        _match(result.detections, cpu.detect(img).detections)
        assert result.detections.class_ids.tolist() == [1]
        np.testing.assert_allclose(result.detections.boxes, [[576, 384, 768, 576]], atol=1.0)


def test_demo_model_on_generated_scenes_same_detections_on_gpu():
    from tensorrt_yolox_py.devkit.scene import SceneGenerator

    gpu, cpu = _detectors(backend='onnxruntime', score_threshold=0.5)
    generator = SceneGenerator()
    with gpu, cpu:
        found = 0
        for seed in range(4):
            image = SourceImage.from_array(generator.render(seed).image)
            a = gpu.detect(image).detections
            b = cpu.detect(image).detections
            _match(a, b)
            found += len(a)
        assert found > 0
