"""Array arithmetic with numpy's semantics, built on the generators: each operator or function is one
elementwise (or reduction) kernel per signature, made once and cached. numpy's own ufunc machinery
decides the result dtypes (``ufunc.resolve_dtypes``), so type promotion is numpy's, Python scalars
included (they are "weak": ``float32_array * 2.5`` stays float32)."""

from __future__ import annotations

import functools
import re
import sys
from typing import Any

import numpy as np

from ._array import GENERATED, Array, asarray, same_device
from ._elementwise import ElementwiseKernel, ReductionKernel, ScanKernel, _cast
from .errors import InvalidArgumentError, ShapeError, UnsupportedDtypeError
from .template import BFLOAT16

# C expressions over the loop's compute type, with a and b the operands
_BINARY = {
    "add": "a + b", "subtract": "a - b", "multiply": "a * b", "divide": "a / b", "power": "pow(a, b)",
    "maximum": "(a != a || a > b) ? a : b", "minimum": "(a != a || a < b) ? a : b",
    "less": "a < b", "less_equal": "a <= b", "greater": "a > b", "greater_equal": "a >= b", "equal": "a == b",
    "not_equal": "a != b",
}
_UNARY = {
    "negative": "-a", "positive": "a", "exp": "exp(a)", "log": "log(a)", "sqrt": "sqrt(a)", "absolute": "{abs}",
    "sin": "sin(a)", "cos": "cos(a)", "tanh": "tanh(a)",
}
_FLOAT_ONLY = {"exp", "log", "sqrt", "sin", "cos", "tanh"}


def _int_power(c: str, signed: bool) -> str:
    """An integer power by repeated squaring (numpy's integer ``**``; it wraps around on overflow as
    numpy's does). numpy refuses negative exponents; a kernel cannot raise, so it gives what the
    rational power truncates to: 1 for a base of 1, +-1 for -1, 0 otherwise."""
    negative = f"""
    if (b < 0)
        return a == 1 ? ({c})1 : a == ({c})(-1) ? ((b & 1) ? a : ({c})1) : ({c})0;""" if signed else ""
    return f"""
DEVICE_FN {c} xgpu_ipow_{c.replace(' ', '_')}({c} a, {c} b)
{{{negative}
    {c} r = 1;
    while (b) {{
        if (b & 1)
            r *= a;
        a *= a;
        b >>= 1;
    }}
    return r;
}}
"""


def _compute(dt: np.dtype) -> str:
    from .template import compute_ctype

    return compute_ctype(dt)


def _floating(dtype: np.dtype) -> bool:
    """A floating-point dtype: numpy's (kind "f") or ml_dtypes' bfloat16 (kind "V" to numpy)."""
    return dtype.kind == "f" or dtype == BFLOAT16


def _dtype_of(x: Any) -> Any:
    """What ``resolve_dtypes`` takes for an operand: a dtype, or a Python scalar's type (a weak scalar)."""
    if isinstance(x, Array):
        return x.dtype
    if isinstance(x, bool):
        return np.dtype(np.bool_)
    if isinstance(x, (int, float, complex)):
        return type(x)
    if isinstance(x, (np.generic, np.ndarray)):
        return np.asarray(x).dtype
    raise InvalidArgumentError(f"cannot compute with a {type(x).__name__}: use xgpu arrays, numpy arrays or numbers")


def _resolve(ufunc: np.ufunc, operands: tuple[Any, ...]) -> tuple[np.dtype, ...]:
    try:
        return ufunc.resolve_dtypes((*(_dtype_of(x) for x in operands), None))
    except (TypeError, np.exceptions.DTypePromotionError) as exc:
        names = ", ".join(str(_dtype_of(x)) for x in operands)
        raise UnsupportedDtypeError(f"numpy has no {ufunc.__name__} loop for ({names}): {exc}") from None


@functools.cache
def _kernel(op: str, dtypes: tuple[np.dtype, ...], loop: tuple[np.dtype, ...], is_array: tuple[bool, ...]) -> Any:
    """out = op(operands) converted as numpy converts them: each operand cast to the loop's dtype first."""
    names = "ab"[: len(dtypes)]
    args = ", ".join(f"{'const ' if arr else ''}{dt.name} {'*' if arr else ''}{n}"
                     for n, dt, arr in zip(names, dtypes, is_array))
    expr = _BINARY.get(op) or _UNARY[op]
    if op in ("maximum", "minimum") and loop[0].kind != "f":
        expr = "(a > b) ? a : b" if op == "maximum" else "(a < b) ? a : b"
    if op == "absolute":
        # a select (a < 0 ? -a : a) becomes llvm.abs, which Oclgrind cannot run: multiply by the sign instead
        expr = "fabs(a)" if _floating(loop[0]) else "a" if loop[0].kind in "ub" else "a * ((a > 0) - (a < 0))"
    preamble = ""
    if op == "power" and loop[0].kind in "iub":
        c = _compute(loop[0])
        preamble, expr = _int_power(c, loop[0].kind == "i"), f"xgpu_ipow_{c.replace(' ', '_')}(a, b)"
    if op in _FLOAT_ONLY and not _floating(loop[0]):
        raise UnsupportedDtypeError(f"{op} of {loop[0]} has no xgpu kernel: convert to a float dtype first")
    casts = {n: f"(({_compute(lt)})({n}))" if dt != lt else n for n, dt, lt in zip(names, dtypes, loop)}
    expr = re.sub(r"\b([ab])\b", lambda m: casts[m.group(1)], expr)
    out = loop[len(dtypes)]
    result = f"({_compute(out)})({expr})" if out != np.bool_ else f"(bool_t)(({expr}) != 0)"
    return ElementwiseKernel(f"{out.name} *out, {args}", f"out = {result}",
                             name=f"{op}_{'_'.join(d.name for d in dtypes)}", preamble=preamble)


def apply(ufunc: np.ufunc, *operands: Any, out: Array | None = None) -> Array:
    """``ufunc(*operands)`` on the device (operands: xgpu arrays, numpy arrays, numbers)."""
    op = ufunc.__name__
    if op not in _BINARY and op not in _UNARY:
        raise InvalidArgumentError(f"numpy's {op} has no xgpu kernel; compute it with xgpu.elementwise, or on the "
                                   "host with a.get()")
    device = same_device(*[x for x in operands if isinstance(x, Array)])
    operands = tuple(asarray(x, device) if isinstance(x, np.ndarray) and x.ndim else x for x in operands)
    loop = _resolve(ufunc, operands)
    if any(dt.kind == "c" for dt in loop):
        raise UnsupportedDtypeError(f"{op} of complex arrays has no xgpu kernel; compute it on the host")
    shapes = [x.shape for x in operands if isinstance(x, Array)]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ShapeError(f"{op}: shapes {', '.join(map(str, shapes))} do not broadcast together") from None
    dtypes = tuple(x.dtype if isinstance(x, Array) else loop[i] for i, x in enumerate(operands))
    is_array = tuple(isinstance(x, Array) for x in operands)
    kernel = _kernel(op, dtypes, loop, is_array)
    target = out if out is not None else Array(device, shape, loop[-1])
    if out is not None and (out.shape != shape or out.dtype != loop[-1]):
        raise ShapeError(f"{op}: out must be a {loop[-1]} array of shape {shape}, not {out.dtype} {out.shape}")
    if any(isinstance(x, Array) and x._block is target._block for x in operands) and not all(
            not isinstance(x, Array) or (x.shape == target.shape and x.strides == target.strides
                                         and x._offset == target._offset) for x in operands):
        result = apply(ufunc, *operands)  # in place over a shifted view of itself: through a temporary
        from ._array import copyto

        return copyto(target, result)
    kernel(target, *operands)
    return target


# ---------------------------------------------------------------------------------------------
# Reductions

def _sum_dtype(dt: np.dtype) -> np.dtype:
    return np.sum(np.zeros(1, dt)).dtype


@functools.cache
def _reduce_kernel(kind: str, dtype: np.dtype, out: np.dtype) -> ReductionKernel:
    value = _cast(dtype, out, "x")
    if kind == "sum":
        return ReductionKernel(f"const {dtype.name} *x", value, "a + b", "0", out, name=f"sum_{dtype.name}")
    if _floating(dtype):
        # 1/0 rather than INFINITY, which CUDA's runtime compiler does not define
        neutral = "(-1.0f / 0.0f)" if kind == "max" else "(1.0f / 0.0f)"
    elif dtype == np.bool_:
        neutral = "0" if kind == "max" else "1"
    else:
        info = np.iinfo(dtype)
        neutral = f"({_compute(dtype)})({info.min if kind == 'max' else info.max}{'UL' if dtype.kind == 'u' else 'L'})"
    nan = "a != a || " if _floating(dtype) else ""  # NaN wins, as in numpy
    pick = f"({nan}a > b) ? a : b" if kind == "max" else f"({nan}a < b) ? a : b"
    return ReductionKernel(f"const {dtype.name} *x", "x", pick, neutral, out, name=f"{kind}_{dtype.name}")


def _operand(a: Any) -> Array:
    if isinstance(a, Array):
        return a
    raise InvalidArgumentError(f"expected an xgpu array, not a {type(a).__name__} (xgpu.asarray copies host data)")


def sum(a: Any, axis: int | None = None, dtype: Any = None) -> Array:  # noqa: A001  (numpy's name)
    """numpy's ``sum`` over all elements or one axis; integers sum in 64 bits as numpy's do."""
    a = _operand(a)
    if a.dtype.kind == "c":
        raise UnsupportedDtypeError("sum of complex arrays has no xgpu kernel; sum a.get() on the host")
    out = np.dtype(dtype) if dtype is not None else _sum_dtype(a.dtype)
    return _reduce_kernel("sum", a.dtype, out)(a, axis=axis)


@functools.cache
def _cumsum_kernel(dtype: np.dtype, out: np.dtype) -> ScanKernel:
    return ScanKernel(f"const {dtype.name} *x", _cast(dtype, out, "x"), "a + b", "0", out,
                      name=f"cumsum_{dtype.name}_{out.name}")


def cumsum(a: Any, axis: int | None = None, dtype: Any = None) -> Array:
    """numpy's ``cumsum``: along one axis, or over every element in C order (a 1-D result) with
    ``axis=None``; integers accumulate in 64 bits as numpy's do."""
    a = _operand(a)
    if a.dtype.kind == "c":
        raise UnsupportedDtypeError("cumsum of complex arrays has no xgpu kernel; compute it on the host")
    out = np.dtype(dtype) if dtype is not None else _sum_dtype(a.dtype)
    if out.kind == "c":
        raise UnsupportedDtypeError("cumsum into a complex dtype has no xgpu kernel")
    return _cumsum_kernel(a.dtype, out)(a, axis=axis)


def _extreme(kind: str, a: Any, axis: int | None) -> Array:
    a = _operand(a)
    if a.dtype.kind == "c":
        raise UnsupportedDtypeError(f"{kind} of complex arrays has no xgpu kernel")
    size = a.size if axis is None else a.shape[axis] if -a.ndim <= axis < a.ndim else 1
    if size == 0:
        raise ShapeError(f"{kind} of an empty array (or axis) has no identity, as in numpy")
    return _reduce_kernel(kind, a.dtype, a.dtype)(a, axis=axis)


def max(a: Any, axis: int | None = None) -> Array:  # noqa: A001  (numpy's name)
    """numpy's ``max`` (NaN propagates)."""
    return _extreme("max", a, axis)


def min(a: Any, axis: int | None = None) -> Array:  # noqa: A001  (numpy's name)
    """numpy's ``min`` (NaN propagates)."""
    return _extreme("min", a, axis)


def mean(a: Any, axis: int | None = None) -> Array:
    """numpy's ``mean``: float64 for integer arrays (as numpy), the array's dtype for floats (summed in it)."""
    a = _operand(a)
    out = a.dtype if _floating(a.dtype) else np.dtype(np.float64)
    count = a.size if axis is None else a.shape[axis]
    low = out in (np.float16, BFLOAT16)  # storage-only: summed and divided in float32
    total = sum(a, axis=axis, dtype=np.float32 if low else out)
    return apply(np.divide, total, np.float32(count) if low else out.type(count)).astype(out, copy=False)


def dot(a: Any, b: Any) -> Array:
    """numpy's ``dot`` for 1-D (a 0-d array) and 2-D arrays (``matmul``)."""
    a, b = _operand(a), _operand(b)
    if a.ndim == 1 and b.ndim == 1:
        if a.shape != b.shape:
            raise ShapeError(f"dot: shapes {a.shape} and {b.shape} are not aligned")
        loop = _resolve(np.multiply, (a, b))
        out = loop[-1] if _floating(loop[-1]) else _sum_dtype(loop[-1])
        return _dot_kernel(a.dtype, b.dtype, out)(a, b)
    if a.ndim == 2 and b.ndim in (1, 2):
        from ._ops import matmul

        return matmul(a, b) if b.ndim == 2 else matmul(a, b.reshape(-1, 1)).reshape(-1)
    raise ShapeError(f"dot takes 1-D or 2-D arrays here, got {a.shape} and {b.shape}")


@functools.cache
def _dot_kernel(da: np.dtype, db: np.dtype, out: np.dtype) -> ReductionKernel:
    c = _compute(out)
    return ReductionKernel(f"const {da.name} *x, const {db.name} *y", f"({c})x * ({c})y", "a + b", "0", out,
                           name=f"dot_{da.name}_{db.name}")


def where(condition: Any, x: Any, y: Any) -> Array:
    """numpy's ``where(condition, x, y)``, broadcasting; x and y promote as numpy promotes them."""
    cond = _operand(condition)
    device = cond.device
    x = asarray(x, device) if isinstance(x, np.ndarray) else x
    y = asarray(y, device) if isinstance(y, np.ndarray) else y
    out_dt = np.result_type(*(v.dtype if isinstance(v, Array) else v for v in (x, y)))
    if out_dt.kind == "c":
        raise UnsupportedDtypeError("where of complex arrays has no xgpu kernel")
    shape = np.broadcast_shapes(cond.shape, *[v.shape for v in (x, y) if isinstance(v, Array)])
    kernel = _where_kernel(cond.dtype, *(v.dtype if isinstance(v, Array) else out_dt for v in (x, y)),
                           out_dt, isinstance(x, Array), isinstance(y, Array))
    result = Array(device, shape, out_dt)
    kernel(result, cond, x, y)
    return result


@functools.cache
def _where_kernel(dc: np.dtype, dx: np.dtype, dy: np.dtype, out: np.dtype, x_arr: bool, y_arr: bool) -> Any:
    def decl(n: str, dt: np.dtype, arr: bool) -> str:
        return f"const {dt.name} *{n}" if arr else f"{dt.name} {n}"

    return ElementwiseKernel(f"{out.name} *out, const {dc.name} *c, {decl('x', dx, x_arr)}, {decl('y', dy, y_arr)}",
                             f"out = c ? {_cast(dx, out, 'x')} : {_cast(dy, out, 'y')}", name=f"where_{out.name}")


def exp(a: Any) -> Array:
    """numpy's ``exp``."""
    return apply(np.exp, _operand(a))


def log(a: Any) -> Array:
    """numpy's ``log``."""
    return apply(np.log, _operand(a))


def sqrt(a: Any) -> Array:
    """numpy's ``sqrt``."""
    return apply(np.sqrt, _operand(a))


def abs(a: Any) -> Array:  # noqa: A001  (numpy's name)
    """numpy's ``abs``."""
    return apply(np.absolute, _operand(a))


UFUNC_METHODS = {"add": sum, "maximum": max, "minimum": min}


GENERATED.math = sys.modules[__name__]  # arrays reach these kernels through it (see xgpu._array)
