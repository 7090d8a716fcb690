"""2-D convolution with PyTorch's ``conv2d`` semantics: an implicit-GEMM kernel built on the GEMM's
tiling for the general case, a direct kernel for depthwise layers and small channel counts."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import xgpu
from xgpu import Array
from xgpu.errors import InvalidArgumentError, ShapeError, UnsupportedDtypeError
from xgpu.kernels.gemm import DTYPES, check_accumulate, compile_variant, config_for, gemm, matmul
from xgpu.kernels.gemm.tuning import GemmConfig, acc_itemsize, adapt, rule_for
from xgpu.plugin import device_class, same_device

from .tuning import RULES, TRAITS, ConvTraits, window_class

__all__ = ["ConvPlan", "conv2d", "plan"]

log = logging.getLogger(__name__)
_HERE = Path(__file__).parent
IGEMM = xgpu.KernelTemplate(_HERE / "conv2d_igemm.mako")
DIRECT = xgpu.KernelTemplate(_HERE / "conv2d_direct.mako")
PERMUTE = xgpu.KernelTemplate(_HERE / "permute.mako")
TRANSPOSE = xgpu.KernelTemplate(_HERE / "transpose.mako")
PAD = xgpu.KernelTemplate(_HERE / "pad.mako")
IM2COL = xgpu.KernelTemplate(_HERE / "im2col.mako")
DEPTHWISE = xgpu.KernelTemplate(_HERE / "conv2d_dw.mako")
#: the depthwise kernel's buffer of input rows (conv2d_dw.mako), per work-item: at most this many bytes
#: (a CPU core's L2 share), fewer rows a work-item where the image is large
DEPTHWISE_BUFFER_BYTES = 48 << 10
#: ... and where whole planes are smaller than this many output pixels, several planes a work-item
DEPTHWISE_PIXELS = 8192
#: NCHW layers with at most this many input channels per group (RGB stems, grouped layers) run
#: conv2d_dw.mako on CPU runtimes, FEW_CHANNELS_BLOCK output channels a work-item: an implicit GEMM
#: reduces over too little there. Measured here (GF/s, Intel / PoCL): the 3x3 stride-2 stem of 3 channels
#: at 512x512, 14 / 15 as an implicit GEMM, 42-58 / 43-77 so; N8 C64 56x56 K64 3x3 in 4 groups (16
#: channels each), 38 / 43 and 105 / 83. With 64 channels (no groups) it was faster on Intel's runtime
#: (112 against 83) but slower on PoCL (96 against 105): those stay implicit GEMMs.
FEW_CHANNELS_IN = 16
FEW_CHANNELS_BLOCK = 8
#: ... unless a block's filter taps (its private array) would be more than this many elements
FEW_CHANNELS_TAPS = 1536
#: NCHW layers with at most this many output pixels per image (14x14 and smaller), one group and no bias
#: run on CPU runtimes as im2col + the GEMM: the implicit GEMM has too few rows per work-group there
IM2COL_PIXELS = 196
#: ... and so do those with at least this many output channels (whatever their pixels): there the GEMM's
#: panel kernel reuses each copied slice of the im2col matrix over enough rows (output channels) to beat the
#: implicit GEMM; with 64 it does not. Measured here, GF/s implicit GEMM -> im2col + GEMM (PoCL / Intel):
#: N1 C128 56x56 K128 3x3 stride 2, 73 -> 101 / 79 -> 108; N8 C128 28x28 K128 3x3, 118 -> 135 / 119 -> 130;
#: N1 C256 28x28 K256 3x3 dilation 2, 94 -> 144 / 99 -> 162; but N8 C64 56x56 K64 3x3, 136 -> 112 / 142 -> 118
IM2COL_CHANNELS = 128
#: ... when the im2col matrix takes at most this many bytes
IM2COL_BYTES = 64 << 20
LAYOUTS = ("NCHW", "NHWC")
# below these, an implicit GEMM has too little to reduce over or too few columns to fill its tiles; an
# RGB stem (3 x 3 x 3 = 27 products, 16-32 output channels) is an implicit GEMM with its column tile cut
# to the layer (fit_columns): 1 x 3 x 512 x 512 -> 32 channels, stride 2, on Intel 134 against 451 ms
# with the direct kernel (a loaded machine)
MIN_IGEMM_REDUCTION = 16  # Cg * R * S
MIN_IGEMM_CHANNELS_IN = 2  # Cg: depthwise layers run the direct kernel
MIN_IGEMM_CHANNELS_OUT = 4
# a barrier after every window step pays only when each step reduces over this many channels
MIN_CHANNELS_PER_BARRIER = 32


@dataclass(frozen=True)
class ConvPlan:
    """What ``conv2d`` runs for a shape on a device: ``kernel`` is ``"implicit-gemm"`` or ``"direct"``."""

    kernel: str
    config: GemmConfig | None
    reason: str

    @property
    def label(self) -> str:
        return f"{self.kernel} {self.config.label}" if self.config else self.kernel


def igemm_config(device: xgpu.Device, dtype: np.dtype) -> GemmConfig:
    """The implicit-GEMM variant the tuning table (conv2d/tuning.py) gives the device and dtype."""
    return config_for(device, dtype, rules=RULES)


def tuned_igemm_config(device: xgpu.Device, dtype: np.dtype, window: str) -> GemmConfig | None:
    """The variant ``xgpu tune conv2d`` stored for this device, dtype and filter ``window`` (``"window 3x3"``)."""
    from xgpu.tuning import lookup

    found = lookup("conv2d", device, dtype, window)
    return adapt(GemmConfig(**found), np.dtype(dtype).itemsize, False) if found else None


def traits(device: xgpu.Device) -> ConvTraits:
    """How conv2d lays data out for the kernels on ``device`` (conv2d/tuning.py)."""
    return rule_for(device, TRAITS)


def all_igemm_variants() -> list[tuple[np.dtype, GemmConfig]]:
    """Every (dtype, variant) the implicit-GEMM kernel can be given on some device class: the tables'
    variants, and those cut to 8 and 32 output channels per group (``fit_columns``; ``fit_rows`` only
    takes rows per work-item away: the parity cases with few pixels run it on every device)."""
    seen = []
    for _kind, _words, base in RULES:
        for dtype in DTYPES:
            cfg = adapt(base, dtype.itemsize, False)
            for variant in (cfg, fit_columns(cfg, 8), fit_columns(cfg, 32)):
                if (dtype, variant) not in seen:
                    seen.append((dtype, variant))
    return seen


def plan(device: xgpu.Device, dtype: Any, cin_per_group: int, cout_per_group: int,
         kernel_size: tuple[int, int] = (3, 3), *, pointwise: bool = False) -> ConvPlan:
    """Which kernel ``conv2d`` runs for a layer with this kernel size (kH, kW), and which variant (the
    one ``xgpu tune conv2d`` stored for the window, else the tuning table's). ``pointwise``: the layer is
    a plain matrix product (1x1, stride 1, no padding, one group, no bias), which xgpu's GEMM runs."""
    dtype = np.dtype(dtype)
    reduction = cin_per_group * kernel_size[0] * kernel_size[1]
    if reduction < MIN_IGEMM_REDUCTION:
        return ConvPlan("direct", None, f"reduces over {reduction} products per output (< {MIN_IGEMM_REDUCTION})")
    if cin_per_group < MIN_IGEMM_CHANNELS_IN:
        return ConvPlan("direct", None, f"{cin_per_group} input channel per group (depthwise)")
    if cout_per_group < MIN_IGEMM_CHANNELS_OUT:
        return ConvPlan("direct", None, f"{cout_per_group} output channels per group (< {MIN_IGEMM_CHANNELS_OUT})")
    if pointwise and tuple(kernel_size) == (1, 1):
        return ConvPlan("gemm", None, "1x1, one group, no bias: a matrix product on the data as it lies, no "
                                      "layout change (with a stride or padding: on a copy of the pixels it reads)")
    tuned = tuned_igemm_config(device, dtype, window_class(*kernel_size))
    cfg = tuned or igemm_config(device, dtype)
    if cfg.kc and cin_per_group < MIN_CHANNELS_PER_BARRIER:
        cfg = replace(cfg, kc=0)
    if not tuned:
        cfg = fit_columns(cfg, cout_per_group)
    return ConvPlan("implicit-gemm", cfg, "general case" + (", tuned variant (xgpu tune conv2d)" if tuned else ""))


def fit_columns(cfg: GemmConfig, columns: int) -> GemmConfig:
    """``cfg`` with its column tile cut to the ``columns`` (output channels per group) a layer has, the
    freed registers given to more rows per work-item: a grouped layer's Kg = 16 in a 64-column tile
    would compute four times its work."""
    if columns >= cfg.tn:
        return cfg
    # accumulators per work-item, in registers (vectors of vw)
    acc = cfg.wm * (cfg.wn // cfg.vw)
    if cfg.vw > 1:  # one work-item across the columns, in vectors
        vw = cfg.vw if columns > cfg.vw // 2 else max(4, cfg.vw // 2)
        wn = -(-columns // vw) * vw
        tn = wn
    else:  # strided columns: keep the lanes along dimension 0, fewer columns each
        tx = cfg.tn // cfg.wn
        wn = -(-columns // tx)
        tn, vw = tx * wn, cfg.vw
    if tn >= cfg.tn:
        return cfg
    wm = max(1, min(16, acc // (wn // vw)))
    wm = 1 << (wm.bit_length() - 1)
    ty = cfg.tm // cfg.wm
    return replace(cfg, tn=tn, wn=wn, vw=vw, wm=wm, tm=wm * ty)


def fit_rows(cfg: GemmConfig, rows: int) -> GemmConfig:
    """``cfg`` with fewer rows per work-item while its row tile is larger than the layer's output pixels
    (batch 1, 7x7 layers: 49 rows): a tile of at most ``rows`` runs on the fast path, the last one
    shifted back, where a larger one takes the clamped edge path."""
    while cfg.tm > rows and cfg.wm > 1:
        cfg = replace(cfg, wm=cfg.wm // 2, tm=cfg.tm // 2)
    return cfg


def is_pointwise(kernel_size: tuple[int, int], stride: tuple[int, int], pads: tuple[int, int, int, int], groups: int,
                 has_bias: bool) -> bool:
    """Whether a layer is a plain matrix product (1x1, one group, no bias): ``plan``'s ``pointwise``. A
    stride or padding is a copy that keeps every stride-th pixel first (pad.mako), and then the product."""
    return (*kernel_size, groups, has_bias) == (1, 1, 1, False)


def _index(*values: int) -> tuple[np.int32, ...]:
    """Kernel index arguments as index_t's own type (int32), which a launch passes on unchecked: a Python
    int is converted and range-checked per argument (about 20 us each, 19 of them for the implicit GEMM)."""
    return tuple(np.int32(v) for v in values)


#: kernel launches bound to their index arguments and sizes (xgpu.Kernel.bind), by everything they were
#: worked out from: a layer called again launches its copies and kernels without working them out again
_BOUND: dict[tuple, Any] = {}


def _bound(key: tuple, make: Callable[[], Any]) -> Any:
    """``_BOUND[key]``, made by ``make()`` the first time."""
    found = _BOUND.get(key)
    if found is None:
        if len(_BOUND) > 4096:  # a process sweeping many layers: forget the old ones
            _BOUND.clear()
        found = _BOUND[key] = make()
    return found


def _pair(value: Any, name: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise InvalidArgumentError(f"{name} must be an int or a pair of ints, not {value!r}")
    if min(pair) < minimum:
        raise InvalidArgumentError(f"{name} must be at least {minimum}, got {value!r}")
    return pair


def _permute(device, dtype, src: Array, out_shape: tuple[int, int, int, int], strides: tuple[int, ...],
             d3p: int | None = None) -> Array:
    """A permutation of ``src`` into ``out_shape``; with ``d3p``, the last axis is that long, zeros past
    ``out_shape[3]``."""
    d0, d1, d2, d3 = out_shape
    d3p = d3p or d3
    out = xgpu.empty((d0, d1, d2, d3p), dtype, device)
    if out.size:
        def make():
            kernel = xgpu.compile(PERMUTE, device, defines={"dtype": dtype}).permute
            lanes = min(64, 1 << max(d3p - 1, 0).bit_length())
            depth = max(1, min(16, kernel.max_work_group_size // lanes, device.max_work_item_sizes[1],
                               1 << max(d2 - 1, 0).bit_length()))
            return kernel.bind(None, None, *_index(d0, d1, d2, d3, *strides, d3p), global_size=(d3p, d2, d0 * d1),
                               local_size=(lanes, depth, 1))

        _bound(("permute", device, dtype, out_shape, tuple(strides), d3p), make)(out, src)
    return out


def _im2col_gemm(device, dtype, x: Array, w: Array, pads, stride, dilation, out_shape, tr: ConvTraits,
                 acc16: bool = False) -> Array:
    """An NCHW layer (one group, no bias) as im2col (``im2col.mako``, on the padded input) and the batched
    GEMM y[n] (K x P*Q) = w (K x C*R*S) @ col[n] (C*R*S x P*Q), which writes NCHW directly (``acc16``:
    with float16 sums)."""
    from xgpu.kernels.gemm import _launch

    n, k, p, q = out_shape
    _k, c, r, s = w.shape
    xp = _pad(device, dtype, x, "NCHW", pads, "NCHW", tr.pad_row_loop) if any(pads) else x
    hp, wp = xp.shape[2:]
    col = xgpu.empty((n, c * r * s, p * q), dtype, device)

    def make():
        kernel = xgpu.compile(IM2COL, device, defines={"dtype": dtype, "kr": r, "ks": s, "ksh": stride[0],
                                                        "ksw": stride[1], "kdh": dilation[0], "kdw": dilation[1]}).im2col
        return kernel.bind(None, None, *_index(c, hp, wp, p, q), global_size=(n * c * r * s, 1, 1), local_size=(1, 1, 1))

    _bound(("im2col", device, dtype, xp.shape, w.shape, tuple(stride), tuple(dilation), p, q), make)(col, xp)
    y = xgpu.empty(out_shape, dtype, device)
    crs = c * r * s
    _launch(y, w, col, k, p * q, crs, n, 1.0, 0.0, False, False, (0, crs * p * q, k * p * q), acc16=acc16)
    return y


def depthwise_lanes(device: xgpu.Device, dtype: np.dtype) -> int:
    """Output pixels per vector in the depthwise kernel: the CPU's native vector of the compute type."""
    lanes = device_class(device).simd_lanes or 8
    return max(2, lanes * 4 // max(4, np.dtype(dtype).itemsize))


def _half_staged(device: xgpu.Device, dtype: np.dtype, width: int, sw: int, vw: int) -> bool:
    """Whether conv2d_dw.mako converts a float16/bfloat16 layer's input rows (``width`` pixels, column stride
    ``sw``) into a staging row first: with a stride of 2, rows shorter than two vectors (wider ones are split
    into their phases as they are converted, two vectors at a time); with more, as ConvTraits says."""
    if np.dtype(dtype).itemsize != 2 or sw == 1:
        return False
    return width <= (2 * vw if sw == 2 else traits(device).stage_half_width)


def _run_prepared(launch: tuple, x: Array, w: Array, bias: Array) -> Array:
    """A kernel launch worked out beforehand: (the output's shape, the kernel bound to its index arguments and
    sizes, taking y, x, w and bias)."""
    out_shape, bound = launch
    y = xgpu.empty(out_shape, x.dtype, x.device)
    bound(y, x, w, bias)
    return y


def _depthwise_launch(device, dtype, x_shape, w_shape, has_bias: bool, pads, stride, dilation, out_shape, kg: int,
                      cg: int = 1) -> tuple | None:
    """An NCHW layer with few input channels per group (``cg``: 1 for depthwise layers, 3 for an RGB
    stem) through conv2d_dw.mako: a work-item per group and block of rows, reading its input rows
    through a padded buffer in local memory, then computing the group's output channels from it, one at
    a time in depthwise layers, up to FEW_CHANNELS_BLOCK together otherwise. None where even one output
    row's input rows do not fit that buffer (very wide images), or where a block's filter taps would be
    more than FEW_CHANNELS_TAPS (large windows over 16 channels): the direct kernel or the implicit GEMM.
    The launch (see :func:`_run_prepared`), worked out from the shapes."""
    n, k, p, q = out_shape
    c, h, wd = x_shape[1:]
    r, s = w_shape[2:]
    (sh, sw), (dh, dw) = stride, dilation
    vw = depthwise_lanes(device, dtype)
    acc_bytes = acc_itemsize(dtype)
    # output channels a work-item computes together: each vector of input read once for all of them
    # (half of them where window rows are long: the 7x7 RGB stem ran 70-80 GF/s with 4, 55 with 8)
    block = FEW_CHANNELS_BLOCK if s <= 5 else FEW_CHANNELS_BLOCK // 2
    kb = 1 if cg == 1 else max(b for b in range(1, block + 1) if kg % b == 0)
    if kb * cg * r * s > max(FEW_CHANNELS_TAPS, r * s):  # the taps live in the work-item's private memory
        return None
    wb = sw * (-(-q // vw) * vw + (s - 1) * dw // sw)  # sw phases of a padded row (conv2d_dw.mako)
    budget = min(DEPTHWISE_BUFFER_BYTES, device.local_mem_bytes // 2)
    rows_fit = (budget // (cg * wb * acc_bytes) - (r - 1) * dh - 1) // sh + 1
    if rows_fit < 1:
        return None
    rb = min(p, rows_fit)
    units = n * (k // kg)  # (image, group): the group's input rows copied once for its kg output channels
    # enough work-items for every core a few times over; small planes several to a work-item
    cores = device.compute_units
    while rb > 1 and units * -(-p // rb) < 4 * cores:
        rb = -(-rb // 2)
    planes = 1
    if rb == p:
        planes = max(1, min(DEPTHWISE_PIXELS // (p * q * kg), units // (8 * cores)))
    nrows = (rb - 1) * sh + (r - 1) * dh + 1
    staged = _half_staged(device, dtype, wd, sw, vw)  # a staging row after the planes' rows
    kernel = xgpu.compile(DEPTHWISE, device, defines={"dtype": dtype, "kr": r, "ks": s, "ksh": sh, "ksw": sw,
                                                       "kdh": dh, "kdw": dw, "kcg": cg, "kkg": kg, "kb": kb,
                                                       "vw": vw, "has_bias": has_bias, "stage": staged}).conv2d_dw
    return out_shape, kernel.bind(None, None, None, None, *_index(n, c, h, wd, k, p, q, pads[0], pads[2], rb, wb, planes),
                                  global_size=(-(-units // planes), -(-p // rb), 1), local_size=(1, 1, 1),
                                  local_mem={"rows": (cg * nrows + int(staged)) * wb * acc_bytes})


def _rows_form(device: xgpu.Device) -> bool:
    """Whether the padding copy runs a work-item per row (CPU runtimes) rather than per element."""
    return device_class(device).type == "cpu" and not device.is_simulator


def _pad(device, dtype, x: Array, layout: str, pads: tuple[int, int, int, int], out_layout: str,
         row_loop: bool, stride: tuple[int, int] = (1, 1), phases: int = 1) -> Array:
    """x (in ``layout``) copied to ``out_layout`` with its padding (top, bottom, left, right) as zeros;
    ``row_loop``: work-items walk rows of pixels (NHWC out; ConvTraits.pad_row_loop). ``stride``: keep
    every stride-th row and column of the padded image (a 1x1 layer's input). ``phases`` (NCHW out):
    each row stored as ``phases`` runs of every phases-th column (pad.mako); the result's last axis is
    then ``phases * ceil(Wp / phases)`` long."""
    n, h, wd, c = x.shape if layout == "NHWC" else (x.shape[0], *x.shape[2:], x.shape[1])
    hp = (h + pads[0] + pads[1] - 1) // stride[0] + 1
    wp = (wd + pads[2] + pads[3] - 1) // stride[1] + 1
    out_nchw = out_layout == "NCHW"
    phases = phases if out_nchw else 1
    wq = -(-wp // phases)
    out = xgpu.empty((n, c, hp, wq * phases) if out_nchw else (n, hp, wp, c), dtype, device)
    row_loop = row_loop and not out_nchw
    # CPU runtimes: a work-item per channel plane or pixel row (pad.mako's ``rows``)
    rows = _rows_form(device)

    def make():
        kernel = xgpu.compile(PAD, device, defines={"dtype": dtype, "in_nchw": layout == "NCHW", "out_nchw": out_nchw,
                                                     "row_loop": row_loop, "ssh": stride[0], "ssw": stride[1],
                                                     "phases": phases, "rows": rows}).pad
        args = _index(n, h, wd, c, hp, wp, pads[0], pads[2])
        if rows:
            gsize = (n * c, 1, 1) if out_nchw else (n * hp, 1, 1)
            return kernel.bind(None, None, *args, global_size=gsize, local_size=(1, 1, 1))
        # dimension 0 along the output's rows, up to 64 rows a group: for NCHW -> NHWC a CPU thread then
        # walks a whole image row of each channel's cache lines (Intel N8 C64 56x56: 0.69 ms with 64 x 58
        # work-items a group, 0.81 with 64 x 16 or 64 x 4, 1.08 with 64 x 1)
        gsize = (wq, hp, n * c) if out_nchw else (c, 1 if row_loop else wp, n * hp)
        lanes = min(64, 1 << max(gsize[0] - 1, 0).bit_length())
        depth = max(1, min(64, kernel.max_work_group_size // lanes, device.max_work_item_sizes[1], gsize[1]))
        return kernel.bind(None, None, *args, global_size=gsize, local_size=(lanes, depth, 1))

    _bound(("pad", device, dtype, x.shape, layout, tuple(pads), out_layout, row_loop, tuple(stride), phases, rows),
           make)(out, x)
    return out


def _gemm_input(device, dtype, x: Array, layout: str, pads: tuple[int, int, int, int],
                tr: ConvTraits) -> tuple[Array, bool]:
    """The implicit GEMM's NHWC input, and whether the kernel must still mask the padding (GPUs: NCHW
    is transposed through local-memory tiles and the padding masked in the kernel)."""
    if tr.pad_copy:
        if layout == "NHWC" and not any(pads):
            return x, False
        return _pad(device, dtype, x, layout, pads, "NHWC", tr.pad_row_loop), False
    if layout == "NHWC":
        return x, any(pads)
    n, c, h, wd = x.shape
    out = xgpu.empty((n, h, wd, c), dtype, device)
    program = xgpu.compile(TRANSPOSE, device, defines={"dtype": dtype})
    program.transpose(out, x, *_index(c, h * wd), global_size=(-(-(h * wd) // 32) * 32, -(-c // 32) * 8, n),
                      local_size=(32, 8, 1))
    return out, any(pads)


def _check_bias(bias: Any, k: int) -> None:
    """A bias is an xgpu array of one value per output channel."""
    if not isinstance(bias, Array):
        raise InvalidArgumentError(f"bias is a {type(bias).__name__}, not an xgpu array")
    if bias.shape != (k,):
        raise ShapeError(f"bias must have shape ({k},) (one value per output channel), got {bias.shape}")


def conv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, layout: str = "NCHW",
           config: GemmConfig | None = None, accumulate: str = "float32"):
    """``torch.nn.functional.conv2d`` on xgpu arrays: cross-correlation.

    ``layout="NCHW"``: x is (N, C, H, W), w is (out_channels, C/groups, kH, kW), the result (N, out, P, Q).
    ``layout="NHWC"``: x is (N, H, W, C), w is (kH, kW, C/groups, out_channels), the result (N, P, Q, out).
    ``stride``, ``dilation``: an int or a pair; ``padding``: an int, a pair, ``"valid"`` or ``"same"``
    (stride 1; an odd total padding puts the extra row/column at the bottom/right, as PyTorch does).
    ``config`` forces an implicit-GEMM variant (for tuning and tests); by default the library picks.
    ``accumulate="float16"`` (float16 arrays, NCHW, one group, where ``device.supports("float16",
    arithmetic=True)``) sums in half precision: im2col and the GEMM's float16 sums, then the bias.

    A call like an earlier one (whole arrays on the same devices, the same dtypes, shapes and parameters)
    skips the checks that one passed and what it worked out: at batch 1 a layer's kernel takes 50-500 us,
    and the host's Python per call was as much again.
    """
    key = _call_key(x, w, bias, stride, padding, dilation, groups, layout, accumulate) if config is None else None
    if key is not None:
        again = _seen_calls.get(key)
        if again is not None:
            return again(x, w, bias)
    layer = _checked(x, w, bias, stride, padding, dilation, groups, layout, accumulate, config)
    device, dtype, out_shape = layer.device, layer.dtype, layer.out_shape
    if 0 in out_shape:
        return xgpu.empty(out_shape, dtype, device)
    if layer.acc16:  # im2col and the GEMM's float16 sums; the bias (rounded to float16 first) added after
        y = _im2col_gemm(device, dtype, x, w, layer.pads, layer.stride, layer.dilation, out_shape, traits(device),
                         acc16=True)
        if bias is not None:
            b = bias if isinstance(bias, Array) else xgpu.asarray(np.asarray(bias, dtype), device)
            y += b.reshape(1, layer.k, 1, 1)
        return y
    y, again = _run(layer, x, w, bias, config)
    if key is not None:
        if len(_seen_calls) > 4096:  # a process sweeping many layers: forget the old ones
            _seen_calls.clear()
        _seen_calls[key] = again
    return y


#: conv2d calls that passed every check, by what the checks depended on (see _call_key) -> how such a call
#: runs again, a function of (x, w, bias)
_seen_calls: dict[tuple, Callable[[Array, Array, Any], Array]] = {}


def _call_key(x, w, bias, stride, padding, dilation, groups, layout, accumulate) -> tuple | None:
    """What conv2d's checks depend on, or None for a call checked in full every time: operands other than
    whole xgpu arrays (views), parameters other than ints, tuples of ints and strings (True or a numpy
    integer is equal to an int in a key, and would pass for one)."""
    if type(x) is not Array or type(w) is not Array or not (x._whole and w._whole):
        return None
    if bias is None:
        held = None
    elif type(bias) is Array and bias._whole:
        held = (bias.device, bias.dtype, bias.shape)
    else:
        return None
    for value in (stride, padding, dilation):
        kind = type(value)
        if not (kind is int or kind is str or kind is tuple and all(type(v) is int for v in value)):
            return None
    if type(groups) is not int or type(layout) is not str or type(accumulate) is not str:
        return None
    return (x.device, x.dtype, x.shape, w.device, w.dtype, w.shape, held, stride, padding, dilation, groups,
            layout, accumulate)


@dataclass(frozen=True)
class _Layer:
    """A conv2d call's figures, once its arguments passed the checks (:func:`_checked`)."""

    device: xgpu.Device
    dtype: np.dtype
    layout: str
    x_shape: tuple[int, int, int, int]  # (n, c, h, w) whatever the layout
    w_shape: tuple[int, int, int, int]  # (k, cg, r, s) whatever the layout
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    groups: int
    out_shape: tuple[int, ...]
    acc16: bool

    @property
    def k(self) -> int:
        return self.w_shape[0]


def _checked(x, w, bias, stride, padding, dilation, groups, layout, accumulate, config) -> _Layer:
    """conv2d's arguments checked (an xgpu error naming the problem for bad ones), as a :class:`_Layer`."""
    for name, arr in (("x", x), ("w", w)):
        if not isinstance(arr, Array):
            raise InvalidArgumentError(f"{name} is a {type(arr).__name__}, not an xgpu array: use xgpu.asarray")
        if arr.size > 2**31 - 1:  # the kernels take their sizes as 32-bit ints
            raise ShapeError(f"{name} has {arr.size} elements: conv2d takes arrays of at most 2**31-1; split the batch")
    if layout not in LAYOUTS:
        raise InvalidArgumentError(f"layout must be 'NCHW' or 'NHWC', not {layout!r}")
    device = same_device(x, w, *([bias] if isinstance(bias, Array) else []))
    if x.dtype != w.dtype or (isinstance(bias, Array) and bias.dtype != x.dtype):
        raise UnsupportedDtypeError(f"x ({x.dtype}), w ({w.dtype}) and bias must share one dtype")
    dtype = x.dtype
    if dtype not in DTYPES:
        raise UnsupportedDtypeError(f"conv2d takes float32, float64, float16 or bfloat16, not {dtype}")
    if not device.supports(dtype):
        raise UnsupportedDtypeError(f"{device.id} ({device.name}) does not support {dtype}")
    acc16 = check_accumulate(device, dtype, accumulate)
    if acc16 and (layout != "NCHW" or groups != 1 or config is not None):
        raise InvalidArgumentError("accumulate='float16' takes NCHW layers with groups=1 (and no config); "
                                   "use accumulate='float32' for the others")
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(f"conv2d takes 4-D x and w ({layout}), got x {x.shape} and w {w.shape}")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise InvalidArgumentError(f"groups must be a positive int, got {groups!r}")
    groups = int(groups)
    if layout == "NCHW":
        n, c, h, wd = x.shape
        k, cg, r, s = w.shape
    else:
        n, h, wd, c = x.shape
        r, s, cg, k = w.shape
    if c % groups or k % groups:
        raise ShapeError(f"{c} input and {k} output channels must both be divisible by groups={groups}")
    if cg != c // groups:
        raise ShapeError(f"w has {cg} input channels per group, but x has {c} channels in {groups} group(s): "
                         f"expected {c // groups}")
    if min(r, s) < 1:
        raise ShapeError(f"kernel size must be at least 1x1, got {r}x{s}")
    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    span_h, span_w = dh * (r - 1) + 1, dw * (s - 1) + 1
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if (sh, sw) != (1, 1):
                raise InvalidArgumentError("padding='same' needs stride 1 (as in PyTorch)")
            th, tw = span_h - 1, span_w - 1
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            raise InvalidArgumentError(f"padding must be an int, a pair, 'valid' or 'same', not {padding!r}")
    else:
        ph, pw = _pair(padding, "padding", 0)
        pads = (ph, ph, pw, pw)
    hp, wp = h + pads[0] + pads[1], wd + pads[2] + pads[3]
    if span_h > hp or span_w > wp:
        raise ShapeError(f"the kernel ({r}x{s}, dilation {dh}x{dw}: spans {span_h}x{span_w}) is larger than the "
                         f"padded input ({hp}x{wp})")
    p, q = (hp - span_h) // sh + 1, (wp - span_w) // sw + 1
    if bias is not None and not acc16:
        _check_bias(bias, k)
    out_shape = (n, k, p, q) if layout == "NCHW" else (n, p, q, k)
    return _Layer(device, dtype, layout, (n, c, h, wd), (k, cg, r, s), (sh, sw), (dh, dw), pads, groups, out_shape,
                  acc16)


def _run(layer: _Layer, x: Array, w: Array, bias: Array | None, config: GemmConfig | None,
         decided: tuple | None = None):
    """Run a checked layer: (the result, how a call like it runs again). ``decided``: what an earlier call of
    the layer decided (the plan, the device's traits, the placeholder for a missing bias)."""
    device, dtype, layout, out_shape, pads = layer.device, layer.dtype, layer.layout, layer.out_shape, layer.pads
    (n, c, h, wd), (k, cg, r, s), (sh, sw), (dh, dw), groups = (layer.x_shape, layer.w_shape, layer.stride,
                                                                 layer.dilation, layer.groups)
    p, q = out_shape[2:] if layout == "NCHW" else out_shape[1:3]
    g, kg = groups, k // groups
    has_bias = bias is not None
    if decided is None:
        pointwise = is_pointwise((r, s), (sh, sw), pads, groups, has_bias)
        chosen = (plan(device, dtype, cg, kg, (r, s), pointwise=pointwise) if config is None
                  else ConvPlan("implicit-gemm", config, "forced"))
        # the kernels' bias argument when there is none (never read)
        decided = (chosen, traits(device), _rows_form(device), xgpu.empty(1, dtype, device))
    chosen, tr, rows_form, placeholder = decided
    log.debug("conv2d %s x %s on %s: %s (%s)", x.shape, w.shape, device.id, chosen.label, chosen.reason)
    bias_arr = bias if bias is not None else placeholder
    generic = functools.partial(_run_again, layer, decided)
    if chosen.kernel == "gemm":
        if (sh, sw) != (1, 1) or any(pads):  # the pixels the layer reads, as a smaller image
            x = _pad(device, dtype, x, layout, pads, layout, tr.pad_row_loop, stride=(sh, sw))
            h, wd = p, q
            if layout == "NCHW":  # y[n] (K x HW) = w (K x C) @ x[n] (C x HW)
                return matmul(w.reshape(k, c), x.reshape(n, c, h * wd)).reshape(out_shape), generic
            return gemm(x.reshape(n * h * wd, c), w.reshape(c, k)).reshape(out_shape), generic  # (NHW x C) @ (C x K)
        as_gemm = functools.partial(_pointwise, layer)
        if x._whole and w._whole:
            return as_gemm(x, w, bias), as_gemm
        xs = x.reshape(n, c, h * wd) if layout == "NCHW" else x.reshape(n * h * wd, c)
        ws = w.reshape(k, c) if layout == "NCHW" else w.reshape(c, k)
        return (matmul(ws, xs) if layout == "NCHW" else gemm(xs, ws)).reshape(out_shape), as_gemm
    if (layout == "NCHW" and config is None and rows_form
            and (cg == 1 and chosen.kernel == "direct" or 1 < cg <= FEW_CHANNELS_IN)):
        launch = _depthwise_launch(device, dtype, x.shape, w.shape, has_bias, pads, (sh, sw), (dh, dw), out_shape,
                                   kg, cg)
        if launch is not None:
            log.debug("conv2d %s x %s on %s: conv2d_dw.mako (%d input channel(s) per group, NCHW, CPU runtime)",
                      x.shape, w.shape, device.id, cg)

            def again(x: Array, w: Array, bias: Array | None) -> Array:
                return _run_prepared(launch, x, w, placeholder if bias is None else bias)

            return again(x, w, bias), again
    if chosen.kernel == "implicit-gemm" and config is None and dtype.itemsize == 2 and tr.widen_half:
        widened = _widened(layer)  # (after the few-channel kernel above, which converts rows in vectors)
        return widened(x, w, bias), widened
    if (chosen.kernel == "implicit-gemm" and config is None and layout == "NCHW" and g == 1 and not has_bias
            and (p * q <= IM2COL_PIXELS or k >= IM2COL_CHANNELS) and n * c * r * s * p * q * dtype.itemsize <= IM2COL_BYTES
            and rows_form):
        return _im2col_gemm(device, dtype, x, w, pads, (sh, sw), (dh, dw), out_shape, tr), generic
    y = xgpu.empty(out_shape, dtype, device)

    defines = {"dtype": dtype, "has_bias": has_bias, "out_nchw": layout == "NCHW"}
    shape_args: tuple[int, ...] = (n, h, wd, c, p, q, k, r, s, cg, kg, sh, sw, pads[0], pads[2], dh, dw)
    if chosen.kernel == "direct":
        # input and weights in their own layout (the kernel indexes either). NCHW on CPUs: the
        # padding written into a copy, since lanes are pixels there and masked windows would make every
        # read a gather (depthwise 3x3 N8 C128 56x56 on Intel: 2.1 against 7.5 ms); in NHWC, lanes are
        # channels, the window is the same for all of them, and masks cost less than the copy (2.4 / 3.6 ms)
        in_nchw = layout == "NCHW"
        masked = any(pads) and not (in_nchw and tr.pad_copy)
        # a column stride: the copy stores each row as sw runs of every sw-th column, so that lanes
        # (neighbouring output pixels) read neighbouring addresses, not a gather
        phased = in_nchw and tr.pad_copy and sw > 1
        if (any(pads) and not masked) or phased:
            x = _pad(device, dtype, x, layout, pads, layout, tr.pad_row_loop, phases=sw if phased else 1)
            shape_args = (n, *(x.shape[2:] if in_nchw else x.shape[1:3]), c, p, q, k, r, s, cg, kg, sh, sw, 0, 0, dh, dw)
        # vectors (float32/float64: float16 and bfloat16 have no vector loads here) of pixels along NCHW rows read with unit
        # stride, or of NHWC channels that read one input channel (one group) or neighbouring ones (depthwise)
        vectors = (not masked and (sw == 1 or phased)) if in_nchw else (g == 1 or (cg, kg) == (1, 1))
        vw = tr.direct_vw if vectors and dtype.itemsize > 2 else 1
        direct_defines = {**defines, "in_nchw": in_nchw, "padded": masked, "vw": vw, "phased": phased, "kr": r,
                          "ks": s, "kcg": cg, "kkg": kg, "kgroups": g, "ksh": sh, "ksw": sw, "kdh": dh, "kdw": dw}

        def make_direct():
            program = xgpu.compile(DIRECT, device, defines=direct_defines)
            # dimension 0 is what CPU runtimes vectorise over: output pixels (NCHW) or channels (NHWC), vw of
            # them a work-item; a few hundred work-items a group, since CPU runtimes pay per group
            gsize = (-(-q // vw), p, n * k) if in_nchw else (-(-k // vw), q, n * p)
            lanes = min(128, 1 << max(gsize[0] - 1, 0).bit_length())
            return program.conv2d_direct.bind(None, None, None, None, *_index(*shape_args), global_size=gsize,
                                              local_size=(lanes, max(1, min(512 // lanes, gsize[1])), 1))

        _bound(("direct", device, tuple(sorted(direct_defines.items())), shape_args, out_shape), make_direct)(
            y, x, w, bias_arr)
    else:
        x_nhwc, masked = _gemm_input(device, dtype, x, layout, pads, tr)
        if not masked:  # the input now holds its padding
            shape_args = (n, *x_nhwc.shape[1:], p, q, k, r, s, cg, kg, sh, sw, 0, 0, dh, dw)
        assert chosen.config is not None  # an implicit-GEMM plan always holds its variant
        m = n * p * q
        wanted = chosen.config if config is not None else fit_rows(chosen.config, m)
        explicit = config is not None
        kernel, cfg = _bound(("igemm", device, dtype, wanted, has_bias, layout, masked, explicit),
                             lambda: compile_variant(IGEMM, "conv2d_igemm", device, wanted,
                                                     {**defines, "padded": masked}, explicit=explicit))
        tx, ty = cfg.local_size
        col_tiles = -(-kg // cfg.tn)
        kp = col_tiles * cfg.tn
        if layout == "NHWC" and kg == kp:
            # NHWC weights (R, S, Cg, K) are each group's (R * S * Cg) x Kg matrix already, row stride K
            w_k, ldw, wgs = w, k, kg
        else:
            # weights to (G, R, S, Cg, Kp): each group's (R * S * Cg) x Kg matrix, zeros out to whole column tiles
            strides = (kg * cg * r * s, 1, r * s, cg * r * s) if layout == "NCHW" else (kg, cg * k, k, 1)
            w_k, ldw, wgs = _permute(device, dtype, w, (g, r * s, cg, kg), strides, kp), kp, r * s * cg * kp
        _bound(("igemm launch", kernel, shape_args, ldw, wgs, col_tiles, m, g),
               lambda: kernel.bind(None, None, None, None, *_index(*shape_args, ldw, wgs),
                                   global_size=(col_tiles * tx, -(-m // cfg.tm) * ty, g), local_size=(tx, ty, 1)))(
            y, x_nhwc, w_k, bias_arr)
    return y, generic


def _widened(layer: _Layer) -> Callable[[Array, Array, Any], Array]:
    """How a float16/bfloat16 implicit-GEMM layer runs where ConvTraits.widen_half says so: the operands
    widened to float32, the float32 layer, the result rounded once (float32 sums either way)."""
    f32 = np.dtype(np.float32)
    wide = replace(layer, dtype=f32)
    again: Callable[[Array, Array, Any], Array] | None = None  # how the float32 layer runs, once it has run

    def widened(x: Array, w: Array, bias: Array | None) -> Array:
        nonlocal again
        xw, ww, bw = x.astype(f32), w.astype(f32), None if bias is None else bias.astype(f32)
        if again is None:
            y, again = _run(wide, xw, ww, bw, None)
        else:
            y = again(xw, ww, bw)
        return y.astype(layer.dtype)

    return widened


def _run_again(layer: _Layer, decided: tuple, x: Array, w: Array, bias: Array | None) -> Array:
    return _run(layer, x, w, bias, None, decided)[0]


def _pointwise(layer: _Layer, x: Array, w: Array, bias: Array | None) -> Array:
    """A 1x1 layer with no stride, padding, groups or bias, on whole arrays: the GEMM on them as they lie."""
    from xgpu.kernels.gemm import _launch

    (n, c, h, wd), k = layer.x_shape, layer.k
    y = xgpu.empty(layer.out_shape, layer.dtype, layer.device)
    if layer.layout == "NCHW":  # y[n] (K x HW) = w (K x C) @ x[n] (C x HW)
        _launch(y, w, x, k, h * wd, c, n, 1.0, 0.0, False, False, (0, c * h * wd if n > 1 else 0, k * h * wd))
    else:  # (NHW x C) @ (C x K)
        _launch(y, x, w, n * h * wd, k, c, 1, 1.0, 0.0, False, False, (0, 0, 0))
    return y
