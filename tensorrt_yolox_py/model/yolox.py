"""YOLOX model family in PyTorch: YOLOX-S, YOLOX-S-Opt, YOLOX-S+-Opt and a tiny test variant.

Training and export only: torch is an optional dependency (the ``train`` extra) and nothing in
the runtime path imports this module.

Contract of ``YOLOX.forward(images)``:

- Input: (B, 3, H, W) float32, channel order BGR, values 0-255 (no mean/std), H and W
  multiples of 32 (the letterbox of ``stages.preprocess``).
- Eval mode (export / inference, the Autoware/YOLOX ``decode_in_inference=False`` form):
  (B, N, 5 + C) float32 with N = sum over strides s in (8, 16, 32) of (H/s) * (W/s); anchors
  ordered stride 8, 16, 32 and row-major (y, then x) inside a level. Columns 0-3 are the raw
  regression p0..p3 (decode: x = (p0 + gx) * s, y = (p1 + gy) * s, w = exp(p2) * s,
  h = exp(p3) * s), column 4 is sigmoid(objectness), columns 5: are sigmoid(class logits).
- Train mode: ``HeadOutput(raw, grids, strides)`` with ``raw`` (B, N, 5 + C) holding the raw
  regression AND the raw objectness/class logits (no sigmoid), ``grids`` (N, 2) float32 (gx, gy)
  and ``strides`` (N,) float32, in the same anchor order; this is what ``devkit.loss`` needs.

Variants (``VARIANTS``; build with ``build_model(name, num_classes, act)``):

- ``yolox-s``: the original YOLOX-S (depth 0.33, width 0.50, SiLU, Focus stem, CSP blocks, SPP).
- ``yolox-s-opt``: the TIER IV optimisation for TensorRT / DLA (TIER IV, 2023): ReLU
  (ReLU6 selectable), a strided-conv stem instead of the Focus slicing, no SPP (no max-pool
  kernels > 8), ELAN/C2f-style blocks instead of CSP, every channel count a multiple of 32.
- ``yolox-s+-opt``: the same with twice the depth (depth multiplier 0.67 = 2 x 0.33; "depth 2.0"
  in the talk) and ReLU6 by default, so the DLA fixed-range INT8 recipe (0..6) applies.
- ``yolox-tiny-test``: the Opt design at width 0.125 for fast tests (channels not multiples
  of 32).
"""

import math
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .._lazy import require

torch = require('torch', 'the YOLOX PyTorch model (training / export)',
                'pip install "tensorrt_yolox_py[train]" (or: pip install torch)')
nn = torch.nn

STRIDES = (8, 16, 32)
ACTIVATIONS = ('silu', 'relu', 'relu6')
#: Prior probability used to initialise the objectness and class biases (as in YOLOX).
PRIOR_PROB = 0.01


@dataclass(frozen=True)
class VariantSpec:
    """Architecture hyper-parameters of one YOLOX variant."""

    depth: float
    width: float
    act: str
    stem: str          # 'focus' (slice + 3x3 conv) or 'conv' (3x3 stride-2 conv + 3x3 conv)
    block: str         # 'csp' (YOLOX CSPLayer) or 'elan' (ELAN/C2f-style aggregation)
    spp: bool
    description: str


VARIANTS: Dict[str, VariantSpec] = {
    'yolox-s': VariantSpec(0.33, 0.50, 'silu', 'focus', 'csp', True,
                           'original YOLOX-S: SiLU, Focus stem, CSP, SPP'),
    'yolox-s-opt': VariantSpec(0.33, 0.50, 'relu', 'conv', 'elan', False,
                               'YOLOX-S-Opt: ReLU, strided-conv stem, ELAN blocks, no SPP'),
    'yolox-s+-opt': VariantSpec(0.67, 0.50, 'relu6', 'conv', 'elan', False,
                                'YOLOX-S+-Opt: depth x2, ReLU6, strided-conv stem, ELAN, '
                                'no SPP'),
    'yolox-tiny-test': VariantSpec(0.33, 0.125, 'relu6', 'conv', 'elan', False,
                                   'tiny Opt-style model for tests (width 0.125)'),
}
#: Accepted spellings of variant names (e.g. for shells where '+' is awkward).
ALIASES = {'yolox-splus-opt': 'yolox-s+-opt', 'yolox-s-plus-opt': 'yolox-s+-opt'}


def canonical_variant(name: str) -> str:
    """Return the registry key of variant ``name`` (case-insensitive, '_' == '-')."""
    key = name.strip().lower().replace('_', '-')
    key = ALIASES.get(key, key)
    if key not in VARIANTS:
        raise ValueError(f"unknown YOLOX variant '{name}' "
                         f"(known: {', '.join(VARIANTS)}; aliases: {', '.join(ALIASES)})")
    return key


def make_activation(name: str) -> 'nn.Module':
    """Return a fresh activation module: 'silu', 'relu' or 'relu6'."""
    if name == 'silu':
        return nn.SiLU(inplace=True)
    if name == 'relu':
        return nn.ReLU(inplace=True)
    if name == 'relu6':
        return nn.ReLU6(inplace=True)
    raise ValueError(f"unknown activation '{name}' (known: {', '.join(ACTIVATIONS)})")


class BaseConv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> activation, 'same' padding."""

    def __init__(self, cin: int, cout: int, ksize: int, stride: int = 1, act: str = 'silu'
                 ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ksize, stride, padding=(ksize - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.03)
        self.act = make_activation(act)

    def forward(self, x: 'torch.Tensor') -> 'torch.Tensor':
        """Apply conv, batch norm and activation."""
        return self.act(self.bn(self.conv(x)))


class Focus(nn.Module):
    """YOLOX stem: space-to-depth slicing (3 -> 12 channels at H/2) then a 3x3 conv."""

    def __init__(self, cin: int, cout: int, act: str) -> None:
        super().__init__()
        self.conv = BaseConv(cin * 4, cout, 3, 1, act)

    def forward(self, x: 'torch.Tensor') -> 'torch.Tensor':
        """Slice the four 2x2 phases into channels and convolve."""
        x = torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2],
                       x[..., 1::2, 1::2]), dim=1)
        return self.conv(x)


class ConvStem(nn.Module):
    """Opt stem: 3x3 stride-2 conv then a 3x3 conv (no Slice op; DLA friendly)."""

    def __init__(self, cin: int, cout: int, act: str) -> None:
        super().__init__()
        self.down = BaseConv(cin, cout, 3, 2, act)
        self.conv = BaseConv(cout, cout, 3, 1, act)

    def forward(self, x: 'torch.Tensor') -> 'torch.Tensor':
        """Downsample by 2 and refine."""
        return self.conv(self.down(x))


class Bottleneck(nn.Module):
    """Residual bottleneck: conv k1 (1x1 in CSP, 3x3 in ELAN) -> 3x3 conv, optional shortcut."""

    def __init__(self, channels: int, shortcut: bool, act: str, first_ksize: int) -> None:
        super().__init__()
        self.conv1 = BaseConv(channels, channels, first_ksize, 1, act)
        self.conv2 = BaseConv(channels, channels, 3, 1, act)
        self.use_add = shortcut

    def forward(self, x: 'torch.Tensor') -> 'torch.Tensor':
        """Apply the two convs and the shortcut."""
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    """YOLOX CSP layer (C3): two 1x1 branches, n bottlenecks on one, concat, 1x1 fuse."""

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool, act: str) -> None:
        super().__init__()
        hidden = int(cout * 0.5)
        self.conv1 = BaseConv(cin, hidden, 1, 1, act)
        self.conv2 = BaseConv(cin, hidden, 1, 1, act)
        self.conv3 = BaseConv(2 * hidden, cout, 1, 1, act)
        self.m = nn.Sequential(*[Bottleneck(hidden, shortcut, act, 1) for _ in range(n)])

    def forward(self, x: 'torch.Tensor') -> 'torch.Tensor':
        """Run the split, bottleneck and fuse path."""
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), dim=1))


class ELANLayer(nn.Module):
    """ELAN / C2f-style layer: every bottleneck's output is aggregated, not only the last.

    conv1 and conv2 (1x1) split the input into two ``hidden`` branches; n bottlenecks of two
    3x3 convs run in a chain on the first; the second branch and all n bottleneck outputs are
    concatenated ((n + 1) * hidden channels) and fused by a 1x1 conv.
    """

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool, act: str) -> None:
        super().__init__()
        hidden = int(cout * 0.5)
        self.conv1 = BaseConv(cin, hidden, 1, 1, act)
        self.conv2 = BaseConv(cin, hidden, 1, 1, act)
        self.conv3 = BaseConv((n + 1) * hidden, cout, 1, 1, act)
        self.m = nn.ModuleList([Bottleneck(hidden, shortcut, act, 3) for _ in range(n)])

    def forward(self, x: 'torch.Tensor') -> 'torch.Tensor':
        """Run the chain and aggregate every intermediate output."""
        outs = [self.conv2(x)]
        y = self.conv1(x)
        for block in self.m:
            y = block(y)
            outs.append(y)
        return self.conv3(torch.cat(outs, dim=1))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling (max-pool 5, 9, 13) of the original YOLOX-S."""

    def __init__(self, cin: int, cout: int, act: str, kernels: Sequence[int] = (5, 9, 13)
                 ) -> None:
        super().__init__()
        hidden = cin // 2
        self.conv1 = BaseConv(cin, hidden, 1, 1, act)
        self.m = nn.ModuleList([nn.MaxPool2d(k, 1, k // 2) for k in kernels])
        self.conv2 = BaseConv(hidden * (len(kernels) + 1), cout, 1, 1, act)

    def forward(self, x: 'torch.Tensor') -> 'torch.Tensor':
        """Pool at several scales and fuse."""
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.m], dim=1))


def _block(kind: str, cin: int, cout: int, n: int, shortcut: bool, act: str) -> 'nn.Module':
    if kind == 'csp':
        return CSPLayer(cin, cout, n, shortcut, act)
    if kind == 'elan':
        return ELANLayer(cin, cout, n, shortcut, act)
    raise ValueError(f"unknown block kind '{kind}'")


class Backbone(nn.Module):
    """CSPDarknet-style backbone (stem + 4 stages); returns the stride 8/16/32 features."""

    def __init__(self, spec: VariantSpec, act: str) -> None:
        super().__init__()
        base = int(spec.width * 64)
        n = max(round(spec.depth * 3), 1)
        stem_cls = Focus if spec.stem == 'focus' else ConvStem
        self.stem = stem_cls(3, base, act)
        self.dark2 = nn.Sequential(BaseConv(base, base * 2, 3, 2, act),
                                   _block(spec.block, base * 2, base * 2, n, True, act))
        self.dark3 = nn.Sequential(BaseConv(base * 2, base * 4, 3, 2, act),
                                   _block(spec.block, base * 4, base * 4, n * 3, True, act))
        self.dark4 = nn.Sequential(BaseConv(base * 4, base * 8, 3, 2, act),
                                   _block(spec.block, base * 8, base * 8, n * 3, True, act))
        dark5: List[nn.Module] = [BaseConv(base * 8, base * 16, 3, 2, act)]
        if spec.spp:
            dark5.append(SPPBottleneck(base * 16, base * 16, act))
        dark5.append(_block(spec.block, base * 16, base * 16, n, False, act))
        self.dark5 = nn.Sequential(*dark5)
        self.out_channels = (base * 4, base * 8, base * 16)

    def forward(self, x: 'torch.Tensor') -> Tuple['torch.Tensor', ...]:
        """Return (C3, C4, C5) at strides 8, 16, 32."""
        x = self.dark2(self.stem(x))
        c3 = self.dark3(x)
        c4 = self.dark4(c3)
        c5 = self.dark5(c4)
        return c3, c4, c5


class PAFPN(nn.Module):
    """YOLOX path-aggregation FPN (top-down then bottom-up), nearest upsampling."""

    def __init__(self, spec: VariantSpec, channels: Tuple[int, int, int], act: str) -> None:
        super().__init__()
        c3, c4, c5 = channels
        n = max(round(3 * spec.depth), 1)
        self.upsample = nn.Upsample(scale_factor=2, mode='nearest')
        self.lateral_conv0 = BaseConv(c5, c4, 1, 1, act)
        self.c3_p4 = _block(spec.block, 2 * c4, c4, n, False, act)
        self.reduce_conv1 = BaseConv(c4, c3, 1, 1, act)
        self.c3_p3 = _block(spec.block, 2 * c3, c3, n, False, act)
        self.bu_conv2 = BaseConv(c3, c3, 3, 2, act)
        self.c3_n3 = _block(spec.block, 2 * c3, c4, n, False, act)
        self.bu_conv1 = BaseConv(c4, c4, 3, 2, act)
        self.c3_n4 = _block(spec.block, 2 * c4, c5, n, False, act)

    def forward(self, feats: Tuple['torch.Tensor', ...]) -> Tuple['torch.Tensor', ...]:
        """Fuse (C3, C4, C5) into (P3, P4, P5)."""
        x2, x1, x0 = feats
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.c3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.c3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))
        pan_out1 = self.c3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.c3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0


class HeadOutput(NamedTuple):
    """Training-mode output: raw logits and the anchor geometry (see the module contract)."""

    raw: 'torch.Tensor'
    grids: 'torch.Tensor'
    strides: 'torch.Tensor'


def make_grids(feature_hw: Sequence[Tuple[int, int]], strides: Sequence[int] = STRIDES,
               device: Optional['torch.device'] = None
               ) -> Tuple['torch.Tensor', 'torch.Tensor']:
    """Return (grids (N, 2) as (gx, gy), strides (N,)) in the head's anchor order."""
    grids, strs = [], []
    for (h, w), s in zip(feature_hw, strides):
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                indexing='ij')
        grids.append(torch.stack((xs, ys), dim=-1).reshape(-1, 2).float())
        strs.append(torch.full((h * w,), float(s), device=device))
    return torch.cat(grids), torch.cat(strs)


class DecoupledHead(nn.Module):
    """YOLOX decoupled head: per level a 1x1 stem, 2 cls convs and 2 reg convs, 3 predictors."""

    def __init__(self, num_classes: int, channels: Tuple[int, int, int], width: float,
                 act: str) -> None:
        super().__init__()
        hidden = int(256 * width)
        self.num_classes = num_classes
        self.stems = nn.ModuleList([BaseConv(c, hidden, 1, 1, act) for c in channels])
        self.cls_convs = nn.ModuleList([nn.Sequential(BaseConv(hidden, hidden, 3, 1, act),
                                                      BaseConv(hidden, hidden, 3, 1, act))
                                        for _ in channels])
        self.reg_convs = nn.ModuleList([nn.Sequential(BaseConv(hidden, hidden, 3, 1, act),
                                                      BaseConv(hidden, hidden, 3, 1, act))
                                        for _ in channels])
        self.cls_preds = nn.ModuleList([nn.Conv2d(hidden, num_classes, 1) for _ in channels])
        self.reg_preds = nn.ModuleList([nn.Conv2d(hidden, 4, 1) for _ in channels])
        self.obj_preds = nn.ModuleList([nn.Conv2d(hidden, 1, 1) for _ in channels])
        self.init_biases(PRIOR_PROB)

    def init_biases(self, prior_prob: float) -> None:
        """Set objectness and class biases so that initial scores equal ``prior_prob``."""
        bias = -math.log((1 - prior_prob) / prior_prob)
        for conv in list(self.cls_preds) + list(self.obj_preds):
            nn.init.constant_(conv.bias, bias)

    def forward(self, feats: Sequence['torch.Tensor']):
        """Return the eval tensor (B, N, 5+C) or, in training, a HeadOutput."""
        outputs = []
        for k, x in enumerate(feats):
            x = self.stems[k](x)
            cls_out = self.cls_preds[k](self.cls_convs[k](x))
            reg_feat = self.reg_convs[k](x)
            reg_out = self.reg_preds[k](reg_feat)
            obj_out = self.obj_preds[k](reg_feat)
            if self.training:
                out = torch.cat([reg_out, obj_out, cls_out], 1)
            else:
                out = torch.cat([reg_out, obj_out.sigmoid(), cls_out.sigmoid()], 1)
            outputs.append(out.flatten(start_dim=2))
        raw = torch.cat(outputs, dim=2).permute(0, 2, 1)
        if not self.training:
            return raw
        feature_hw = [(int(f.shape[2]), int(f.shape[3])) for f in feats]
        grids, strides = make_grids(feature_hw, STRIDES, raw.device)
        return HeadOutput(raw, grids, strides)


class YOLOX(nn.Module):
    """Backbone + PAFPN + decoupled head; see the module docstring for the I/O contract."""

    def __init__(self, variant: str, num_classes: int = 8, act: Optional[str] = None) -> None:
        super().__init__()
        self.variant = canonical_variant(variant)
        spec = VARIANTS[self.variant]
        self.act = act or spec.act
        if self.act not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{self.act}' "
                             f"(known: {', '.join(ACTIVATIONS)})")
        if int(num_classes) < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = int(num_classes)
        self.strides = STRIDES
        self.backbone = Backbone(spec, self.act)
        self.neck = PAFPN(spec, self.backbone.out_channels, self.act)
        self.head = DecoupledHead(self.num_classes, self.backbone.out_channels, spec.width,
                                  self.act)

    def forward(self, images: 'torch.Tensor'):
        """Run the detector on (B, 3, H, W) BGR 0-255 images; see the module contract."""
        if not torch.jit.is_tracing():  # shapes are static while exporting
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(f'expected (B, 3, H, W) images, got {tuple(images.shape)}')
            h, w = int(images.shape[2]), int(images.shape[3])
            if h % 32 or w % 32:
                raise ValueError(f'input height and width must be multiples of 32, got {h}x{w}')
        return self.head(self.neck(self.backbone(images)))

    def config(self) -> Dict[str, object]:
        """Return the constructor arguments (stored in checkpoints)."""
        return {'variant': self.variant, 'num_classes': self.num_classes, 'act': self.act}


def build_model(name: str, num_classes: int = 8, act: Optional[str] = None) -> YOLOX:
    """Build variant ``name`` with ``num_classes`` classes; ``act`` overrides the default."""
    return YOLOX(name, num_classes, act)


def num_anchors(input_hw: Tuple[int, int], strides: Sequence[int] = STRIDES) -> int:
    """Return N = sum over strides of (H/s) * (W/s) for a model input (H, W)."""
    return sum((int(input_hw[0]) // s) * (int(input_hw[1]) // s) for s in strides)
