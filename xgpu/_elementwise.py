"""Elementwise kernels from one C statement (``xgpu.elementwise``), and the copies, conversions and fills
that arrays build on them.

The kernel is rendered from ``elementwise.mako``: each array argument is passed as its buffer, its
offset and one stride per dimension (hidden arguments), and inside the statement its name stands for
its element at the current position. So a strided or offset view is read and written in place, and a
const input of size 1 along an axis is broadcast, with no copy. Dimensions that are contiguous for
every array are merged first, so contiguous arrays take the plain ``base[offset + i]`` path.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._array import GENERATED, Array, check_dtype, same_device
from .errors import InvalidArgumentError, ShapeError, UnsupportedDtypeError
from .template import BFLOAT16, KernelTemplate, compute_ctype, ctype

if TYPE_CHECKING:
    from ._program import Event

TEMPLATE = KernelTemplate(Path(__file__).with_name("elementwise.mako"))

# C names first: numpy reads "float" as float64 and "int" as the platform's long
_C_NAMES = {
    "float": "float32", "double": "float64", "half": "float16", "half_t": "float16", "bfloat16_t": "bfloat16", "bool": "bool", "bool_t": "bool",
    "char": "int8", "unsigned char": "uint8", "uchar": "uint8", "short": "int16", "unsigned short": "uint16",
    "ushort": "uint16", "int": "int32", "unsigned int": "uint32", "unsigned": "uint32", "uint": "uint32",
    "long": "int64", "unsigned long": "uint64", "ulong": "uint64", "int64_t": "int64", "uint64_t": "uint64",
    "int32_t": "int32", "uint32_t": "uint32", "cfloat_t": "complex64", "cdouble_t": "complex128",
}
_RESERVED = {"i", "n"}


class Argument:
    """One argument of a generated kernel: an array (``pointer``) or a scalar, its dtype, and whether it is const."""

    __slots__ = ("const", "dtype", "name", "pointer")

    def __init__(self, name: str, dtype: np.dtype, pointer: bool, const: bool):
        self.name, self.dtype, self.pointer, self.const = name, dtype, pointer, const

    def __repr__(self) -> str:
        return f"{'const ' if self.const else ''}{self.dtype.name}{'*' if self.pointer else ''} {self.name}"


def parse_arguments(text: str) -> tuple[Argument, ...]:
    """``"float32 *y, const float32 *x, float32 a"`` (numpy or C type names) as Arguments."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"arguments must be a string such as 'float32 *y, const float32 *x, float32 a', "
                                   f"not {type(text).__name__}")
    out: list[Argument] = []
    for raw in text.split(","):
        raw = raw.strip()
        if not raw:
            continue
        m = re.fullmatch(r"(const\s+)?([A-Za-z_][\w ]*?)\s*(\*?)\s*([A-Za-z_]\w*)", raw)
        if m is None:
            raise InvalidArgumentError(f"cannot read argument {raw!r}: write 'TYPE NAME' for a scalar, 'TYPE *NAME' "
                                       "for an array, 'const TYPE *NAME' for an array only read")
        const, tname, star, name = bool(m.group(1)), " ".join(m.group(2).split()), bool(m.group(3)), m.group(4)
        try:
            dtype = check_dtype(_C_NAMES.get(tname, tname))
        except UnsupportedDtypeError:
            raise UnsupportedDtypeError(f"argument {raw!r}: unknown type {tname!r}; use a numpy name (float32, int64, "
                                        "bool, ...) or its C name (float, int, ...)") from None
        if name in _RESERVED or "__" in name:
            raise InvalidArgumentError(f"argument name {name!r} is taken: i (the position) and n (the size) are the "
                                       "kernel's own, and names with '__' are the hidden arguments'")
        if any(a.name == name for a in out):
            raise InvalidArgumentError(f"argument {name!r} is declared twice")
        out.append(Argument(name, dtype, star, const))
    if not any(a.pointer for a in out):
        raise InvalidArgumentError("an elementwise kernel needs at least one array argument ('TYPE *NAME')")
    return tuple(out)


def merge_dims(shape: tuple[int, ...], strides: list[tuple[int, ...]]) -> tuple[tuple[int, ...], list[list[int]]]:
    """Drop size-1 dimensions and merge neighbours that are contiguous for every array (numpy's nditer does
    the same): the launch then indexes as few dimensions as the layouts allow."""
    keep = [d for d, s in enumerate(shape) if s != 1]
    out_shape: list[int] = []
    out_strides: list[list[int]] = [[] for _ in strides]
    for d in keep:
        if out_shape and all(o[-1] == st[d] * shape[d] for o, st in zip(out_strides, strides)):
            out_shape[-1] *= shape[d]
            for o, st in zip(out_strides, strides):
                o[-1] = st[d]
        else:
            out_shape.append(shape[d])
            for o, st in zip(out_strides, strides):
                o.append(st[d])
    return tuple(out_shape), out_strides


def broadcast_strides(a: Array, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``a``'s element strides seen with ``shape`` (numpy broadcasting: stride 0 along a stretched axis)."""
    pad = len(shape) - a.ndim
    return tuple(0 if d < pad or a.shape[d - pad] == 1 else a._estrides[d - pad] for d in range(len(shape)))


def _convert_scalar(value: Any, arg: Argument, where: str) -> Any:
    if isinstance(value, Array):
        raise InvalidArgumentError(f"{where} is a scalar ({arg!r}): pass a number, not an array")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if not isinstance(value, (int, float, complex, bool, np.generic)):
        raise InvalidArgumentError(f"{where} is a scalar ({arg!r}): pass a number, not a {type(value).__name__}")
    dt = arg.dtype
    if dt.kind in "iu" and isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise InvalidArgumentError(f"{where} takes {dt.name}; {value!r} is not a whole number")
    if dt.kind in "iu" and isinstance(value, (int, np.integer)):
        info = np.iinfo(dt)
        if not info.min <= int(value) <= info.max:
            raise InvalidArgumentError(f"{where} = {value!r} does not fit {dt.name} ({info.min} to {info.max})")
    if dt.kind == "c":
        raise UnsupportedDtypeError(f"{where}: complex scalars cannot be passed to a kernel; pass the real and "
                                    "imaginary parts as two real scalars")
    with np.errstate(all="ignore"):
        return (np.float32 if dt in (np.float16, BFLOAT16) else dt.type)(value)


def check_call(name: str, arguments: tuple[Argument, ...], args: tuple[Any, ...],
               result: np.dtype | None = None) -> tuple[list[tuple[Argument, Array]], Any, tuple[int, ...]]:
    """What a generated kernel checks before it launches: the count of arguments, each array an xgpu Array
    of its declared dtype, all on one device that supports every dtype involved (``result`` too), and
    shapes that broadcast together. Returns the (declaration, array) pairs, the device and the shape."""
    if len(args) != len(arguments):
        raise InvalidArgumentError(f"{name} takes {len(arguments)} argument(s) "
                                   f"({', '.join(map(repr, arguments))}), got {len(args)}")
    arrays = [(a, x) for a, x in zip(arguments, args) if a.pointer]
    for a, x in arrays:
        if not isinstance(x, Array):
            raise InvalidArgumentError(f"argument {a.name} of {name} is an array ({a!r}): pass an xgpu "
                                       f"Array, not a {type(x).__name__} (xgpu.asarray copies host data)")
        if x.dtype != a.dtype:
            raise UnsupportedDtypeError(f"argument {a.name} of {name} is declared {a.dtype.name}, but the "
                                        f"array passed holds {x.dtype}: convert it with .astype('{a.dtype.name}')")
    device = same_device(*[x for _, x in arrays])
    for dt in {a.dtype for a in arguments} | ({result} if result is not None else set()):
        if not device.supports(dt):
            raise UnsupportedDtypeError(f"{device.id} ({device.name}) has no {dt.name} support; use float32")
    try:
        shape = tuple(np.broadcast_shapes(*[x.shape for _, x in arrays]))
    except ValueError:
        shapes = ", ".join(f"{a.name} {x.shape}" for a, x in arrays)
        raise ShapeError(f"{name}: the arrays' shapes do not broadcast together ({shapes})") from None
    return arrays, device, shape


class ElementwiseKernel:
    """An elementwise kernel made from one C statement: see :func:`xgpu.elementwise`."""

    def __init__(self, arguments: str, operation: str, name: str = "elementwise", preamble: str = ""):
        if not isinstance(operation, str) or not operation.strip():
            raise InvalidArgumentError("operation must be C statements, e.g. 'y = a * x + y'")
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgumentError(f"name must be a C identifier, not {name!r}")
        self.arguments = parse_arguments(arguments)
        self.operation = operation.strip().rstrip(";")
        self.name = name
        self.preamble = preamble

    def __repr__(self) -> str:
        return f"<xgpu.ElementwiseKernel {self.name}({', '.join(map(repr, self.arguments))}): {self.operation}>"

    def source(self, backend: str | None = None, ndim: int = 0) -> str:
        """The rendered source for ``backend`` (by default the default device's), for reading."""
        from ._program import render

        return render(TEMPLATE, backend, defines=self._defines(ndim)).text

    def _defines(self, ndim: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "arrays": tuple((a.name, a.dtype.name, a.const) for a in self.arguments if a.pointer),
            "scalars": tuple((a.name, a.dtype.name) for a in self.arguments if not a.pointer),
            "operation": self.operation,
            "preamble": self.preamble,
            "ndim": ndim,
        }

    def __call__(self, *args: Any) -> Event | None:
        """Run over the broadcast shape of the array arguments, given in the declared order. Returns the
        launch's :class:`~xgpu.Event`, or None when the shape holds no element."""
        from ._program import compile

        arrays, device, shape = check_call(self.name, self.arguments, args)
        for a, x in arrays:
            if not a.const and x.shape != shape:
                raise ShapeError(f"{self.name}: argument {a.name} is written, so it must have the full shape {shape}, "
                                 f"not {x.shape} (only const arguments are broadcast)")
        n = math.prod(shape)
        if n == 0:
            return None
        dims, strides = merge_dims(shape, [broadcast_strides(x, shape) for _, x in arrays])
        ndim = 0 if len(dims) <= 1 and all(s == [1] or not s for s in strides) else len(dims)
        program = compile(TEMPLATE, device, defines=self._defines(ndim))
        # the kernel takes the arrays first, then the scalars (elementwise.mako)
        kernel_args: list[Any] = []
        for (_, x), st in zip(arrays, strides):
            kernel_args += [x._base(), x._offset, *(st if ndim else ())]
        kernel_args += [_convert_scalar(x, a, f"argument {a.name} of {self.name}")
                        for a, x in zip(self.arguments, args) if not a.pointer]
        kernel_args += [*dims[1:ndim], n] if ndim else [n]
        return program.kernel(self.name)(*kernel_args, global_size=n)


def elementwise(arguments: str, operation: str, name: str = "elementwise", preamble: str = "") -> ElementwiseKernel:
    """An elementwise kernel from one C statement over named arguments.

    ``arguments`` declares them, in the order the kernel takes them: ``"float32 *y, const float32 *x,
    float32 a"`` (numpy or C type names; ``*`` an array, ``const`` an array only read). In ``operation``
    each array's name stands for its element at the current position (``i`` is that position, flat, in
    C order). Arrays may be views of any strides; const arrays broadcast (numpy's rules). float16
    and bfloat16 elements are read into ``float`` and written back rounded. Compiled once per device and layout,
    and cached on disk like any kernel.
    """
    return ElementwiseKernel(arguments, operation, name, preamble)


# ---------------------------------------------------------------------------------------------
# What arrays build on it: copies between any layouts and dtypes, and fills.

def _cast(src: np.dtype, dst: np.dtype, value: str) -> str:
    """C for ``value`` (of dtype src, read as its compute type) converted the way numpy's astype converts."""
    if dst.kind == "c":
        if src.kind == "c":
            return value if src == dst else f"CMAKE({ctype(dst)}, CREAL({value}), CIMAG({value}))"
        real = "double" if dst == np.complex128 else "float"
        return f"CMAKE({ctype(dst)}, ({real})({value}), ({real})0)"
    if src.kind == "c":
        raise UnsupportedDtypeError(f"converting {src} to {dst} drops the imaginary part: take .real on the host first")
    if dst == np.bool_:
        return f"(bool_t)(({value}) != 0)"
    return f"({compute_ctype(dst)})({value})"


@functools.cache
def copy_kernel(src: np.dtype, dst: np.dtype) -> ElementwiseKernel:
    return ElementwiseKernel(f"{dst.name} *dst, const {src.name} *src", f"dst = {_cast(src, dst, 'src')}",
                             name=f"copy_{src.name}_to_{dst.name}")


@functools.cache
def fill_kernel(dtype: np.dtype) -> ElementwiseKernel:
    return ElementwiseKernel(f"{dtype.name} *dst, {dtype.name} value", "dst = value", name=f"fill_{dtype.name}")


def copy_into(dst: Array, src: Array) -> None:
    """``dst[...] = src`` on the device: any strides, src broadcast to dst's shape, dtype converted."""
    if src.shape != dst.shape:
        try:
            if np.broadcast_shapes(src.shape, dst.shape) != dst.shape:
                raise ValueError
        except ValueError:
            raise ShapeError(f"cannot assign an array of shape {src.shape} to a view of shape {dst.shape}") from None
    if dst._block is src._block:
        src = src.copy()  # the same memory, perhaps overlapping: read all of it before writing
    copy_kernel(src.dtype, dst.dtype)(dst, src)


def fill(dst: Array, value: Any) -> None:
    """Every element of ``dst`` (any strides) set to ``value``, converted to its dtype as numpy does."""
    if dst.dtype.kind == "c" or dst.dtype == np.bool_:
        # complex scalars cannot cross the kernel boundary, and a bool must stay 0 or 1: one element from the host
        one = Array(dst.device, (), dst.dtype).set(np.asarray(value, dst.dtype))
        copy_into(dst, one)
        return
    try:
        with np.errstate(all="ignore"):
            host = np.asarray(value).astype(dst.dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"cannot fill a {dst.dtype} array with {value!r}: {exc}") from None
    if host.ndim:
        raise ShapeError(f"fill takes one number, not an array of shape {host.shape}")
    fill_kernel(dst.dtype)(dst, host[()])


@functools.cache
def arange_kernel(dtype: np.dtype) -> ElementwiseKernel:
    return ElementwiseKernel(f"{dtype.name} *dst, {dtype.name} start, {dtype.name} step", "dst = start + i * step",
                             name=f"arange_{dtype.name}")


def arange_into(dst: Array, start: Any, step: Any) -> None:
    """``dst[i] = start + i * step`` (a 1-D array), in dst's dtype."""
    if dst.dtype.kind not in "iuf":
        raise UnsupportedDtypeError(f"arange makes integer or float arrays, not {dst.dtype}")
    arange_kernel(dst.dtype)(dst, start, step)


# ---------------------------------------------------------------------------------------------
# Reductions (xgpu.reduction), rendered from reduction.mako.

REDUCTION_TEMPLATE = KernelTemplate(Path(__file__).with_name("reduction.mako"))
_UNROLL = 4  # independent accumulators per work-item: several add chains in flight instead of one


class _Plan:
    """How a device runs reductions (xgpu/reduction.mako): the split kernel's work-group size, whether
    work-items read interleaved (the device packs consecutive work-items into SIMD lanes or a GPU's
    warps: consecutive work-items should read consecutive elements) or each a contiguous stretch (a CPU
    runtime that vectorises inside a work-item), the columns per work-group of the ``_cols`` kernel, how
    many work-items keep the device busy and how many work-groups share a long row."""

    def __init__(self, device: Any):
        from .rules import device_class

        cls = device_class(device)
        units = max(int(device.compute_units), 1)
        self.cpu = device.type == "cpu"
        self.interleave = cls.vectorisation == "across-work-items"
        # on a CPU one work-group runs on one core as a loop over vectors of work-items: a group of one
        # vector's lanes passes over its stretch once, as one sequential stream
        lanes = cls.simd_lanes if cls.simd_lanes >= 4 else 16
        self.wg = lanes if self.cpu else 256
        self.cols = self.wg  # the _cols kernel (not a CPU's: _rowwise there): one column per work-item
        self.busy = units * (64 if self.cpu else 2048)
        self.groups = units * (4 if self.cpu else 8)  # work-groups of the split kernel over a long row


class ReductionKernel:
    """A reduction from a map expression and a reduce expression: see :func:`xgpu.reduction`."""

    def __init__(self, arguments: str, map_expr: str, reduce_expr: str, neutral: Any, dtype: Any,
                 name: str = "reduction", preamble: str = ""):
        for what, text in (("map_expr", map_expr), ("reduce_expr", reduce_expr)):
            if not isinstance(text, str) or not text.strip():
                raise InvalidArgumentError(f"{what} must be a C expression, e.g. 'x * x' or 'a + b'")
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgumentError(f"name must be a C identifier, not {name!r}")
        self.arguments = parse_arguments(arguments)
        writable = [a.name for a in self.arguments if a.pointer and not a.const]
        if writable:
            raise InvalidArgumentError(f"a reduction only reads its arrays: declare {', '.join(writable)} const")
        self.map_expr, self.reduce_expr = map_expr.strip(), reduce_expr.strip()
        self.neutral = str(neutral)
        self.dtype = check_dtype(dtype)
        if self.dtype.kind == "c":
            raise UnsupportedDtypeError("reductions produce real or integer values, not complex")
        self.name, self.preamble = name, preamble
        # partial results keep the accumulator's precision (float for float16 and bfloat16)
        self._partial_dtype = np.dtype(np.float32) if self.dtype in (np.float16, BFLOAT16) else self.dtype
        self._second: ReductionKernel | None = None

    def __repr__(self) -> str:
        return (f"<xgpu.ReductionKernel {self.name}({', '.join(map(repr, self.arguments))}): "
                f"reduce({self.reduce_expr}) of {self.map_expr} -> {self.dtype.name}>")

    def _defines(self, out_dtype: np.dtype, wg: int, cols: int | None = None, interleave: bool = True) -> dict[str, Any]:
        return {
            "name": self.name, "map_expr": self.map_expr, "reduce_expr": self.reduce_expr, "neutral": self.neutral,
            "arrays": tuple((a.name, a.dtype.name) for a in self.arguments if a.pointer),
            "scalars": tuple((a.name, a.dtype.name) for a in self.arguments if not a.pointer),
            "out_dtype": out_dtype.name, "preamble": self.preamble, "wg": wg, "unroll": _UNROLL,
            "cols": cols or wg, "interleave": interleave,
        }

    def source(self, backend: str | None = None) -> str:
        """The rendered source for ``backend`` (by default the default device's), for reading."""
        from ._program import render

        return render(REDUCTION_TEMPLATE, backend, defines=self._defines(self.dtype, 256)).text

    def _program(self, device: Any, out_dtype: np.dtype, plan: _Plan) -> tuple[Any, int]:
        from ._program import compile

        wg = 1 << (min(plan.wg, device.max_work_group_size).bit_length() - 1)
        while True:
            defines = self._defines(out_dtype, wg, plan.cols // plan.wg * wg, plan.interleave)
            program = compile(REDUCTION_TEMPLATE, device, defines=defines)
            if all(program.kernel(k).max_work_group_size >= wg for k in (self.name, f"{self.name}_cols")) or wg == 1:
                return program, wg
            wg //= 2

    def __call__(self, *args: Any, axis: int | None = None, out: Array | None = None) -> Array:
        """Reduce over every element (``axis=None``: a 0-d array) or along one axis; the arrays broadcast
        together first. ``out``: an array of the result's shape and dtype to write into."""
        arrays, device, shape = check_call(self.name, self.arguments, args, self.dtype)
        if axis is None:
            out_shape: tuple[int, ...] = ()
            outer, length, inner = 1, math.prod(shape), 1
        else:
            if not isinstance(axis, (int, np.integer)) or not -len(shape) <= axis < len(shape):
                raise ShapeError(f"{self.name}: axis {axis!r} is out of range for shape {shape}")
            axis = int(axis) % len(shape)
            out_shape = shape[:axis] + shape[axis + 1:]
            outer, length, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
        if out is not None and (out.shape != out_shape or out.dtype != self.dtype):
            raise ShapeError(f"out must be a {self.dtype} array of shape {out_shape}, not {out.dtype} {out.shape}")
        result = out if out is not None else Array(device, out_shape, self.dtype)
        if outer * inner == 0:
            return result
        if length == 0:
            from ._array import asarray

            return _write(result, asarray(np.full(out_shape, _neutral_value(self.neutral, self.dtype), self.dtype),
                                          device))
        # each input as C-contiguous (outer, length, inner): views that are not so are copied once
        kernel_args: list[Any] = []
        for _, x in arrays:  # the kernel takes the arrays first, then the scalars (reduction.mako)
            view = _broadcast_view(x, shape)
            if not view.is_contiguous:
                view = view.copy()
            kernel_args += [view._base(), view._offset]
        kernel_args += [_convert_scalar(x, a, f"argument {a.name} of {self.name}")
                        for a, x in zip(self.arguments, args) if not a.pointer]
        return self._launch(device, kernel_args, outer, length, inner, result, out_shape)

    def _launch(self, device: Any, kernel_args: list[Any], outer: int, length: int, inner: int, result: Array,
                out_shape: tuple[int, ...]) -> Array:
        plan = _Plan(device)
        program, wg = self._program(device, self._partial_dtype, plan)
        outputs = outer * inner
        if inner > 1 and plan.cpu:
            # a strided axis on a CPU: each work-item walks whole rows (a tile of columns) of a chunk of rows
            tile = int(min(inner, 2048))
            tiles = _ceil_div(inner, tile)
            chunks = int(max(1, min(_ceil_div(plan.groups, tiles * outer), length // 16)))
            per_chunk = _ceil_div(length, chunks)
            chunks = _ceil_div(length, per_chunk)
            target = self._target(device, result, (chunks, outputs), chunks)
            program.kernel(f"{self.name}_rowwise")(target, *kernel_args, length, inner, per_chunk, tile,
                                                   global_size=(chunks, tiles, outer), local_size=(1, 1, 1))
            return self._finish(device, target, result, out_shape, 1, chunks, outputs)
        if inner > 1:
            # a strided axis: work-groups of `cols` consecutive columns walk down a chunk of rows
            cols = plan.cols // plan.wg * wg
            tiles = -(-inner // cols)
            chunks = int(max(1, min(-(-plan.busy // (tiles * wg * outer)), length // 16)))
            per_chunk = _ceil_div(length, chunks)
            chunks = -(-length // per_chunk)
            target = self._target(device, result, (chunks, outputs), chunks)
            program.kernel(f"{self.name}_cols")(target, *kernel_args, length, inner, per_chunk,
                                                global_size=(tiles * wg, chunks, outer), local_size=(wg, 1, 1))
            return self._finish(device, target, result, out_shape, 1, chunks, outputs)
        if plan.interleave and length >= 4 * wg:
            # a device that vectorises across work-items: work-groups whose work-items read consecutive
            # elements of a row, a long row split over several
            tile = wg * _UNROLL
            chunks = int(max(1, min(-(-plan.groups // outputs), length // (8 * tile))))
            per_chunk = _round_up(_ceil_div(length, chunks), tile)
            chunks = -(-length // per_chunk)
            target = self._target(device, result, (outputs, chunks), chunks)
            program.kernel(self.name)(target, *kernel_args, length, chunks, per_chunk,
                                      global_size=(wg * chunks, outputs), local_size=(wg, 1))
            return self._finish(device, target, result, out_shape, outputs, chunks, 1)
        # each work-item folds one contiguous stretch of a row: consecutive work-items on consecutive rows
        chunks = int(max(1, min(-(-plan.busy // outputs), length // 256)))
        per_chunk = -(-length // chunks)
        chunks = -(-length // per_chunk)
        kernel = program.kernel(f"{self.name}_items")
        local = int(min(wg if plan.cpu else 256, kernel.max_work_group_size, outputs))
        local = 1 << (local.bit_length() - 1)
        target = self._target(device, result, (chunks, outputs), chunks)
        kernel(target, *kernel_args, length, outputs, per_chunk,
               global_size=(-(-outputs // local) * local, chunks), local_size=(local, 1))
        return self._finish(device, target, result, out_shape, 1, chunks, outputs)

    def _target(self, device: Any, result: Array, partial_shape: tuple[int, int], chunks: int) -> Array:
        if chunks == 1 and result._whole and self._partial_dtype == self.dtype:
            return result
        return Array(device, partial_shape, self._partial_dtype)

    def _finish(self, device: Any, target: Array, result: Array, out_shape: tuple[int, ...], outer: int,
                length: int, inner: int) -> Array:
        if target is result:
            return result
        if length == 1:
            return _write(result, target)
        return self._fold_partials(device, target, outer, length, inner, result, out_shape)

    def _fold_partials(self, device: Any, partial: Array, outer: int, length: int, inner: int, result: Array,
                       out_shape: tuple[int, ...]) -> Array:
        if self._second is None:
            p = self._partial_dtype.name
            self._second = ReductionKernel(f"const {p} *p", "p", self.reduce_expr, self.neutral, self.dtype,
                                           name=f"{self.name}_partials", preamble=self.preamble)
        target = result if result._whole else Array(device, out_shape, self.dtype)
        self._second._launch(device, [partial._base(), partial._offset], outer, length, inner, target, out_shape)
        return _write(result, target)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(a: int, multiple: int) -> int:
    return _ceil_div(a, multiple) * multiple


def _write(result: Array, computed: Array) -> Array:
    if computed is not result:
        from ._array import copyto

        computed = computed.reshape(result.shape)
        if computed.dtype != result.dtype:  # partial results in float for float16 and bfloat16: rounded here
            computed = computed.astype(result.dtype)
        copyto(result, computed)
    return result


def _broadcast_view(x: Array, shape: tuple[int, ...]) -> Array:
    if x.shape == shape:
        return x
    return x._view(shape, broadcast_strides(x, shape), x._offset)


def _neutral_value(neutral: str, dtype: np.dtype) -> Any:
    text = neutral.strip().replace("INFINITY", "inf")
    try:
        return dtype.type(float(text) if dtype.kind == "f" else int(float(text)))
    except ValueError:
        raise InvalidArgumentError(f"the result of an empty reduction is its neutral element, and {neutral!r} is "
                                   "not a number xgpu can read: give neutral as a number") from None


def reduction(arguments: str, map_expr: str, reduce_expr: str, neutral: Any, dtype: Any,
              name: str = "reduction", preamble: str = "") -> ReductionKernel:
    """A reduction kernel from expressions.

    ``arguments`` declares const arrays and scalars as for :func:`xgpu.elementwise`; ``map_expr`` is the
    value each position contributes (array names stand for their elements; ``i`` is the position along
    what is reduced), ``reduce_expr`` combines two values ``a`` and ``b``, ``neutral`` is its identity
    (C text: ``"0"``, ``"-INFINITY"``), ``dtype`` the result's (and the accumulator's) dtype. Call it
    with the arrays and scalars, and ``axis=`` (None for all elements).
    """
    return ReductionKernel(arguments, map_expr, reduce_expr, neutral, dtype, name, preamble)


# ---------------------------------------------------------------------------------------------
# Prefix scans (xgpu.scan), rendered from scan.mako.

SCAN_TEMPLATE = KernelTemplate(Path(__file__).with_name("scan.mako"))


class ScanKernel:
    """A prefix scan from a map expression and an associative scan expression: see :func:`xgpu.scan`."""

    def __init__(self, arguments: str, map_expr: str, scan_expr: str, neutral: Any, dtype: Any,
                 inclusive: bool = True, name: str = "scan", preamble: str = ""):
        for what, text in (("map_expr", map_expr), ("scan_expr", scan_expr)):
            if not isinstance(text, str) or not text.strip():
                raise InvalidArgumentError(f"{what} must be a C expression, e.g. 'x' or 'a + b'")
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidArgumentError(f"name must be a C identifier, not {name!r}")
        self.arguments = parse_arguments(arguments)
        writable = [a.name for a in self.arguments if a.pointer and not a.const]
        if writable:
            raise InvalidArgumentError(f"a scan only reads its arrays (it returns a new one): declare "
                                       f"{', '.join(writable)} const")
        self.map_expr, self.scan_expr = map_expr.strip(), scan_expr.strip()
        self.neutral = str(neutral)
        self.dtype = check_dtype(dtype)
        if self.dtype.kind == "c":
            raise UnsupportedDtypeError("scans produce real or integer values, not complex")
        self.inclusive = bool(inclusive)
        self.name, self.preamble = name, preamble
        self._acc = np.dtype(np.float32) if self.dtype in (np.float16, BFLOAT16) else self.dtype

    def __repr__(self) -> str:
        kind = "inclusive" if self.inclusive else "exclusive"
        return (f"<xgpu.ScanKernel {self.name}({', '.join(map(repr, self.arguments))}): {kind} scan"
                f"({self.scan_expr}) of {self.map_expr} -> {self.dtype.name}>")

    def _defines(self, wg: int, per_item: int) -> dict[str, Any]:
        return {
            "name": self.name, "map_expr": self.map_expr, "scan_expr": self.scan_expr, "neutral": self.neutral,
            "arrays": tuple((a.name, a.dtype.name) for a in self.arguments if a.pointer),
            "scalars": tuple((a.name, a.dtype.name) for a in self.arguments if not a.pointer),
            "out_dtype": self.dtype.name, "preamble": self.preamble, "wg": wg, "per_item": per_item,
            "inclusive": self.inclusive,
        }

    def source(self, backend: str | None = None) -> str:
        """The rendered source for ``backend`` (by default the default device's), for reading."""
        from ._program import render

        return render(SCAN_TEMPLATE, backend, defines=self._defines(256, 8)).text

    def _program(self, device: Any, plan: _Plan) -> tuple[Any, int, int]:
        from ._program import compile

        per_item = 16 if plan.cpu else 8
        wg = 1 << (min(plan.wg, device.max_work_group_size).bit_length() - 1)
        while True:
            program = compile(SCAN_TEMPLATE, device, defines=self._defines(wg, per_item))
            if all(program.kernel(k).max_work_group_size >= wg for k in (self.name, f"{self.name}_totals")) \
                    or wg == 1:
                return program, wg, per_item
            wg //= 2

    def __call__(self, *args: Any, axis: int | None = None, out: Array | None = None) -> Array:
        """Scan along one axis (the result has the arrays' broadcast shape) or, with ``axis=None``, over
        every element in C order (a 1-D result, as numpy's ``cumsum``). ``out``: an array of the result's
        shape and dtype to write into."""
        arrays, device, shape = check_call(self.name, self.arguments, args, self.dtype)
        if axis is None:
            out_shape: tuple[int, ...] = (math.prod(shape),)
            order: list[int] = list(range(len(shape)))
        else:
            if not isinstance(axis, (int, np.integer)) or not -len(shape) <= axis < len(shape):
                raise ShapeError(f"{self.name}: axis {axis!r} is out of range for shape {shape}")
            axis = int(axis) % len(shape)
            out_shape = shape
            order = [d for d in range(len(shape)) if d != axis] + [axis]
        if out is not None and (out.shape != out_shape or out.dtype != self.dtype):
            raise ShapeError(f"out must be a {self.dtype} array of shape {out_shape}, not {out.dtype} {out.shape}")
        result = out if out is not None else Array(device, out_shape, self.dtype)
        n = math.prod(shape)
        if n == 0:
            return result
        length = n if axis is None else shape[axis]
        rows = n // length
        # each input as C-contiguous rows with the scanned axis last: views that are not so are copied once
        kernel_args: list[Any] = []
        for _, x in arrays:  # the kernel takes the arrays first, then the scalars (scan.mako)
            view = _broadcast_view(x, shape).transpose(order)
            if not view.is_contiguous:
                view = view.copy()
            kernel_args += [view._base(), view._offset]
        kernel_args += [_convert_scalar(x, a, f"argument {a.name} of {self.name}")
                        for a, x in zip(self.arguments, args) if not a.pointer]
        plan = _Plan(device)
        program, wg, per_item = self._program(device, plan)
        # a CPU: one work-item per stretch, in order (3-4x the tiled form on Intel's CPU runtime, 1.4x on PoCL)
        seq = plan.cpu
        tile = 1024 if seq else wg * per_item
        chunks = int(max(1, min(_ceil_div(plan.groups, rows), _ceil_div(length, 8 * tile))))
        per_chunk = _round_up(_ceil_div(length, chunks), tile)
        chunks = _ceil_div(length, per_chunk)
        moved = tuple(shape[d] for d in order) if axis is not None else out_shape
        in_place = result._whole and (axis is None or order == list(range(len(shape))))
        target = result if in_place else Array(device, moved, self.dtype)
        totals = Array(device, (rows, chunks), self._acc)
        suffix = "_seq" if seq else ""
        launch = {"global_size": (chunks, rows), "local_size": (1, 1)} if seq else \
            {"global_size": (wg * chunks, rows), "local_size": (wg, 1)}
        if chunks > 1:
            program.kernel(f"{self.name}{suffix}_totals")(totals, *kernel_args, length, chunks, per_chunk, **launch)
            local = int(min(64, rows))
            local = 1 << (local.bit_length() - 1)
            program.kernel(f"{self.name}_offsets")(totals, rows, chunks, global_size=-(-rows // local) * local,
                                                   local_size=local)
        program.kernel(f"{self.name}{suffix}")(target, totals, *kernel_args, length, chunks, per_chunk, **launch)
        if target is result:
            return result
        back = target if axis is None else target.transpose(list(np.argsort(order)))
        from ._array import copyto

        copyto(result, back)
        return result


def scan(arguments: str, map_expr: str, scan_expr: str, neutral: Any, dtype: Any, inclusive: bool = True,
         name: str = "scan", preamble: str = "") -> ScanKernel:
    """A prefix-scan kernel from expressions.

    ``arguments`` declares const arrays and scalars as for :func:`xgpu.reduction`; ``map_expr`` is the value
    each position contributes (``i`` its position along the scanned axis), ``scan_expr`` combines an
    earlier value ``a`` with a later one ``b`` and must be associative (it need not be commutative),
    ``neutral`` is its identity (C text), ``dtype`` the result's (and the running value's) dtype.
    ``inclusive=False`` gives the exclusive scan (the first value is the neutral element). Call it with the
    arrays and scalars, and ``axis=`` (None: every element in C order, a 1-D result).
    """
    return ScanKernel(arguments, map_expr, scan_expr, neutral, dtype, inclusive, name, preamble)


GENERATED.elementwise = sys.modules[__name__]  # arrays reach these kernels through it (see xgpu._array)
