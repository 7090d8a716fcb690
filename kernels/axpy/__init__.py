"""Strided axpy with a local-memory reduction: the smallest kernel that uses every part of the language."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import xgpu
from xgpu.errors import InvalidArgumentError, ShapeError, UnsupportedDtypeError
from xgpu.plugin import same_device

TEMPLATE = xgpu.KernelTemplate(Path(__file__).with_name("axpy.mako"))
_DTYPES = (np.float16, np.float32, np.float64)
_WG = 256


def _render_defines(dtype: np.dtype, wg: int) -> dict:
    acc = np.float64 if dtype == np.float64 else np.float32
    return {"dtype": dtype, "acc": np.dtype(acc), "wg": wg}


def _program(device: xgpu.Device, dtype: np.dtype) -> tuple[xgpu.Program, int]:
    """Compile with the largest power-of-two work-group (<= 256) the compiled kernel accepts."""
    wg = 1 << (min(_WG, device.max_work_group_size).bit_length() - 1)
    while True:
        program = xgpu.compile(TEMPLATE, device, defines=_render_defines(dtype, wg))
        if program.axpy_sum.max_work_group_size >= wg or wg == 1:
            return program, wg
        wg //= 2


def axpy(alpha: float, x: xgpu.Array, y: xgpu.Array, *, incx: int = 1, incy: int = 1) -> float:
    """``y[::incy] += alpha * x[::incx]`` in place (over as many elements as both hold);
    returns the sum of the updated elements of y, reduced in local memory on the device."""
    device = same_device(x, y)
    if x.dtype != y.dtype:
        raise UnsupportedDtypeError(f"x is {x.dtype} but y is {y.dtype}: give both the same dtype")
    dtype = x.dtype
    if dtype not in [np.dtype(d) for d in _DTYPES]:
        raise UnsupportedDtypeError(f"axpy takes float16, float32 or float64, not {dtype}")
    if not device.supports(dtype):
        raise UnsupportedDtypeError(f"{device.id} ({device.name}) has no {dtype} support")
    if x.ndim != 1 or y.ndim != 1:
        raise ShapeError(f"axpy takes 1-D arrays, got x {x.shape} and y {y.shape}")
    if incx < 1 or incy < 1:
        raise InvalidArgumentError(f"incx and incy must be at least 1, got {incx} and {incy}")
    n = min(-(-x.size // incx), -(-y.size // incy))
    if n == 0:
        return 0.0
    program, wg = _program(device, dtype)
    groups = -(-n // wg)
    acc = _render_defines(dtype, wg)["acc"]
    partial = xgpu.empty(groups, acc, device)
    scalar = np.float64(alpha) if dtype == np.float64 else np.float32(alpha)
    program.axpy_sum(y, x, partial, scalar, n, incx, incy, global_size=n, local_size=wg)
    return float(partial.get().sum(dtype=np.float64))
