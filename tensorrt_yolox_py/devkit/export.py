"""Export a YOLOX PyTorch model to ONNX in the YOLOX/Autoware contract.

Contract of the written file:

- Input ``images``: [1, 3, H, W] float32, BGR, 0-255 (the output of ``stages.preprocess``).
- Output ``output``: [1, N, 5 + C] float32, the raw head (columns 0-3 raw regression, 4
  sigmoid(obj), 5: sigmoid(cls)), N = sum over strides 8/16/32 of (H/s) * (W/s).
- Opset 17, static shapes, BatchNorm folded into the convolutions and the graph simplified with
  onnx-simplifier, so that every Conv weight AND bias is a graph initializer (what the INT8
  quantizers need: an unsimplified export feeds biases through Identity nodes).
- Metadata properties: ``yolox_variant``, ``yolox_act``, ``num_classes``, ``input_hw``,
  ``strides``, ``output_format`` (``raw``), and the graph's content checksum
  (``integrity.stamp``: ``yolox_graph_sha256``), verified when the model is loaded.

Checkpoints (``train.save_checkpoint``) are dicts with ``config`` (``YOLOX.config()``) and
``model`` (a state dict); ``ema`` (a state dict) is preferred when present.
"""

import logging
import os
import tempfile
import warnings
from typing import Dict, Optional, Sequence, Tuple

from .._lazy import require
from ..errors import ModelContractError
from ..onnx_model import integrity
from ..model.yolox import STRIDES, YOLOX, build_model, num_anchors

torch = require('torch', 'ONNX export of the YOLOX model', 'pip install torch')

LOG = logging.getLogger(__name__)
INPUT_NAME = 'images'
OUTPUT_NAME = 'output'
DEFAULT_OPSET = 17


def load_checkpoint(path: str, map_location: str = 'cpu', prefer_ema: bool = True) -> YOLOX:
    """Build the model described by checkpoint ``path`` and load its (EMA) weights."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path}')
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or 'config' not in ckpt or 'model' not in ckpt:
        raise ModelContractError(f"{path} is not a tensorrt_yolox_py checkpoint (expected a "
                                 "dict with 'config' and 'model')")
    cfg = ckpt['config']
    model = build_model(cfg['variant'], int(cfg['num_classes']), cfg.get('act'))
    state = ckpt.get('ema') if prefer_ema and ckpt.get('ema') is not None else ckpt['model']
    model.load_state_dict(state)
    return model


def _simplify(model_proto):
    onnxsim = require('onnxsim', 'ONNX graph simplification', 'pip install onnxsim')
    simplified, ok = onnxsim.simplify(model_proto)
    if not ok:
        raise RuntimeError('onnx-simplifier could not validate the simplified graph')
    return simplified


def conv_params_are_initializers(model_proto) -> bool:
    """Return True when every Conv's weight and bias inputs are graph initializers."""
    inits = {init.name for init in model_proto.graph.initializer}
    for node in model_proto.graph.node:
        if node.op_type == 'Conv' and any(name not in inits for name in node.input[1:]):
            return False
    return True


def check_exported(model_proto, input_hw: Tuple[int, int], num_classes: int) -> None:
    """Raise ModelContractError unless ``model_proto`` has the contract's names and shapes."""
    graph = model_proto.graph
    inits = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]

    def dims(value_info) -> list:
        return [d.dim_value if d.HasField('dim_value') else d.dim_param
                for d in value_info.type.tensor_type.shape.dim]

    expected_in = [1, 3, int(input_hw[0]), int(input_hw[1])]
    expected_out = [1, num_anchors(input_hw), 5 + int(num_classes)]
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME or dims(inputs[0]) != expected_in:
        raise ModelContractError(
            f'exported input is {[(i.name, dims(i)) for i in inputs]}, expected '
            f'[({INPUT_NAME!r}, {expected_in})]')
    outs = list(graph.output)
    if len(outs) != 1 or outs[0].name != OUTPUT_NAME or dims(outs[0]) != expected_out:
        raise ModelContractError(
            f'exported output is {[(o.name, dims(o)) for o in outs]}, expected '
            f'[({OUTPUT_NAME!r}, {expected_out})]')


def export_onnx(model: YOLOX, path: str, input_hw: Tuple[int, int],
                opset: int = DEFAULT_OPSET, simplify: bool = True,
                extra_metadata: Optional[Dict[str, str]] = None) -> str:
    """Export ``model`` (switched to eval mode, on the CPU) to ONNX at ``path``; return path.

    ``input_hw`` is the model input (H, W), both multiples of 32. The file is written
    atomically (temporary file + rename), so a reader never sees a half-written model.
    """
    onnx = require('onnx', 'ONNX export', 'pip install onnx')
    in_h, in_w = int(input_hw[0]), int(input_hw[1])
    if in_h <= 0 or in_w <= 0 or in_h % 32 or in_w % 32:
        raise ValueError(f'input size must be positive multiples of 32, got {in_h}x{in_w}')
    model = model.cpu().eval()
    dummy = torch.zeros(1, 3, in_h, in_w, dtype=torch.float32)
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        raw_path = os.path.join(tmp, 'raw.onnx')
        with torch.no_grad(), warnings.catch_warnings():
            # dynamo=False is the TorchScript exporter on purpose (static, simple graphs).
            warnings.simplefilter('ignore', DeprecationWarning)
            torch.onnx.export(model, (dummy,), raw_path, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=int(opset),
                              do_constant_folding=True, dynamo=False)
        proto = onnx.load(raw_path)
        if simplify:
            proto = _simplify(proto)
        check_exported(proto, (in_h, in_w), model.num_classes)
        meta = {'yolox_variant': model.variant, 'yolox_act': model.act,
                'num_classes': str(model.num_classes), 'input_hw': f'{in_h},{in_w}',
                'strides': ','.join(str(s) for s in STRIDES), 'output_format': 'raw'}
        meta.update(extra_metadata or {})
        del proto.metadata_props[:]
        for key, value in meta.items():
            prop = proto.metadata_props.add()
            prop.key, prop.value = key, str(value)
        integrity.stamp(proto)
        onnx.checker.check_model(proto)
        final_tmp = os.path.join(tmp, 'final.onnx')
        onnx.save(proto, final_tmp)
        os.replace(final_tmp, path)
    if simplify and not conv_params_are_initializers(proto):
        LOG.warning('some Conv weights/biases of %s are not initializers', path)
    LOG.info('exported %s (%s, %d classes, input %dx%d, opset %d)', path, model.variant,
             model.num_classes, in_w, in_h, opset)
    return path


def export_variant(variant: str, path: str, input_hw: Tuple[int, int], num_classes: int = 8,
                   act: Optional[str] = None, checkpoint: Optional[str] = None,
                   opset: int = DEFAULT_OPSET, simplify: bool = True, seed: int = 0) -> str:
    """Export a checkpoint, or variant ``variant`` with seeded random weights, to ``path``."""
    if checkpoint:
        model = load_checkpoint(checkpoint)
        if act and act != model.act:
            raise ValueError(f"checkpoint was trained with act '{model.act}', not '{act}'")
    else:
        torch.manual_seed(int(seed))
        model = build_model(variant, num_classes, act)
    return export_onnx(model, path, input_hw, opset=opset, simplify=simplify)


def compare_with_onnxruntime(model: YOLOX, onnx_path: str, images: Sequence) -> Dict[str, float]:
    """Run ``images`` (each (1, 3, H, W) float32) through PyTorch and ONNX Runtime.

    Returns the max absolute difference of the raw regression columns (0-3) and of the
    sigmoid-ed columns (4:), over all images.
    """
    ort = require('onnxruntime', 'the ONNX Runtime comparison', 'pip install onnxruntime')
    import numpy as np

    session = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    model = model.cpu().eval()
    max_reg = max_score = 0.0
    for image in images:
        image = np.ascontiguousarray(image, dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(image)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: image})[0]
        if got.shape != ref.shape:
            raise ModelContractError(f'ONNX output shape {got.shape} != PyTorch {ref.shape}')
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        max_reg = max(max_reg, float(diff[..., :4].max()))
        max_score = max(max_score, float(diff[..., 4:].max()))
    return {'max_abs_diff_reg': max_reg, 'max_abs_diff_scores': max_score}
