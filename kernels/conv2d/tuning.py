"""Implicit-GEMM variants per device class: the GEMM's tiles (GemmConfig), tuned for convolution.

In the implicit GEMM, ``kc > 0`` means a barrier after every (r, s) step of the filter window rather
than every ``kc`` steps of K. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

from xgpu.kernels.gemm.tuning import GemmConfig

RULES: list[tuple[str | None, tuple[str, ...], GemmConfig]] = [
    (None, ("oclgrind",), GemmConfig(local_tiles=False, tm=16, tn=16, wm=2, wn=2)),
    # Intel's CPU runtime: strided columns, 4x4 per work-item (16 accumulators: 8x4 runs out of AVX-512
    # registers), the window walked in step by the group (NCHW, measured here: 150-153 GF/s on N8 C64
    # 56x56 K64 3x3 and 170-178 on N32 C256 14x14 K256 3x3, against 146/172 for 8x4; docs/benchmarks.md)
    ("cpu", ("intel",), GemmConfig(local_tiles=False, tm=64, tn=64, wm=4, wn=4, kc=1)),
    # PoCL: 16-wide vectors; no barrier (PoCL loses its vectorisation around a barrier in the window loop:
    # 8 GF/s with it, 130 without)
    ("cpu", (), GemmConfig(local_tiles=False, tm=128, tn=64, wm=8, wn=32, contiguous_cols=True, vw=16)),
    # GPUs: strided columns keep reads of weights and writes of the output coalesced
    ("gpu", (), GemmConfig(local_tiles=False, tm=64, tn=64, wm=4, wn=4)),
    (None, (), GemmConfig(local_tiles=False, tm=32, tn=32, wm=2, wn=2)),
]


# The direct kernel's output pixels per work-item in NCHW (vectors along a row; 1: one pixel, and the
# runtime vectorises across work-items). PoCL vectorises within a work-item (depthwise 3x3 N8 C128 56x56
# float32: 2.5 ms with 8, 3.0 with 16, 20 with 1); Intel's runtime across them (1.7 ms with 1, 3.1 with 8).
DIRECT_VECTOR_RULES: list[tuple[str | None, tuple[str, ...], int]] = [
    (None, ("oclgrind",), 1),
    ("cpu", ("intel",), 1),
    ("cpu", (), 8),
    (None, (), 1),
]


def window_class(r: int, s: int) -> str:
    """``xgpu tune conv2d`` results apply per filter window: one tuned on a 3x3 layer serves every 3x3 layer."""
    return f"window {r}x{s}"
