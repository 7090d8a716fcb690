"""Implicit-GEMM variants per device class: the GEMM's tiles (GemmConfig), tuned for convolution.

In the implicit GEMM, ``kc > 0`` means a barrier after every (r, s) step of the filter window rather
than every ``kc`` steps of K. Figures: docs/benchmarks.md. Rows key on device classes (implementation,
type, capabilities: xgpu.plugin.device_class), as the GEMM's table does.
"""

from __future__ import annotations

from dataclasses import dataclass

from xgpu.kernels.gemm.tuning import GemmConfig

RULES: list[tuple[str | None, tuple[str, ...], GemmConfig]] = [
    (None, ("simulator",), GemmConfig(local_tiles=False, tm=16, tn=16, wm=2, wn=2)),
    # 8-lane (AVX2) CPUs, both runtimes: 6 rows x 16 contiguous columns in 8-wide vectors per work-item
    # (12 accumulator registers of the 16), no barrier. Measured on an AVX2 EPYC, NCHW 3x3, GF/s against
    # the AVX-512 rows below: Intel N8 C64 56x56 K64 91 / 45, N8 C128 28x28 110 / 48, NHWC 70 / 47;
    # PoCL 91 / 45, 81 / 54, NHWC 92 / 52; on 7x7 images (N8 C512) 27 / 41 and 23 / 26
    ("cpu", ("simd-narrow",), GemmConfig(local_tiles=False, tm=96, tn=64, wm=6, wn=16, contiguous_cols=True, vw=8)),
    # Intel's CPU runtime: strided columns, 4x4 per work-item (16 accumulators: 8x4 runs out of AVX-512
    # registers), the window walked in step by the group (NCHW, measured here: 176-179 GF/s on N8 C64
    # 56x56 K64 3x3 and 199-203 on N32 C256 14x14 K256 3x3, against 170-174/193-203 for 128x64 tiles
    # and 146/172 for 8x4 blocks; docs/benchmarks.md)
    ("cpu", ("intel-cpu-runtime",), GemmConfig(local_tiles=False, tm=64, tn=64, wm=4, wn=4, kc=1)),
    # PoCL: 16-wide vectors; no barrier (PoCL loses its vectorisation around a barrier in the window loop:
    # 8 GF/s with it, 130 without)
    ("cpu", (), GemmConfig(local_tiles=False, tm=128, tn=64, wm=8, wn=32, contiguous_cols=True, vw=16)),
    # GPUs: strided columns keep reads of weights and writes of the output coalesced
    ("gpu", (), GemmConfig(local_tiles=False, tm=64, tn=64, wm=4, wn=4)),
    (None, (), GemmConfig(local_tiles=False, tm=32, tn=32, wm=2, wn=2)),
]


@dataclass(frozen=True)
class ConvTraits:
    """How conv2d lays data out for the kernels on a device class (the implicit GEMM's variant aside)."""

    pad_copy: bool = False  # write the padding into a copy of the input rather than mask window reads
    pad_row_loop: bool = False  # that copy (NHWC out): one work-item per row of pixels, not per element
    direct_vw: int = 1  # the direct kernel: output pixels (NCHW) or channels (NHWC) per work-item, in vectors
    # conv2d_dw.mako, float16/bfloat16 with a column stride, input rows of at most this many pixels: each row
    # converted in vectors into a staging row first, rather than element by element as it is split into phases
    stage_half_width: int = 0
    # float16/bfloat16 layers of the implicit GEMM run as float32 on widened copies, the result rounded once:
    # the half variant has no vector loads and converts each element it reads, every time it reads it
    widen_half: bool = False


# Measured here (docs/benchmarks.md). pad_copy: masks cost the implicit GEMM 20-25% on both CPU runtimes,
# and a masked read per pixel lane is a gather in the direct kernel; GPUs and Oclgrind mask (a copy costs
# traffic a mask does not; Oclgrind then checks the masked paths). pad_row_loop: PoCL runs work-items one
# by one, and a row loop saves it the per-element division (N8 C64 56x56 NCHW -> NHWC: 0.83 against
# 1.98 ms), while Intel's runtime, vectorising across elements, slows down (1.23 against 0.80 ms).
# direct_vw: PoCL vectorises within a work-item (depthwise 3x3 N8 C128 56x56, NCHW: 2.5 ms with 8 pixels,
# 3.0 with 16, 20 with 1; NHWC: 4.7 against 15.7 ms with 8 channels); Intel's runtime vectorises across
# work-items (NCHW 1.7 ms with 1, 3.1 with 8). stage_half_width: Intel's runtime converts float16 element by
# element slowly, whatever the row (depthwise 3x3 stride 2 float16, direct -> staged: N8 C144 56x56 3.7 ->
# 1.1 ms, N1 C96 112x112 1.40 -> 0.55, N8 C576 14x14 0.99 -> 0.52); PoCL gains on narrow rows only (N8 C960
# 7x7 0.91 -> 0.54 ms, C576 14x14 0.99 -> 0.63; C384 20x20 0.61 -> 0.69, C96 40x40 0.52 -> 0.79, C144 56x56
# 1.13 -> 1.48).
TRAITS: list[tuple[str | None, tuple[str, ...], ConvTraits]] = [
    (None, ("simulator",), ConvTraits()),
    ("cpu", ("intel-cpu-runtime",), ConvTraits(pad_copy=True, stage_half_width=1 << 30, widen_half=True)),
    ("cpu", (), ConvTraits(pad_copy=True, pad_row_loop=True, direct_vw=8, stage_half_width=16, widen_half=True)),
    (None, (), ConvTraits()),
]


def window_class(r: int, s: int) -> str:
    """``xgpu tune conv2d`` results apply per filter window: one tuned on a 3x3 layer serves every 3x3 layer."""
    return f"window {r}x{s}"
