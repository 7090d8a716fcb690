"""Every variant of the library's kernels that some device class or shape can be given: what the
offline compile checks (``tests/test_cuda_compile.py``, ``tests/test_offline_targets.py``) and the compile
rows of ``xgpu parity --targets`` build for every GPU target."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from . import axpy as axpy_kernel
from . import bench as bench_kernels
from . import conv2d as conv_kernel
from . import gemm as gemm_kernel

__all__ = ["library_variants", "variant_row"]


Variant = tuple[str, Any, dict[str, Any]]


def library_variants() -> Iterator[Variant]:
    """(name, template, defines) for every variant the library can pick."""
    yield from _axpy()
    yield from _gemm()
    yield from _int_gemm()
    yield from _igemm()
    for dtype in gemm_kernel.DTYPES:
        yield from _direct(dtype)
        yield from _depthwise(dtype)
        yield from _helpers(dtype)
    for name in ("float32", "float64"):  # xgpu bench device's kernels
        yield f"copy-{name}", bench_kernels.TEMPLATE, bench_kernels.defines(name)
    # the float16 and int8 ceilings in their neutral form; the forms that use cl_khr_fp16 arithmetic and
    # cl_khr_integer_dot_product's builtin are rendered only for devices that list those extensions
    # (tests/test_hwbench.py runs them on each such device)
    yield "lowp-portable", bench_kernels.LOWP, bench_kernels.lowp_defines(False, "portable")


def _axpy() -> Iterator[Variant]:
    for dtype in (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)):
        for wg in (64, 128, 256):
            yield f"axpy-{dtype}-wg{wg}", axpy_kernel.TEMPLATE, axpy_kernel._render_defines(dtype, wg)


def _gemm() -> Iterator[Variant]:
    for dtype, trans_a, trans_b, config in gemm_kernel.all_variants():
        name = f"gemm-{dtype}-{'T' if trans_a else 'N'}{'T' if trans_b else 'N'}-{config.label}"
        template, _name = gemm_kernel.template_for(config)
        yield name, template, gemm_kernel.render_defines(dtype, config.compiled(), trans_a, trans_b)
    for config in gemm_kernel.acc16_variants():  # float16 sums (accumulate="float16")
        for trans_a in (False, True):
            for trans_b in (False, True):
                yield (f"gemm-float16-{'T' if trans_a else 'N'}{'T' if trans_b else 'N'}-{config.label}-acc16",
                       gemm_kernel.TEMPLATE, {**gemm_kernel.render_defines(np.dtype(np.float16), config, trans_a, trans_b),
                                              "acc16": True, "half_arithmetic": "native"})
    for dtype in gemm_kernel.DTYPES:  # few columns: dot products along K
        for cols in gemm_kernel.DOT_ROWS:
            yield (f"gemm_dot-{dtype}-cols{cols}", gemm_kernel.DOT,
                   gemm_kernel.dot_defines(dtype, 4 if dtype.itemsize == 8 else 8, cols))
    for dtype in gemm_kernel.DTYPES:  # the planner's packing of transposed operands
        yield f"transpose-gemm_pack-{dtype}", gemm_kernel.PACK, {"dtype": dtype, "t": 32, "ry": 8, "blocks": 0}
        yield f"transpose-gemm_pack_blocks-{dtype}", gemm_kernel.PACK, {"dtype": dtype, "t": 16, "ry": 1, "blocks": 4}


def _int_gemm() -> Iterator[Variant]:
    """The integer GEMM (int32 results) for every mix of 8-bit operands, and its transpose."""
    from .gemm import integer

    for cfg in integer.all_variants():
        for dtype_a, dtype_b in (("int8", "int8"), ("uint8", "int8"), ("uint8", "uint8")):
            for trans_a in (False, True):
                yield (f"gemm_int-{dtype_a}-{dtype_b}-{'T' if trans_a else 'N'}-{cfg.label}", integer.TEMPLATE,
                       integer.render_defines(dtype_a, dtype_b, trans_a, cfg))
    for dtype in ("int8", "uint8"):
        yield (f"transpose-gemm_int-{dtype}", integer.TEMPLATE,
               {**integer.render_defines(dtype, dtype, False, integer.RULES[-1][2]), "part": "transpose"})


def _igemm() -> Iterator[Variant]:
    for dtype, config in conv_kernel.all_igemm_variants():
        for has_bias in (False, True):
            yield (f"conv2d_igemm-{dtype}-{config.label}-bias{int(has_bias)}", conv_kernel.IGEMM,
                   {"dtype": dtype, "has_bias": has_bias, "out_nchw": has_bias, "padded": not has_bias,
                    **config.defines()})


def _direct(dtype: np.dtype) -> Iterator[Variant]:
    for has_bias in (False, True):
        for kr, ks, kcg, kkg, groups, stride in ((3, 3, 1, 1, 32, 1), (3, 3, 1, 2, 8, 2), (7, 7, 3, 64, 1, 2)):
            yield (f"conv2d_direct-{dtype}-bias{int(has_bias)}-{kr}x{ks}x{kcg}x{kkg}g{groups}s{stride}",
                   conv_kernel.DIRECT,
                   {"dtype": dtype, "has_bias": has_bias, "out_nchw": has_bias, "in_nchw": not has_bias,
                    "padded": has_bias, "vw": 1, "kr": kr, "ks": ks, "kcg": kcg, "kkg": kkg, "kgroups": groups,
                    "ksh": stride, "ksw": stride, "kdh": 1, "kdw": 1, "phased": False})
        # NCHW rows stored as stride phases (pad.mako), read unit-stride: depthwise stride 2 on CPUs
        yield (f"conv2d_direct-{dtype}-bias{int(has_bias)}-phased-s2",
               conv_kernel.DIRECT,
               {"dtype": dtype, "has_bias": has_bias, "out_nchw": True, "in_nchw": True, "padded": False,
                "vw": 8 if dtype.itemsize > 2 and has_bias else 1, "kr": 3, "ks": 3, "kcg": 1, "kkg": 1,
                "kgroups": 16, "ksh": 2, "ksw": 2, "kdh": 1, "kdw": 1, "phased": True})
        if dtype.itemsize > 2:  # pixel vectors along NCHW rows, channel vectors in NHWC (PoCL)
            for in_nchw, kcg, kgroups in ((True, 2, 4), (False, 1, 16), (False, 3, 1)):
                yield (f"conv2d_direct-{dtype}-bias{int(has_bias)}-vw8-{'NCHW' if in_nchw else 'NHWC'}g{kgroups}",
                       conv_kernel.DIRECT,
                       {"dtype": dtype, "has_bias": has_bias, "out_nchw": in_nchw, "in_nchw": in_nchw,
                        "padded": not in_nchw, "vw": 8, "kr": 3, "ks": 3, "kcg": kcg, "kkg": 1, "kgroups": kgroups,
                        "ksh": 2, "ksw": 1, "kdh": 1, "kdw": 2, "phased": False})


def _depthwise(dtype: np.dtype) -> Iterator[Variant]:
    # conv2d_dw.mako (CPU runtimes): stride 1, a column stride of 2 (lanes gathered from neighbouring
    # vectors) and of 3 (phase by phase), a channel multiplier, dilation; and few-input-channel layers (RGB
    # stems: 3 channels, 3x3 stride 2 with blocks of 8 output channels, 7x7 stride 2 with blocks of 4)
    for has_bias, kr, ks, stride, dil, cg, mult, kb, vw in ((True, 3, 3, 1, 1, 1, 1, 1, 8),
                                                            (False, 3, 3, 2, 1, 1, 2, 1, 8),
                                                            (True, 3, 3, 3, 1, 1, 1, 1, 8),
                                                            (True, 5, 5, 2, 2, 1, 1, 1, 4),
                                                            (False, 3, 3, 2, 1, 3, 32, 8, 8),
                                                            (True, 7, 7, 2, 1, 3, 64, 4, 8)):
        yield (f"conv2d_dw-{dtype}-bias{int(has_bias)}-{kr}x{ks}s{stride}d{dil}c{cg}x{mult}b{kb}-vw{vw}",
               conv_kernel.DEPTHWISE,
               {"dtype": dtype, "has_bias": has_bias, "kr": kr, "ks": ks, "ksh": stride, "ksw": stride,
                "kdh": dil, "kdw": dil, "kcg": cg, "kkg": mult, "kb": kb, "vw": vw})
    if dtype.itemsize == 2:  # float16/bfloat16 rows of a column-strided layer staged (Intel's CPU runtime)
        yield (f"conv2d_dw-{dtype}-3x3s2-staged", conv_kernel.DEPTHWISE,
               {"dtype": dtype, "has_bias": False, "kr": 3, "ks": 3, "ksh": 2, "ksw": 2, "kdh": 1, "kdw": 1,
                "kcg": 1, "kkg": 1, "kb": 1, "vw": 8, "stage": True})


def _helpers(dtype: np.dtype) -> Iterator[Variant]:
    yield f"permute-{dtype}", conv_kernel.PERMUTE, {"dtype": dtype}
    yield f"transpose-{dtype}", conv_kernel.TRANSPOSE, {"dtype": dtype}
    for in_nchw, out_nchw, row_loop, stride, phases in ((0, 0, 0, 1, 1), (0, 0, 1, 1, 1), (1, 0, 0, 1, 1),
                                                        (1, 0, 1, 1, 1), (0, 1, 0, 1, 1), (1, 1, 0, 1, 1),
                                                        (1, 1, 0, 2, 1), (0, 0, 1, 2, 1), (1, 1, 0, 1, 2)):
        for rows in (False, True):  # per element (GPUs), per row or channel plane (CPU runtimes)
            yield (f"pad-{dtype}-{'NCHW' if in_nchw else 'NHWC'}-to-{'NCHW' if out_nchw else 'NHWC'}-loop{row_loop}"
                   f"-s{stride}-ph{phases}{'-rows' if rows else ''}",
                   conv_kernel.PAD, {"dtype": dtype, "in_nchw": bool(in_nchw), "out_nchw": bool(out_nchw),
                                     "row_loop": bool(row_loop), "ssh": stride, "ssw": stride, "phases": phases,
                                     "rows": rows})
    yield (f"im2col-{dtype}", conv_kernel.IM2COL,
           {"dtype": dtype, "kr": 3, "ks": 3, "ksh": 2, "ksw": 2, "kdh": 1, "kdw": 1})


def variant_row(name: str) -> tuple[str, str, str]:
    """(kernel, variant, dtype) of a variant name such as ``gemm-float32-NN-96x64-6x16``: a parity row."""
    parts = name.split("-")
    dtype = next((p for p in parts if p in ("float16", "bfloat16", "float32", "float64", "int8", "uint8")), "")
    return parts[0], "-".join(p for p in parts[1:] if p != dtype) or parts[0], dtype
