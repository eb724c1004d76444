"""Tiny YOLOX-contract ONNX models for the TensorRT and quantization tests (onnx.helper).

``make_tiny_yolox(path, input_hw=(64, 64), num_classes=8, act='relu', spp=True)``: input
``images`` (1, 3, H, W) float32 0-255, output ``output`` (1, N, 5 + C) with one stride-8 level
(N = H/8 * W/8): stem Conv -> act -> Conv s2 -> act -> Conv s2 -> act -> [MaxPool k9 s1 (an
SPP-like pool, wider than the DLA's 8)] -> three head Convs (reg 4, obj 1 -> Sigmoid, cls C ->
Sigmoid) -> Concat -> Reshape -> Transpose. Every Conv has a bias initializer. ``act='relu6'``
uses Clip(0, 6), the DLA recipe's activation. Weights are seeded, so the model is reproducible.
"""

from pathlib import Path
from typing import List, Tuple, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_tiny_yolox(path: Union[str, Path], input_hw: Tuple[int, int] = (64, 64),
                    num_classes: int = 8, act: str = 'relu', spp: bool = True,
                    seed: int = 0, residual: bool = False) -> Path:
    """Write the tiny model to ``path`` and return the path.

    ``residual``: a residual block after dark3 (``res_sum = dark3_act + res_act(res(...))``),
    the sum of two activations as in YOLOX's bottlenecks.
    """
    rng = np.random.default_rng(seed)
    in_h, in_w = input_hw
    nodes: List = []
    inits: List = []

    def conv(name: str, src: str, cin: int, cout: int, k: int, stride: int,
             gain: float = 1.0) -> str:
        fan_in = cin * k * k
        weight = rng.normal(0.0, gain * np.sqrt(2.0 / fan_in), (cout, cin, k, k))
        bias = rng.normal(0.0, 0.1, cout)
        inits.append(numpy_helper.from_array(weight.astype(np.float32), f'{name}.weight'))
        inits.append(numpy_helper.from_array(bias.astype(np.float32), f'{name}.bias'))
        nodes.append(helper.make_node('Conv', [src, f'{name}.weight', f'{name}.bias'],
                                      [f'{name}_out'], name=name, kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4))
        return f'{name}_out'

    def activation(name: str, src: str) -> str:
        if act == 'relu6':
            nodes.append(helper.make_node('Clip', [src, 'clip_min', 'clip_max'],
                                          [f'{name}_out'], name=name))
        else:
            nodes.append(helper.make_node('Relu', [src], [f'{name}_out'], name=name))
        return f'{name}_out'

    if act == 'relu6':
        inits.append(numpy_helper.from_array(np.array(0.0, np.float32), 'clip_min'))
        inits.append(numpy_helper.from_array(np.array(6.0, np.float32), 'clip_max'))
    x = activation('stem_act', conv('stem', 'images', 3, 8, 3, 2, gain=1 / 255.0 * 4))
    x = activation('dark2_act', conv('dark2', x, 8, 16, 3, 2))
    x = activation('dark3_act', conv('dark3', x, 16, 16, 3, 2))
    if residual:
        branch = activation('res_act', conv('res', x, 16, 16, 3, 1))
        nodes.append(helper.make_node('Add', [x, branch], ['res_sum_out'], name='res_sum'))
        x = 'res_sum_out'
    if spp:
        nodes.append(helper.make_node('MaxPool', [x], ['spp_out'], name='spp',
                                      kernel_shape=[9, 9], strides=[1, 1], pads=[4] * 4))
        x = 'spp_out'
    reg = conv('reg_preds', x, 16, 4, 1, 1)
    obj = conv('obj_preds', x, 16, 1, 1, 1)
    cls = conv('cls_preds', x, 16, num_classes, 1, 1)
    nodes.append(helper.make_node('Sigmoid', [obj], ['obj_sig'], name='obj_sigmoid'))
    nodes.append(helper.make_node('Sigmoid', [cls], ['cls_sig'], name='cls_sigmoid'))
    nodes.append(helper.make_node('Concat', [reg, 'obj_sig', 'cls_sig'], ['head'],
                                  name='head_concat', axis=1))
    gh, gw = in_h // 8, in_w // 8
    channels = 5 + num_classes
    inits.append(numpy_helper.from_array(np.array([1, channels, gh * gw], np.int64),
                                         'flat_shape'))
    nodes.append(helper.make_node('Reshape', ['head', 'flat_shape'], ['flat'], name='flatten'))
    nodes.append(helper.make_node('Transpose', ['flat'], ['output'], name='to_nhc',
                                  perm=[0, 2, 1]))
    graph = helper.make_graph(
        nodes, 'tiny_yolox',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, in_h, in_w])],
        [helper.make_tensor_value_info('output', TensorProto.FLOAT,
                                       [1, gh * gw, channels])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def write_images(folder: Union[str, Path], count: int, size: Tuple[int, int] = (48, 80),
                 seed: int = 1) -> List[Path]:
    """Write ``count`` random-but-structured BGR PNG images (h, w = size); return their paths."""
    import cv2

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        image = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
        y, x = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
        image[y:y + size[0] // 3, x:x + size[1] // 3] = rng.integers(0, 256, 3)
        path = folder / f'img_{index:03d}.png'
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths
