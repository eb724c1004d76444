"""Parameter count and FLOPs of a PyTorch model, counted with forward hooks.

Convention (the YOLOX repository's): ``GFLOPs = 2 * MACs / 1e9``, where MACs are the
multiply-accumulates of every ``Conv2d`` (out elements * in_channels / groups * kh * kw) and
``Linear`` (out elements * in_features). Bias additions, activations, pooling, upsampling,
concatenations and residual adds are not counted. BatchNorm is not counted by default (it is
folded into the convolutions at deployment); ``include_norm=True`` adds 2 * elements per
BatchNorm output, which is what YOLOX's ``get_model_info`` (thop in eval mode) counts.
"""

from dataclasses import dataclass
from typing import Dict, Tuple

from .._lazy import require

torch = require('torch', 'the model complexity counter', 'pip install torch')
nn = torch.nn


@dataclass(frozen=True)
class Complexity:
    """Parameter count and compute of one model at one input size."""

    params: int
    macs: int
    norm_ops: int
    input_hw: Tuple[int, int]

    @property
    def gflops(self) -> float:
        """2 * MACs in units of 1e9 (conv + linear only; the YOLOX convention without BN)."""
        return 2.0 * self.macs / 1e9

    @property
    def gflops_with_norm(self) -> float:
        """``gflops`` plus BatchNorm ops (thop's count, as in YOLOX's get_model_info)."""
        return (2.0 * self.macs + 2.0 * self.norm_ops) / 1e9

    @property
    def mparams(self) -> float:
        """Parameter count in millions."""
        return self.params / 1e6

    def as_dict(self) -> Dict[str, object]:
        """Return a JSON-friendly dict."""
        return {'input_hw': list(self.input_hw), 'params': self.params,
                'mparams': round(self.mparams, 4), 'macs': self.macs,
                'gflops': round(self.gflops, 3),
                'gflops_with_bn': round(self.gflops_with_norm, 3)}


def conv_macs(module: 'nn.Conv2d', output: 'torch.Tensor') -> int:
    """Return the MACs of one Conv2d call that produced ``output``."""
    kh, kw = module.kernel_size
    return int(output.numel()) * (module.in_channels // module.groups) * kh * kw


def count_complexity(model: 'nn.Module', input_hw: Tuple[int, int], batch: int = 1
                     ) -> Complexity:
    """Run ``model`` once in eval mode on zeros (batch, 3, H, W) and count MACs and params.

    The model's training flag is restored afterwards. MACs are per batch of ``batch`` images.
    """
    macs = [0]
    norm_ops = [0]

    def on_conv(module: 'nn.Module', _inputs: tuple, output: 'torch.Tensor') -> None:
        macs[0] += conv_macs(module, output)

    def on_linear(module: 'nn.Module', _inputs: tuple, output: 'torch.Tensor') -> None:
        macs[0] += int(output.numel()) * module.in_features

    def on_norm(module: 'nn.Module', _inputs: tuple, output: 'torch.Tensor') -> None:
        norm_ops[0] += int(output.numel())

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(on_linear))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            handles.append(module.register_forward_hook(on_norm))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        with torch.no_grad():
            model(torch.zeros(batch, 3, int(input_hw[0]), int(input_hw[1]), device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    params = sum(int(p.numel()) for p in model.parameters())
    return Complexity(params, macs[0], norm_ops[0], (int(input_hw[0]), int(input_hw[1])))
