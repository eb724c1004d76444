"""The preprocessing kernels: their source files, variants, launch geometry, NVRTC compilation.

Contract (the one of ``stages/preprocess.py``; every kernel here follows it):

- Source: H x W pixels in one of ``image.ENCODINGS`` (bgr8, rgb8, bgra8, rgba8, mono8, yuv422
  = UYVY, yuv422_yuy2 = YUYV), rows ``pitch`` bytes apart (ROS ``step``), pixels packed inside
  a row, in device memory.
- Letterbox: ``(rw, rh)`` from ``compute_letterbox``; bilinear sampling with OpenCV
  INTER_LINEAR semantics: source coordinate ``(d + 0.5) * f - 0.5`` with the per-axis factor
  ``f = W / rw`` (``H / rh``), floored; a negative index clamps to 0 with weight 0, an index
  >= size - 1 clamps to size - 1 with weight 0. Each tap is converted to BGR first (OpenCV's
  conversions: alpha dropped, gray replicated, BT.601 video-range YUV in 20-bit fixed point),
  then blended. The resized image sits at the TOP-LEFT of the (in_h, in_w) canvas; the rest
  is 114.
- Output: (3, in_h, in_w) planar (NCHW without the batch axis), channel order BGR, values 0-255
  unnormalised, float32 or float16 (IEEE half, written as its 16-bit pattern). Every output
  element is written.

Sources (CUDA C next to this file; ``load_source`` inlines the ``#include``):

- ``sampling.cuh``: the device helpers: ``axis_tap``, THE bilinear ``blend``, one tap loader
  per encoding (``load_px<FMT>``), the 32-bit word loads of 3-byte pixels.
- ``preprocess.cu``: the runtime kernels (``*_f32`` / ``*_f16`` by output type):
  ``fused_c1_*`` (bgr8 / rgb8, the default: each tap row read as 2-3 aligned 32-bit words with
  streaming cache hints, ``ld.global.cs`` / ``st.global.cs``; needs W >= 2 and a 4-byte aligned
  source), ``fused_w1_*`` (the same words through the read-only path), ``fused_b1_*`` (byte
  loads, any alignment), ``fused_fmt_*`` (every other encoding, chosen by an ``fmt`` argument:
  the conversion happens in the taps of the same single pass), ``fused_batch_*`` (several
  images in one launch; ``blockIdx.z`` selects the image, whose geometry, pointers and
  encoding come from a device table of ``BATCH_DESC_DTYPE`` records).
- The benchmark-only variants (more pixels or rows per thread, shared-memory staging) and the
  seed's unfused 4-kernel chain are in ``benchmarks/cuda_variants/`` and extend ``RUNTIME_KERNELS``
  (``KernelSet``) there; they are never compiled at run time.
"""

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

from .._lazy import require
from ..image import Encoding
from ..stages.preprocess import LetterboxParams

INSTALL_HINT = ('pip install "tensorrt_yolox_py[cuda13]" (driver 580+) or "[cuda12]" (older '
                'drivers, JetPack 6); `python -m tensorrt_yolox_py.cuda.driver` names the one '
                'for this machine (docs/platforms.md)')
PAD_VALUE = 114
#: Threads per block of every 2-D kernel (x, y); 256 threads, a warp spans 32 pixels of a row.
BLOCK = (128, 2)

HERE = Path(__file__).resolve().parent


def load_source(paths: Sequence[Path], include_dirs: Sequence[Path] = (HERE,)) -> str:
    """Return the CUDA C text of ``paths`` (in order), local ``#include "..."`` inlined once."""
    seen: set = set()

    def read(path: Path) -> str:
        lines = []
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith('#include "'):
                name = stripped.split('"')[1]
                found = next((folder / name for folder in (path.parent, *include_dirs)
                              if (folder / name).is_file()), None)
                if found is None:
                    raise FileNotFoundError(f'{path}: include "{name}" not found')
                if found.resolve() not in seen:
                    seen.add(found.resolve())
                    lines.append(read(found))
            elif stripped != '#pragma once':
                lines.append(line)
        return '\n'.join(lines)

    return '\n'.join(read(Path(p)) for p in paths) + '\n'


#: The runtime kernels' names (preprocess.cu).
KERNEL_NAMES = (
    'fused_b1_f32', 'fused_b1_f16', 'fused_w1_f32', 'fused_w1_f16', 'fused_c1_f32',
    'fused_c1_f16', 'fused_fmt_f32', 'fused_fmt_f16', 'fused_batch_f32', 'fused_batch_f16',
    'fused_batch_nhwc_f32', 'fused_batch_nhwc_f16',
)


@dataclass(frozen=True)
class FusedVariant:
    """One fused-kernel variant: its loads and output pixels (and rows) per thread.

    ``loads``: 'bytes', 'words' (32-bit words), 'cs-words' (words with streaming cache
    hints) or 'smem' (staged in shared memory); its first letter names the kernel.
    """

    name: str
    loads: str
    pixels_per_thread: int
    rows_per_thread: int = 1

    def kernel_name(self, dtype: np.dtype) -> str:
        """Return the CUDA kernel name of this variant for output ``dtype``."""
        suffix = dtype_suffix(dtype)
        rows = f'r{self.rows_per_thread}' if self.rows_per_thread > 1 else ''
        return f'fused_{self.loads[0]}{self.pixels_per_thread}{rows}_{suffix}'


#: The runtime variants (bgr8 / rgb8): 'c1' the default, 'w1' and 'b1' where it does not fit.
RUNTIME_VARIANTS = (FusedVariant('b1', 'bytes', 1), FusedVariant('w1', 'words', 1),
                    FusedVariant('c1', 'cs-words', 1))
#: Variants whose loads are 32-bit words (need W >= 2 and a 4-byte aligned source).
WORD_LOADS = ('words', 'cs-words', 'smem')
#: Shared-memory words per staged source row of the benchmark's 's1' kernels.
SMEM_ROW_WORDS = 512
#: Default variant per output dtype (the fastest measured on the H100, see
#: benchmarks/results/preprocess_h100.md), used when its requirements hold.
DEFAULT_VARIANT = {'float32': 'c1', 'float16': 'c1'}


@dataclass(frozen=True)
class KernelSet:
    """CUDA sources compiled together, the kernels they define, and their fused variants."""

    name: str
    sources: Tuple[Path, ...]
    kernel_names: Tuple[str, ...]
    variants: Dict[str, Tuple[FusedVariant, ...]] = field(default_factory=dict)

    def source(self) -> str:
        """Return the CUDA C to compile (``#include`` inlined)."""
        return load_source(self.sources)

    def variant_names(self, dtype: np.dtype) -> Tuple[str, ...]:
        """Return the names of the fused variants for output ``dtype``."""
        return tuple(v.name for v in self.variants[np.dtype(dtype).name])

    def compile(self, arch: str, lineinfo: bool = False) -> object:
        """Compile with NVRTC for ``arch`` (cached per process; see ``compile_kernels``)."""
        return compile_source(self.source(), arch, lineinfo)


#: What the package compiles at run time.
RUNTIME_KERNELS = KernelSet('runtime', (HERE / 'preprocess.cu',), KERNEL_NAMES,
                            {'float32': RUNTIME_VARIANTS, 'float16': RUNTIME_VARIANTS})


def dtype_suffix(dtype: np.dtype) -> str:
    """Return the kernel-name suffix ('f32' / 'f16') of output ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return 'f32'
    if dtype == np.float16:
        return 'f16'
    raise ValueError(f'output dtype must be float32 or float16, got {dtype}')


def smem_span_fits(sx: float) -> bool:
    """Return True when a 128-pixel block's source span (x factor ``sx``) fits the 's1' rows.

    The span of 128 output pixels is at most 3 * (127 * sx + 3) bytes, plus up to 6 bytes of
    word alignment.
    """
    return 3 * (127 * sx + 3) + 6 <= 4 * SMEM_ROW_WORDS


def variant_fits(variant: FusedVariant, src_w: int, src_ptr: int, dst_w: int,
                 dst_ptr: int, dtype: np.dtype, sx: float = 1.0) -> bool:
    """Return True when ``variant``'s alignment / size requirements hold for this launch."""
    if variant.loads in WORD_LOADS and (src_w < 2 or src_ptr % 4):
        return False
    if variant.loads == 'smem' and not smem_span_fits(sx):
        return False
    if variant.pixels_per_thread > 1:
        if dst_w % variant.pixels_per_thread:
            return False
        if dst_ptr % 16:
            return False
    return True


def choose_variant(dtype: np.dtype, src_w: int, src_ptr: int, dst_w: int, dst_ptr: int,
                   preferred: str = 'auto', sx: float = 1.0,
                   kernels: KernelSet = RUNTIME_KERNELS) -> FusedVariant:
    """Pick the fused variant: ``preferred`` (or the default) if it fits, else one that does.

    The byte-load, one-pixel-per-thread variant ('b1') fits every launch and is the last resort.
    """
    variants = {v.name: v for v in kernels.variants[np.dtype(dtype).name]}
    name = DEFAULT_VARIANT[np.dtype(dtype).name] if preferred == 'auto' else preferred
    if name not in variants:
        raise ValueError(f"unknown fused variant '{name}' (known: {', '.join(variants)})")
    for candidate in (variants[name], variants['w1'], variants['b1']):
        if variant_fits(candidate, src_w, src_ptr, dst_w, dst_ptr, dtype, sx):
            return candidate
    return variants['b1']  # pragma: no cover - b1 always fits


def launch_geometry(width: int, height: int, pixels_per_thread: int = 1, depth: int = 1,
                    block: Tuple[int, int] = BLOCK, rows_per_thread: int = 1
                    ) -> Tuple[Tuple[int, int, int], Tuple[int, int, int]]:
    """Return ``(grid, block)`` covering width x height x depth pixels.

    Each thread covers ``pixels_per_thread`` consecutive pixels of a row (width must be a
    multiple) and ``rows_per_thread`` consecutive rows (the last rows may be partial).
    """
    if min(width, height, pixels_per_thread, depth, rows_per_thread) < 1:
        raise ValueError(f'launch needs positive sizes, got {width}x{height}x{depth} '
                         f'with {pixels_per_thread}x{rows_per_thread} pixels per thread')
    if width % pixels_per_thread:
        raise ValueError(f'width {width} is not a multiple of {pixels_per_thread}')
    threads_x = width // pixels_per_thread
    threads_y = -(-height // rows_per_thread)
    grid = (-(-threads_x // block[0]), -(-threads_y // block[1]), depth)
    return grid, (block[0], block[1], 1)


Geometry = Tuple[Tuple[int, int, int], Tuple[int, int, int]]


def linear_geometry(n: int, block: int = 256) -> Geometry:
    """Return ``(grid, block)`` for a 1-D kernel over ``n`` elements."""
    if n < 1:
        raise ValueError(f'launch needs n >= 1, got {n}')
    return (-(-n // block), 1, 1), (block, 1, 1)


def axis_factors(lb: LetterboxParams) -> Tuple[np.float32, np.float32]:
    """Return the per-axis OpenCV factors (W / rw, H / rh) as float32 kernel arguments."""
    return np.float32(lb.src_w / lb.resized_w), np.float32(lb.src_h / lb.resized_h)


def fused_args(src_ptr: int, pitch: int, dst_ptr: int, lb: LetterboxParams,
               swap_rb: bool, channels: int = 3) -> tuple:
    """Pack the arguments of a ``fused_*`` kernel (order and C types as in FUSED_PARAMS).

    Pointers are Python ints (cuda.core passes them as pointer-sized values); every scalar is a
    NumPy int32 / float32 so it is passed with the C type the kernel declares. ``fused_fmt_*``
    takes one more int32, the encoding's ``kernel_format``.
    """
    if pitch < channels * lb.src_w:
        raise ValueError(f'row pitch {pitch} is smaller than {channels} * width '
                         f'({channels * lb.src_w})')
    sx, sy = axis_factors(lb)
    i32 = np.int32
    return (int(src_ptr), i32(lb.src_w), i32(lb.src_h), i32(pitch), int(dst_ptr),
            i32(lb.in_w), i32(lb.in_h), i32(lb.resized_w), i32(lb.resized_h), sx, sy,
            i32(1 if swap_rb else 0))


#: Layout of the C ``struct BatchDesc`` (56 bytes, 8-byte aligned).
BATCH_DESC_DTYPE = np.dtype([
    ('src', np.uint64), ('dst', np.uint64),
    ('src_w', np.int32), ('src_h', np.int32), ('pitch', np.int32), ('rw', np.int32),
    ('rh', np.int32), ('swap_rb', np.int32), ('use_words', np.int32), ('fmt', np.int32),
    ('sx', np.float32), ('sy', np.float32),
], align=True)


def pack_batch_descriptor(out: np.ndarray, src_ptr: int, pitch: int, dst_ptr: int,
                          lb: LetterboxParams, encoding: Encoding) -> None:
    """Fill one ``BATCH_DESC_DTYPE`` record (a 0-d or 1-element view) for ``fused_batch_*``.

    bgr8 / rgb8 with a 4-byte aligned source take the word loads (``use_words``); every other
    case the tap loaders of its encoding (``fmt``).
    """
    if pitch < encoding.channels * lb.src_w:
        raise ValueError(f'row pitch {pitch} is smaller than {encoding.channels} * width '
                         f'({encoding.channels * lb.src_w})')
    sx, sy = axis_factors(lb)
    out['src'] = src_ptr
    out['dst'] = dst_ptr
    out['src_w'], out['src_h'], out['pitch'] = lb.src_w, lb.src_h, pitch
    out['rw'], out['rh'] = lb.resized_w, lb.resized_h
    out['swap_rb'] = 1 if encoding.swap_rb else 0
    out['use_words'] = 1 if (encoding.packed_bgr and lb.src_w >= 2 and src_ptr % 4 == 0
                             and pitch % 4 == 0) else 0
    out['fmt'] = encoding.kernel_format
    out['sx'], out['sy'] = sx, sy


# ---- compilation (once per process, source and options) ----
_CACHE: Dict[Tuple[str, str, Tuple[str, ...]], object] = {}
_CACHE_LOCK = threading.Lock()


def compile_source(source: str, arch: str, lineinfo: bool = False) -> object:
    """Compile CUDA C ``source`` with NVRTC for ``arch`` ('sm_90', ...); return the ObjectCode.

    Cached per process, keyed by (source hash, arch, options); thread-safe. Needs NVRTC, no GPU.
    """
    core = require('cuda.core', 'CUDA preprocessing', INSTALL_HINT)
    options = ('lineinfo',) if lineinfo else ()
    key = (hashlib.sha256(source.encode()).hexdigest(), arch, options)
    with _CACHE_LOCK:
        module = _CACHE.get(key)
        if module is None:
            program = core.Program(source, 'c++', options=core.ProgramOptions(
                name='tensorrt_yolox_preprocess', arch=arch, std='c++17', lineinfo=lineinfo))
            try:
                module = program.compile('cubin')
            finally:
                program.close()
            _CACHE[key] = module
        return module


def compile_kernels(arch: str, lineinfo: bool = False) -> object:
    """Compile the runtime kernels (``RUNTIME_KERNELS``) for ``arch``."""
    return RUNTIME_KERNELS.compile(arch, lineinfo)


class LoadedKernels:
    """A ``KernelSet`` compiled for one GPU and loaded there; launches kernels by name.

    The one place the preprocessing reaches cuda.core: ``launch(name, geometry, stream,
    *args)`` runs kernel ``name`` on a CUDA stream given by its handle (an int, e.g. from
    ``cuda.memory.CudaMemory.stream_create``); ``prepare(name, geometry)`` returns what
    ``launch_prepared(prepared, stream, args)`` needs, so a steady-state call only launches.
    ``activate()`` makes the GPU current on the calling thread.
    """

    def __init__(self, kernels: KernelSet, gpu_id: int = 0) -> None:
        self._core = require('cuda.core', 'CUDA preprocessing', INSTALL_HINT)
        self.kernel_set = kernels
        self.device = self._core.Device(int(gpu_id))
        self.device.set_current()
        self.device_name = str(self.device.name)
        self.arch = f'sm_{self.device.arch}'
        self._module = kernels.compile(self.arch)
        self._kernels: Dict[str, object] = {}
        self._configs: Dict[Geometry, object] = {}
        self._streams: Dict[int, object] = {}

    def activate(self) -> None:
        """Make this GPU (its primary context) current on the calling thread."""
        self.device.set_current()

    @property
    def core(self) -> object:
        """The cuda.core module (for the benchmark lab)."""
        return self._core

    def stream(self, handle: int) -> object:
        """Return a cuda.core Stream over stream handle ``handle`` (cached, not owned)."""
        stream = self._streams.get(handle)
        if stream is None:
            wrap = getattr(self._core.Stream, 'from_handle', None)
            stream = (wrap(int(handle)) if wrap is not None
                      else self.device.create_stream(_StreamHandle(int(handle))))
            self._streams[handle] = stream
        return stream

    def kernel(self, name: str) -> object:
        """Return kernel ``name`` of the loaded module (cached)."""
        kernel = self._kernels.get(name)
        if kernel is None:
            kernel = self._kernels[name] = self._module.get_kernel(name)
        return kernel

    def prepare(self, name: str, geometry: Geometry) -> Tuple[object, object]:
        """Return the (launch config, kernel) of kernel ``name`` over ``geometry`` (cached)."""
        kernel = self.kernel(name)
        config = self._configs.get(geometry)
        if config is None:
            grid, block = geometry
            config = self._configs[geometry] = self._core.LaunchConfig(grid=grid, block=block)
        return config, kernel

    def launch_prepared(self, prepared: Tuple[object, object], stream: int,
                        args: Sequence[object]) -> None:
        """Launch a ``prepare``-d kernel with ``args`` on stream handle ``stream``."""
        self._core.launch(self.stream(stream), prepared[0], prepared[1], *args)

    def launch(self, name: str, geometry: Geometry, stream: int, *args: object) -> None:
        """Launch kernel ``name`` over ``geometry`` with ``args`` on stream handle ``stream``."""
        self.launch_prepared(self.prepare(name, geometry), stream, args)

    def forget_stream(self, handle: int) -> None:
        """Drop the wrapper of a stream about to be destroyed (its owner destroys it)."""
        self._streams.pop(handle, None)


class _StreamHandle:
    """A foreign stream handle in the ``__cuda_stream__`` protocol (older cuda.core)."""

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __cuda_stream__(self) -> Tuple[int, int]:
        return 0, self.handle


def cached_modules() -> int:
    """Return how many compiled modules the cache holds (for tests)."""
    with _CACHE_LOCK:
        return len(_CACHE)
