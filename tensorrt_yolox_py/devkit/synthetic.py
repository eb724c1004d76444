"""A hand-weighted YOLOX-contract ONNX model whose answer is known (proof-of-life / tests).

The graph follows the YOLOX export contract exactly (input ``images`` (1, 3, H, W) float32 BGR
0-255, output ``output`` (1, N, 5 + C), anchors at strides 8, 16, 32) but its weights are set
by hand instead of trained:

- at stride 32, a cell whose mean "redness" R - (B + G) / 2 is near 255 (a saturated red
  (B, G, R) = (0, 0, 255) patch covering the cell) fires class ``RED_CLASS`` (CAR) with score
  ~1; the same for "greenness" and ``GREEN_CLASS`` (PEDESTRIAN); every other anchor scores 0;
- the regression puts the box exactly on the cell: raw p0 = p1 = 0.5, p2 = p3 = 0, so the
  decoded box is (gx * 32, gy * 32, gx * 32 + 32, gy * 32 + 32) in model-input pixels.

So a red square that covers a 32x32 model-input cell gives exactly one CAR detection with that
cell's box (divided by the letterbox scale in source pixels). ``decoded=True`` writes the same
answer in the already decoded (cx, cy, w, h) form.
"""

from pathlib import Path
from typing import List, Tuple, Union

import numpy as np

from .._lazy import require

RED_CLASS = 1
GREEN_CLASS = 6
CELL = 32
#: Mean colour margin (0-255) a cell needs before it fires, and the sigmoid's steepness.
FIRE_LEVEL = 0.9 * 255
STEEPNESS = 0.5


def planted_cell_box(gx: int, gy: int) -> Tuple[float, float, float, float]:
    """Return the model-input xyxy box the planted model reports for stride-32 cell (gx, gy)."""
    return (gx * CELL, gy * CELL, (gx + 1) * CELL, (gy + 1) * CELL)


def make_planted_model(path: Union[str, Path], input_hw: Tuple[int, int] = (320, 320),
                       num_classes: int = 8, decoded: bool = False) -> Path:
    """Write the hand-weighted model to ``path`` and return the path (see module docstring)."""
    onnx = require('onnx', 'writing the planted test model', 'pip install onnx')
    helper, tp = onnx.helper, onnx.TensorProto
    in_h, in_w = int(input_hw[0]), int(input_hw[1])
    if in_h % CELL or in_w % CELL or num_classes <= max(RED_CLASS, GREEN_CLASS):
        raise ValueError(f'input size must be a multiple of {CELL} and num_classes > '
                         f'{max(RED_CLASS, GREEN_CLASS)}')
    gh, gw = in_h // CELL, in_w // CELL
    channels = 5 + num_classes
    inits: List = []
    nodes: List = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(onnx.numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    # Colour margins: channel 0 = R - (B+G)/2, channel 1 = G - (B+R)/2 (input is BGR).
    const('colour_w', np.array([[-0.5, -0.5, 1.0], [-0.5, 1.0, -0.5]],
                               np.float32).reshape(2, 3, 1, 1))
    nodes.append(helper.make_node('Conv', ['images', 'colour_w'], ['colour']))
    nodes.append(helper.make_node('AveragePool', ['colour'], ['cell_mean'],
                                  kernel_shape=[CELL, CELL], strides=[CELL, CELL]))
    const('fire_level', np.array(FIRE_LEVEL))
    const('steepness', np.array(STEEPNESS))
    nodes.append(helper.make_node('Sub', ['cell_mean', 'fire_level'], ['margin']))
    nodes.append(helper.make_node('Mul', ['margin', 'steepness'], ['logit']))
    nodes.append(helper.make_node('Sigmoid', ['logit'], ['colour_score']))
    nodes.append(helper.make_node('ReduceMax', ['colour_score', 'reduce_axes'], ['obj'],
                                  keepdims=1))
    inits.append(onnx.numpy_helper.from_array(np.array([1], np.int64), 'reduce_axes'))
    nodes.append(helper.make_node('Split', ['colour_score', 'split_sizes'],
                                  ['red_score', 'green_score'], axis=1))
    inits.append(onnx.numpy_helper.from_array(np.array([1, 1], np.int64), 'split_sizes'))

    gy, gx = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32),
                         indexing='ij')
    if decoded:
        box = np.stack([(gx + 0.5) * CELL, (gy + 0.5) * CELL,
                        np.full_like(gx, CELL), np.full_like(gx, CELL)])
    else:
        box = np.stack([np.full_like(gx, 0.5), np.full_like(gx, 0.5),
                        np.zeros_like(gx), np.zeros_like(gx)])
    const('box_maps', box[None])
    pieces = ['box_maps', 'obj']
    for cls in range(num_classes):
        if cls == RED_CLASS:
            pieces.append('red_score')
        elif cls == GREEN_CLASS:
            pieces.append('green_score')
        else:
            pieces.append(const(f'zero_cls{cls}', np.zeros((1, 1, gh, gw), np.float32)))
    nodes.append(helper.make_node('Concat', pieces, ['head32'], axis=1))
    inits.append(onnx.numpy_helper.from_array(np.array([1, channels, gh * gw], np.int64),
                                              'head32_shape'))
    nodes.append(helper.make_node('Reshape', ['head32', 'head32_shape'], ['head32_flat']))
    nodes.append(helper.make_node('Transpose', ['head32_flat'], ['rows32'], perm=[0, 2, 1]))

    # Strides 8 and 16 never fire: constant rows (obj = cls = 0, a valid regression).
    rows_small = []
    for stride in (8, 16):
        count = (in_h // stride) * (in_w // stride)
        rows = np.zeros((1, count, channels), np.float32)
        if decoded:
            rows[0, :, 2:4] = stride
        rows_small.append(const(f'rows{stride}', rows))
    nodes.append(helper.make_node('Concat', rows_small + ['rows32'], ['output'], axis=1))

    n_anchors = sum((in_h // s) * (in_w // s) for s in (8, 16, 32))
    graph = helper.make_graph(
        nodes, 'planted_yolox',
        [helper.make_tensor_value_info('images', tp.FLOAT, [1, 3, in_h, in_w])],
        [helper.make_tensor_value_info('output', tp.FLOAT, [1, n_anchors, channels])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)],
                              producer_name='tensorrt_yolox_py.devkit.synthetic')
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
