"""Quantized linear and conv2d with PyTorch's quantized arithmetic (``torch.ao.nn.quantized``): 8-bit
inputs and weights with affine (scale, zero point) quantization, per tensor or per output channel, an
exact int32 GEMM (kernels/gemm/integer.py), and an epilogue giving int32, float32 or requantized 8-bit
outputs. ``xgpu.quantized.linear`` and ``xgpu.quantized.conv2d`` are the public names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import xgpu
from xgpu import Array
from xgpu.errors import InvalidArgumentError, ShapeError, UnsupportedDtypeError
from xgpu.kernels.gemm.integer import INT_DTYPES, launch
from xgpu.plugin import same_device

__all__ = ["OUT_DTYPES", "conv2d", "linear"]

TEMPLATE = xgpu.KernelTemplate(Path(__file__).with_name("quantized.mako"))
OUT_DTYPES = (np.dtype(np.int32), np.dtype(np.float32), np.dtype(np.uint8), np.dtype(np.int8))


def _program(device: xgpu.Device, dtype: np.dtype, out_dtype: np.dtype = OUT_DTYPES[0], x_sums: bool = False):
    return xgpu.compile(TEMPLATE, device, defines={"dtype": np.dtype(dtype), "out_dtype": np.dtype(out_dtype),
                                                   "x_sums": x_sums})


def _per_channel(name: str, value: Any, n: int, dtype: Any) -> np.ndarray:
    """A scalar (per tensor) or one value per output channel, as a length-n host array."""
    arr = np.asarray(value.get() if isinstance(value, Array) else value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, arr)
    if arr.shape != (n,):
        raise ShapeError(f"{name} has shape {arr.shape}: give one value, or one per output channel ({n},)")
    if not np.all(np.isfinite(arr)):
        raise InvalidArgumentError(f"{name} holds a non-finite value")
    if np.dtype(dtype).kind == "i" and not np.all(arr == np.round(arr)):
        raise InvalidArgumentError(f"{name} must hold whole numbers (zero points are integers)")
    return arr.astype(dtype)


def _check_zero(name: str, value: Any, dtype: np.dtype) -> int:
    info = np.iinfo(dtype)
    if isinstance(value, (bool, np.bool_)) or not float(value).is_integer() or not info.min <= value <= info.max:
        raise InvalidArgumentError(f"{name}={value!r}: a zero point of {dtype} data is a whole number in "
                                   f"[{info.min}, {info.max}]")
    return int(value)


def _out_dtype(out: Any) -> np.dtype:
    try:
        dt = np.dtype(out)
    except TypeError:
        dt = None
    if dt not in OUT_DTYPES:
        raise UnsupportedDtypeError(f"out={out!r}: give 'int32' (the exact accumulator), 'float32' (dequantized, "
                                    f"plus bias) or 'uint8'/'int8' (requantized with out_scale, out_zero_point)")
    return dt


def _check_inputs(x: Any, w: Any, bias: Any) -> xgpu.Device:
    for name, arr in (("x", x), ("w", w)):
        if not isinstance(arr, Array):
            raise InvalidArgumentError(f"{name} is a {type(arr).__name__}, not an xgpu array: move its 8-bit "
                                       f"values with xgpu.asarray({name}_q.int_repr().numpy(), device)")
        if arr.dtype not in INT_DTYPES:
            raise UnsupportedDtypeError(f"{name} is {arr.dtype}: quantized layers take the 8-bit values "
                                        f"(uint8 or int8; PyTorch's int_repr()) with their scale and zero point")
    return same_device(x, w, *([bias] if isinstance(bias, Array) else []))


def _finish(acc: Array, x_rows: Array, w: Array, bias: Any, m: int, n: int, k: int, *, x_scale: Any,
            x_zero_point: Any, w_scale: Any, w_zero_point: Any, out: Any, out_scale: Any,
            out_zero_point: Any, pq: int, out_shape: tuple[int, ...]) -> Array:
    """The epilogue: zero-point corrections and the output dtype's arithmetic (see quantized.mako)."""
    device = acc.device
    out_dt = _out_dtype(out)
    x_zero = _check_zero("x_zero_point", x_zero_point, x_rows.dtype)
    sx = float(x_scale)
    if not (np.isfinite(sx) and sx > 0):
        raise InvalidArgumentError(f"x_scale={x_scale!r} must be a positive number")
    sw = _per_channel("w_scale", w_scale, n, np.float64)
    if not np.all(sw > 0):
        raise InvalidArgumentError("w_scale must be positive")
    zw = _per_channel("w_zero_point", w_zero_point, n, np.int64)
    if zw.min() < np.iinfo(w.dtype).min or zw.max() > np.iinfo(w.dtype).max:
        raise InvalidArgumentError(f"w_zero_point out of the range of {w.dtype}")
    b = np.zeros(n, np.float32) if bias is None else _per_channel("bias", bias, n, np.float32)
    act = (np.float32(sx) * sw.astype(np.float32)).astype(np.float32)  # PyTorch: float(sx) * float(sw[j])
    qmin = qmax = out_zero = 0
    if out_dt.kind in "iu" and out_dt.itemsize == 1:
        if out_scale is None or out_zero_point is None:
            raise InvalidArgumentError(f"out={out_dt} needs out_scale and out_zero_point")
        sy = float(out_scale)
        if not (np.isfinite(sy) and sy > 0):
            raise InvalidArgumentError(f"out_scale={out_scale!r} must be a positive number")
        out_zero = _check_zero("out_zero_point", out_zero_point, out_dt)
        qmin, qmax = int(np.iinfo(out_dt).min), int(np.iinfo(out_dt).max)
        scale = (act / np.float32(sy)).astype(np.float32)
        offset = (b / act).astype(np.float32)
    else:
        scale, offset = act, b
    need_x_sums = bool(np.any(zw))
    program = _program(device, x_rows.dtype, out_dt, need_x_sums)
    sums = xgpu.empty((n,), np.int32, device)
    _program(device, w.dtype).row_sums(sums, w, np.int32(n), np.int32(k), global_size=n)
    x_sums = xgpu.empty((max(m, 1),), np.int32, device)
    if need_x_sums:
        program.row_sums(x_sums, x_rows, np.int32(m), np.int32(k), global_size=m)
    result = xgpu.empty(out_shape, out_dt, device)
    i32 = np.int32
    program.epilogue(result, acc, sums, xgpu.asarray(zw.astype(np.int32), device), x_sums,
                     xgpu.asarray(scale, device), xgpu.asarray(offset, device), i32(x_zero), i32(k),
                     i32(out_zero), i32(qmin), i32(qmax), i32(m), i32(n), i32(pq), global_size=(n, m))
    return result


def linear(x: Array, w: Array, bias: Any = None, *, x_scale: float, x_zero_point: int, w_scale: Any,
           w_zero_point: Any = 0, out: Any = "uint8", out_scale: float | None = None,
           out_zero_point: int | None = None) -> Array:
    """``torch.ao.nn.quantized.Linear``: ``y = x @ w.T + bias`` on quantized values.

    x: (M, K) uint8 or int8 values quantized with ``x_scale``/``x_zero_point``; w: (N, K) int8 (or uint8)
    values, quantized per tensor (scalars) or per output channel (``w_scale``/``w_zero_point`` of length
    N); bias: float32 (N,), numpy or xgpu. ``out``: ``"int32"`` (sum over k of (x - zx)(w - zw), exact),
    ``"float32"`` (that times x_scale * w_scale plus bias) or ``"uint8"``/``"int8"`` (requantized with
    ``out_scale``/``out_zero_point``, bit for bit what PyTorch's quantized linear gives).
    """
    device = _check_inputs(x, w, bias)
    if x.ndim != 2 or w.ndim != 2:
        raise ShapeError(f"linear takes x (M, K) and w (N, K), got x {x.shape} and w {w.shape}")
    (m, k), (n, k2) = x.shape, w.shape
    if k != k2:
        raise ShapeError(f"x has {k} features but w expects {k2} (w is (out_features, in_features))")
    if m == 0 or n == 0 or k == 0:
        raise ShapeError(f"linear needs non-empty x and w, got x {x.shape} and w {w.shape}")
    acc = xgpu.empty((m, n), np.int32, device)
    launch(acc, x, w, m, n, k, 1, 1, 0, False, True, (0, 0, 0))
    return _finish(acc, x, w, bias, m, n, k, x_scale=x_scale, x_zero_point=x_zero_point, w_scale=w_scale,
                   w_zero_point=w_zero_point, out=out, out_scale=out_scale, out_zero_point=out_zero_point,
                   pq=0, out_shape=(m, n))


def _pair(value: Any, name: str, low: int) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v >= low for v in pair):
        raise InvalidArgumentError(f"{name} must be an int >= {low} or a pair of them, not {value!r}")
    return int(pair[0]), int(pair[1])


def conv2d(x: Array, w: Array, bias: Any = None, *, x_scale: float, x_zero_point: int, w_scale: Any,
           w_zero_point: Any = 0, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1,
           out: Any = "uint8", out_scale: float | None = None, out_zero_point: int | None = None) -> Array:
    """``torch.ao.nn.quantized.Conv2d`` (NCHW): x (N, C, H, W) 8-bit values, w (K, C, R, S) int8, the
    quantization arguments as :func:`linear`'s (per output channel: length K). Padding reads as the
    input's zero point (a real 0), as PyTorch's does. Runs as an im2col (xgpu kernel) into the integer
    GEMM; the result is (N, K, P, Q) in ``out``'s dtype."""
    device = _check_inputs(x, w, bias)
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(f"conv2d takes 4-D x (N, C, H, W) and w (K, C, R, S), got x {x.shape} and w {w.shape}")
    if groups != 1:
        raise InvalidArgumentError(f"groups={groups}: the quantized conv2d takes groups=1 only; split the "
                                   "channels and call it once per group")
    n_img, c, h, wd = x.shape
    k_out, c2, r, s = w.shape
    if c != c2:
        raise ShapeError(f"w has {c2} input channels but x has {c}")
    sh, sw_ = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    p = (h + 2 * ph - dh * (r - 1) - 1) // sh + 1
    q = (wd + 2 * pw - dw * (s - 1) - 1) // sw_ + 1
    if min(p, q, n_img, k_out, c) < 1:
        raise ShapeError(f"x {x.shape} with a {r}x{s} window (padding {ph},{pw}, dilation {dh},{dw}) gives no "
                         "output pixels")
    rows, crs = n_img * p * q, c * r * s
    if rows * crs > 2**31 - 1:
        raise ShapeError(f"the unfolded input has {rows * crs} elements (more than 2**31-1): split the batch")
    x_zero = _check_zero("x_zero_point", x_zero_point, x.dtype)
    cols = xgpu.empty((rows, crs), x.dtype, device)
    i32 = np.int32
    _program(device, x.dtype).im2col(cols, x, i32(c), i32(h), i32(wd), i32(r), i32(s), i32(p), i32(q), i32(sh),
                                     i32(sw_), i32(ph), i32(pw), i32(dh), i32(dw), i32(rows), i32(x_zero),
                                     global_size=(crs, rows))
    acc = xgpu.empty((rows, k_out), np.int32, device)
    w_rows = w.reshape((k_out, crs))
    launch(acc, cols, w_rows, rows, k_out, crs, 1, 1, 0, False, True, (0, 0, 0))
    return _finish(acc, cols, w_rows, bias, rows, k_out, crs, x_scale=x_scale, x_zero_point=x_zero_point,
                   w_scale=w_scale, w_zero_point=w_zero_point, out=out, out_scale=out_scale,
                   out_zero_point=out_zero_point, pq=p * q, out_shape=(n_img, k_out, p, q))
