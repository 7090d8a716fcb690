"""Arrays in device memory."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import _queue
from .errors import (
    DeviceMismatchError,
    InvalidArgumentError,
    InvalidIndexError,
    ShapeError,
    UnsupportedDtypeError,
)
from .template import BFLOAT16

if TYPE_CHECKING:
    from ._devices import Device

class _Generated:
    """Where arrays find the generated kernels they run (copies, fills, arithmetic): ``xgpu._elementwise`` and
    ``xgpu._math`` are built on this module and put themselves here when imported (``import xgpu`` imports
    both), so this module never imports them and no import cycle forms."""

    elementwise: Any = None
    math: Any = None
    interop: Any = None  # xgpu._interop: DLPack, __cuda_array_interface__, the driver libraries' arrays


GENERATED = _Generated()

INDEX_MAX = 2**31 - 1  # the largest 32-bit index_t: a kernel launched with more is built again with 64 bits


def check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise UnsupportedDtypeError(f"{dtype!r} is not a dtype") from exc
    if (dt.kind not in "biufc" or dt.hasobject) and dt != BFLOAT16:
        raise UnsupportedDtypeError(
            f"dtype {dt} cannot live in device memory; use a numeric dtype (float32, int32, ...)"
        )
    if not dt.isnative:
        # kernels read native byte order: a big-endian array is converted on upload, never sent as it is
        dt = dt.newbyteorder("=")
    return dt


def _check_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (int(shape),)
    # a string is iterable ("12" -> (1, 2)) and a float truncates (2.5 -> 2): both refused, never guessed
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise ShapeError(f"shape must be an int or a tuple of ints, not {shape!r}")
    try:
        dims = tuple(shape)
    except TypeError as exc:
        raise ShapeError(f"shape must be an int or a tuple of ints, not {shape!r}") from exc
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in dims):
        raise ShapeError(f"shape must be an int or a tuple of ints, not {shape!r}")
    shape = tuple(int(s) for s in dims)
    if any(s < 0 for s in shape):
        raise ShapeError(f"shape {shape} has a negative dimension")
    return shape


class Array:
    """An n-dimensional array in one device's memory, or a view of one.

    Make one with :func:`xgpu.asarray`, :func:`xgpu.empty`, :func:`xgpu.zeros` and their kin; ``get()``
    (or ``np.asarray(array)``) copies it back to the host. Basic indexing (``a[1:, ::-2, None]``), ``.T``,
    ``transpose``, ``swapaxes`` and ``reshape`` give views: arrays that share the memory, each with its
    own offset and strides (numpy's meaning, in bytes). docs/arrays.md says what a kernel receives for one.
    """

    def __init__(self, device: Device, shape: Any, dtype: Any):
        self.device = device
        self.shape = _check_shape(shape)
        self.dtype = check_dtype(dtype)
        self.size = math.prod(self.shape)
        self.nbytes = self.size * self.dtype.itemsize
        device._check_process()
        self._block = device._pool.allocate(self.nbytes)
        #: where the first element is, in elements from the start of the memory block
        self._offset = 0
        #: the step between neighbours along each axis, in elements (may be 0 or negative in a view)
        self._estrides = _c_strides(self.shape)

    def _view(self, shape: tuple[int, ...], estrides: tuple[int, ...], offset: int) -> Array:
        """An array over the same memory with another shape, strides and offset (in elements)."""
        view = Array.__new__(Array)
        view.device, view.dtype, view._block = self.device, self.dtype, self._block
        view.shape, view._estrides, view._offset = tuple(shape), tuple(estrides), offset
        view.size = math.prod(view.shape)
        view.nbytes = view.size * view.dtype.itemsize
        return view

    def _base(self) -> Array:
        """The whole memory block as a 1-D contiguous array (what kernels of generated code receive)."""
        if self._offset == 0 and self.ndim == 1 and self._estrides in ((1,), (0,)) and \
                self.size * self.dtype.itemsize == self._block.impl.nbytes:
            return self
        return self._view((self._block.impl.nbytes // self.dtype.itemsize,), (1,), 0)

    @property
    def _buffer(self):
        return self._block.impl

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides in bytes, as numpy reports them."""
        return tuple(s * self.dtype.itemsize for s in self._estrides)

    @property
    def offset(self) -> int:
        """Where the first element lies in the memory the array shares with its base, in bytes."""
        return self._offset * self.dtype.itemsize

    @property
    def is_contiguous(self) -> bool:
        """Whether the elements lie in C order with no gaps (an offset may precede them)."""
        return all(s == c for s, c, n in zip(self._estrides, _c_strides(self.shape), self.shape) if n > 1)

    @functools.cached_property
    def _whole(self) -> bool:
        """Contiguous and starting at the start of its memory: a kernel can take the buffer as it is (an
        array's shape, strides and offset never change once made: asked on every launch, worked out once)."""
        return self._offset == 0 and self.is_contiguous

    def __repr__(self) -> str:
        view = "" if self._whole else f" view offset={self.offset} strides={self.strides}"
        return f"<xgpu.Array shape={self.shape} dtype={self.dtype}{view} on {self.device.id}>"

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    # -- host transfers ---------------------------------------------------------------------------

    def get(self, out: np.ndarray | None = None, *, queue: Any = None, blocking: bool = True,
            wait_for: Any = None) -> Any:
        """Copy to the host; into ``out`` (a numpy array of the same shape and dtype) when given.

        ``queue``: the :class:`xgpu.Queue` to copy on; ``wait_for``: events to wait for first;
        ``blocking=False`` returns the copy's Event at once (``out`` is filled when it ends)."""
        if out is None and not blocking:
            raise InvalidArgumentError("get(blocking=False) fills an out= you pass and returns the copy's event: "
                                       "pass out=xgpu.pinned_empty(a.shape, a.dtype, a.device)")
        if out is None:
            out = np.empty(self.shape, self.dtype)
        elif not isinstance(out, np.ndarray) or out.shape != self.shape or out.dtype != self.dtype:
            got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
            raise ShapeError(f"out must be a numpy {self.dtype} array of shape {self.shape}, got {got}")
        elif not out.flags.writeable:
            raise InvalidArgumentError("out is read-only: pass a writeable numpy array")
        if not self.nbytes:
            return out if blocking else _queue.Event(None, "an empty copy")
        if queue is not None or not blocking or wait_for is not None or \
                _queue.needs_queue_path(self.device, self._block):
            return _queue.read(self, out, queue, blocking, wait_for)
        src = self if self._whole else self.copy()
        if out.flags.c_contiguous:
            self.device._impl.read(src._buffer, out)
        else:
            host = np.empty(self.shape, self.dtype)
            self.device._impl.read(src._buffer, host)
            out[...] = host
        return out

    def set(self, host: Any, *, queue: Any = None, blocking: bool = True, wait_for: Any = None) -> Any:
        """Copy a host array of this shape (or one that broadcasts to it) into this array, converting its dtype.

        ``queue``, ``wait_for`` as for :meth:`get`; ``blocking=False`` returns the copy's Event at once (the
        host data is kept alive until it ends); otherwise this array."""
        if queue is not None or not blocking or wait_for is not None:
            return _set_on_queue(self, host, queue, blocking, wait_for)
        host = _host_of_shape(host, self.shape)
        if not self.nbytes:
            return self
        if self._whole and _queue.needs_queue_path(self.device, self._block):
            _queue.write(self, host, None, True, None)
        elif self._whole:
            self.device._impl.write(self._buffer, np.ascontiguousarray(host, dtype=self.dtype))
        else:
            copy_into = GENERATED.elementwise.copy_into
            copy_into(self, asarray(host, self.device, self.dtype))
        return self

    def copy(self) -> Array:
        """A new contiguous array with the same elements (a view's elements, gathered)."""
        out = Array(self.device, self.shape, self.dtype)
        if self.nbytes and self._whole:
            _queue.device_copy(out, self)
        elif self.nbytes:
            copy_kernel = GENERATED.elementwise.copy_kernel
            copy_kernel(self.dtype, self.dtype)(out, self)
        return out

    def astype(self, dtype: Any, copy: bool = True) -> Array:
        """The elements converted to ``dtype`` on the device, as numpy's ``astype`` converts them (floats
        to integers truncate; to bool: nonzero is True). ``copy=False`` returns this array when the
        dtype is already ``dtype``."""
        dt = check_dtype(dtype)
        if dt == self.dtype and not copy:
            return self
        if dt == self.dtype:
            return self.copy()
        if not self.device.supports(dt):
            raise UnsupportedDtypeError(f"{self.device.id} ({self.device.name}) has no {dt} support")
        copy_kernel = GENERATED.elementwise.copy_kernel
        out = Array(self.device, self.shape, dt)
        if self.size:
            copy_kernel(self.dtype, dt)(out, self)
        return out

    def fill(self, value: Any) -> Array:
        """Set every element (of a view too) to ``value``, on the device; returns this array."""
        if self.size:
            fill = GENERATED.elementwise.fill
            fill(self, value)
        return self

    def to(self, device: Device | str) -> Array:
        """This array on ``device`` (a Device or a spec such as ``"pocl"``): itself when it is there already,
        otherwise a copy through the host."""
        from ._devices import get_device

        target = get_device(device)
        if target is self.device:
            return self
        return asarray(self.get(), target)

    def __reduce__(self):
        # pickled as host data and the device's id; loaded back onto the device of that id
        return (_unpickle, (self.get(), self.device.id))

    # -- views ------------------------------------------------------------------------------------

    def _host_shadow(self) -> np.ndarray:
        """A numpy array with this array's shape and strides over no real memory: numpy works out the
        shape, strides and offset of a view of it (never reading an element), and we use them."""
        return as_strided(_SHADOW[self.dtype.itemsize], shape=self.shape, strides=self.strides, writeable=False)

    def _from_shadow(self, shadow: np.ndarray, view: np.ndarray) -> Array:
        moved = view.__array_interface__["data"][0] - shadow.__array_interface__["data"][0]
        itemsize = self.dtype.itemsize
        return self._view(view.shape, tuple(s // itemsize for s in view.strides), self._offset + moved // itemsize)

    def __getitem__(self, key: Any) -> Array:
        key = _basic_key(key)
        shadow = self._host_shadow()
        try:
            view = shadow[key + (Ellipsis,)] if Ellipsis not in key else shadow[key]
        except IndexError as exc:
            raise InvalidIndexError(f"{exc} (array of shape {self.shape})") from None
        return self._from_shadow(shadow, view)

    def __setitem__(self, key: Any, value: Any) -> None:
        view = self[key]
        if isinstance(value, Array):
            same_device(view, value)
            copy_into = GENERATED.elementwise.copy_into
            copy_into(view, value)
        elif np.ndim(value) == 0:
            view.fill(value)
        else:
            view.set(value)

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        for i in range(self.shape[0]):
            yield self[i]

    def transpose(self, *axes: Any) -> Array:
        """A view with the axes permuted (reversed when none are given), as numpy's ``transpose``."""
        if len(axes) == 1 and (axes[0] is None or hasattr(axes[0], "__iter__")):
            axes = () if axes[0] is None else tuple(axes[0])
        shadow = self._host_shadow()
        try:
            view = shadow.transpose(*axes) if axes else shadow.T
        except (ValueError, TypeError, np.exceptions.AxisError) as exc:
            raise ShapeError(f"transpose: {exc} (array of shape {self.shape}, axes {axes})") from None
        return self._from_shadow(shadow, view)

    @property
    def T(self) -> Array:  # noqa: N802  (numpy's name)
        """The view with the axes reversed."""
        return self.transpose()

    def swapaxes(self, axis1: int, axis2: int) -> Array:
        """A view with two axes exchanged."""
        shadow = self._host_shadow()
        try:
            view = shadow.swapaxes(axis1, axis2)
        except (ValueError, TypeError, np.exceptions.AxisError) as exc:
            raise ShapeError(f"swapaxes: {exc} (array of shape {self.shape})") from None
        return self._from_shadow(shadow, view)

    def reshape(self, *shape: Any) -> Array:
        """The same elements in another shape (one dimension may be -1): a view when the strides allow
        it (always for a contiguous array), otherwise a reshaped contiguous copy, as numpy does."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
            raise ShapeError(f"reshape takes ints or a tuple of ints (one may be -1), not {shape!r}")
        shape = tuple(shape)
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in shape):
            raise ShapeError(f"reshape takes ints or a tuple of ints (one may be -1), not {shape!r}")
        shape = tuple(int(s) for s in shape)
        known = math.prod(s for s in shape if s != -1)
        if shape.count(-1) == 1 and known and self.size % known == 0:
            shape = tuple(self.size // known if s == -1 else s for s in shape)
        if shape.count(-1) or any(s < 0 for s in shape) or math.prod(shape) != self.size:
            raise ShapeError(f"cannot reshape an array of shape {self.shape} into {shape}")
        if self.is_contiguous:  # C order: a view at the same offset (what numpy would work out, without it)
            return self._view(shape, _c_strides(shape), self._offset)
        shadow = self._host_shadow()
        try:
            view = np.reshape(shadow, shape, copy=False)
        except ValueError:  # these strides cannot be reshaped in place
            return self.copy().reshape(shape)
        return self._from_shadow(shadow, view)

    def ravel(self) -> Array:
        """A 1-D view when the array is contiguous, otherwise a 1-D copy."""
        return self.reshape(-1)

    # -- operators --------------------------------------------------------------------------------

    __hash__ = object.__hash__  # an array is a handle: hashed by identity, although == compares elements

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """numpy ufuncs on xgpu arrays run on the device where xgpu has the kernel; otherwise a clear error."""
        _math = GENERATED.math
        out = kwargs.pop("out", None)
        if out is not None:
            out = out[0] if isinstance(out, tuple) and len(out) == 1 else out
            if not isinstance(out, Array):
                raise InvalidArgumentError(f"out= of an xgpu computation must be an xgpu array, not {type(out).__name__}")
        if method == "__call__" and ufunc is np.matmul and not kwargs and out is None:
            from ._ops import matmul

            return matmul(*(asarray(x, self.device) for x in inputs))
        if method == "__call__" and not kwargs:
            return _math.apply(ufunc, *inputs, out=out)
        if method == "reduce" and ufunc.__name__ in _math.UFUNC_METHODS and len(inputs) == 1 and out is None and \
                set(kwargs) <= {"axis"} and isinstance(inputs[0], Array):
            return _math.UFUNC_METHODS[ufunc.__name__](inputs[0], axis=kwargs.get("axis", 0))
        if method == "accumulate" and ufunc is np.add and len(inputs) == 1 and out is None and \
                set(kwargs) <= {"axis", "dtype"} and isinstance(inputs[0], Array):
            return _math.cumsum(inputs[0], axis=kwargs.get("axis", 0), dtype=kwargs.get("dtype"))
        raise InvalidArgumentError(
            f"numpy's {ufunc.__name__}.{method}{' with ' + ', '.join(kwargs) if kwargs else ''} has no xgpu kernel: "
            "compute it on the host (a.get()) or write it with xgpu.elementwise / xgpu.reduction"
        )

    def _binary(self, ufunc: Any, other: Any, reflected: bool = False) -> Any:
        _math = GENERATED.math
        if not isinstance(other, (Array, np.ndarray, np.generic, int, float, bool)):
            return NotImplemented
        return _math.apply(ufunc, other, self) if reflected else _math.apply(ufunc, self, other)

    def _inplace(self, ufunc: Any, other: Any) -> Array:
        _math = GENERATED.math
        _math.apply(ufunc, self, other, out=self)
        return self

    def __add__(self, o: Any) -> Any: return self._binary(np.add, o)
    def __radd__(self, o: Any) -> Any: return self._binary(np.add, o, True)
    def __sub__(self, o: Any) -> Any: return self._binary(np.subtract, o)
    def __rsub__(self, o: Any) -> Any: return self._binary(np.subtract, o, True)
    def __mul__(self, o: Any) -> Any: return self._binary(np.multiply, o)
    def __rmul__(self, o: Any) -> Any: return self._binary(np.multiply, o, True)
    def __truediv__(self, o: Any) -> Any: return self._binary(np.divide, o)
    def __rtruediv__(self, o: Any) -> Any: return self._binary(np.divide, o, True)
    def __pow__(self, o: Any) -> Any: return self._binary(np.power, o)
    def __rpow__(self, o: Any) -> Any: return self._binary(np.power, o, True)
    def __lt__(self, o: Any) -> Any: return self._binary(np.less, o)
    def __le__(self, o: Any) -> Any: return self._binary(np.less_equal, o)
    def __gt__(self, o: Any) -> Any: return self._binary(np.greater, o)
    def __ge__(self, o: Any) -> Any: return self._binary(np.greater_equal, o)
    def __eq__(self, o: Any) -> Any: return self._binary(np.equal, o)
    def __ne__(self, o: Any) -> Any: return self._binary(np.not_equal, o)
    def __iadd__(self, o: Any) -> Array: return self._inplace(np.add, o)
    def __isub__(self, o: Any) -> Array: return self._inplace(np.subtract, o)
    def __imul__(self, o: Any) -> Array: return self._inplace(np.multiply, o)
    def __itruediv__(self, o: Any) -> Array: return self._inplace(np.divide, o)

    def __neg__(self) -> Array:
        _math = GENERATED.math
        return _math.apply(np.negative, self)

    def __pos__(self) -> Array:
        return self.copy()

    def __abs__(self) -> Array:
        _math = GENERATED.math
        return _math.apply(np.absolute, self)

    def _scalar(self) -> Any:
        if self.size != 1:
            raise InvalidArgumentError(f"only a one-element array converts to a Python number; this one has shape "
                                       f"{self.shape}")
        return self.get().reshape(())[()]

    def __float__(self) -> float:
        return float(self._scalar())

    def __int__(self) -> int:
        return int(self._scalar())

    def __bool__(self) -> bool:
        return bool(self._scalar())

    def item(self) -> Any:
        """The one element as a Python number."""
        return self._scalar().item()

    def sum(self, axis: int | None = None, dtype: Any = None, **kwargs: Any) -> Array:
        """:func:`xgpu.sum` of this array."""
        _math = GENERATED.math
        _only_defaults("sum", kwargs)
        return _math.sum(self, axis=axis, dtype=dtype)

    def cumsum(self, axis: int | None = None, dtype: Any = None, **kwargs: Any) -> Array:
        """:func:`xgpu.cumsum` of this array (``np.cumsum(a)`` comes here too)."""
        _math = GENERATED.math
        _only_defaults("cumsum", kwargs)
        return _math.cumsum(self, axis=axis, dtype=dtype)

    def max(self, axis: int | None = None, **kwargs: Any) -> Array:
        """:func:`xgpu.max` of this array."""
        _math = GENERATED.math
        _only_defaults("max", kwargs)
        return _math.max(self, axis=axis)

    def min(self, axis: int | None = None, **kwargs: Any) -> Array:
        """:func:`xgpu.min` of this array."""
        _math = GENERATED.math
        _only_defaults("min", kwargs)
        return _math.min(self, axis=axis)

    def mean(self, axis: int | None = None, **kwargs: Any) -> Array:
        """:func:`xgpu.mean` of this array."""
        _math = GENERATED.math
        _only_defaults("mean", kwargs)
        return _math.mean(self, axis=axis)

    def __matmul__(self, other: Any) -> Array:
        from ._ops import matmul

        return matmul(self, other if isinstance(other, Array) else asarray(other, self.device))

    def __rmatmul__(self, other: Any) -> Array:
        from ._ops import matmul

        return matmul(asarray(other, self.device), self)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if copy is False:
            if dtype is None or np.dtype(dtype) == self.dtype:
                return np.from_dlpack(self, copy=False)  # host memory shared with the device, or a BufferError
            raise ValueError("np.asarray(a, dtype, copy=False) of another dtype needs a copy")
        host = self.get()
        return host if dtype is None else host.astype(dtype)


    # -- exchange with other libraries without a copy (xgpu._interop; docs/interop.md) -----------------

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: bool | None = None) -> Any:
        """A DLPack capsule of this array (``numpy.from_dlpack(a)``, ``torch.from_dlpack(a)``): the same memory
        where the device shares it (fine-grain SVM on the CPU runtimes, CUDA memory), otherwise a host copy."""
        return GENERATED.interop.to_dlpack(self, stream, max_version, dl_device, copy)

    def __dlpack_device__(self) -> tuple[int, int]:
        return GENERATED.interop.dlpack_device(self)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """Version 3 of Numba's CUDA array interface, for arrays on CUDA devices (an AttributeError elsewhere)."""
        return GENERATED.interop.cuda_array_interface(self)

    def to_pyopencl(self) -> Any:
        """A ``pyopencl.array.Array`` over this array's memory (same offset and strides), on its device's queue."""
        return GENERATED.interop.to_native(self, "pyopencl")

    def to_pycuda(self) -> Any:
        """A pycuda ``GPUArray`` over this array's memory (same offset and strides)."""
        return GENERATED.interop.to_native(self, "pycuda")


def _only_defaults(name: str, kwargs: dict[str, Any]) -> None:
    # numpy's np.sum(a) calls a.sum(axis=None, dtype=None, out=None): its defaults are fine, anything else is not
    given = {k: v for k, v in kwargs.items() if v is not None and not (k == "keepdims" and v is np._NoValue)
             and v is not np._NoValue}
    if given:
        raise InvalidArgumentError(f"{name}: {', '.join(given)} {'is' if len(given) == 1 else 'are'} not supported "
                                   "on xgpu arrays (axis= and dtype= are)")


@functools.lru_cache(maxsize=1024)
def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= max(dim, 1)
    return tuple(reversed(strides))


# one element per itemsize that shadows point into: numpy computes views of them and never reads
_SHADOW = {n: np.zeros(1, f"V{n}") for n in (1, 2, 4, 8, 16)}


def _basic_key(key: Any) -> tuple:
    """``key`` as a tuple of basic indices (ints, slices, ``...``, None), or a clear error."""
    key = key if isinstance(key, tuple) else (key,)
    for k in key:
        if k is None or k is Ellipsis or isinstance(k, slice):
            continue
        if isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
            continue
        what = "an xgpu array" if isinstance(k, Array) else type(k).__name__
        raise InvalidIndexError(
            f"index {k!r} ({what}) is not a basic index: xgpu arrays take ints, slices, ... and None, which give "
            "views; for fancy or boolean indexing, index on the host (a.get()[...]) and upload the result"
        )
    return key


def _unpickle(host: np.ndarray, device_id: str) -> Array:
    from ._devices import get_device
    from .errors import DeviceNotFoundError

    try:
        device = get_device(device_id)
    except DeviceNotFoundError as exc:
        raise DeviceNotFoundError(f"this array was pickled on {device_id}, which is not here: pickle a.get() (a "
                                  f"numpy array) to move data between machines\n{exc}") from None
    return asarray(host, device)


def _is_array(x: Any) -> bool:
    return isinstance(x, Array)


def same_device(*arrays: Any) -> Device:
    """The one device of ``arrays`` (xgpu Arrays); a clear error when they live on several."""
    devs = {id(a.device): a.device for a in arrays if _is_array(a)}
    if not devs:
        raise InvalidArgumentError("no xgpu array among the arguments: cannot tell which device to use")
    if len(devs) > 1:
        names = ", ".join(sorted(d.id for d in devs.values()))
        raise DeviceMismatchError(
            f"arrays live on different devices ({names}); move them to one with xgpu.asarray(x, device=...)"
        )
    return next(iter(devs.values()))


def shares_memory(a: Any, b: Any) -> bool:
    """Whether two xgpu arrays use the same device memory (an array and its reshaped views do)."""
    return _is_array(a) and _is_array(b) and a._block is b._block


def copyto(dst: Array, src: Array, *, queue: Any = None, wait_for: Any = None) -> Array:
    """Copy ``src`` into ``dst`` on the device: same device and dtype, ``src``'s shape broadcasting to
    ``dst``'s; either may be a view. Returns ``dst``. ``queue``: the :class:`xgpu.Queue` to copy on (by
    default the device's); ``wait_for``: events to wait for first."""
    if queue is not None or wait_for is not None:
        return _copyto_on_queue(dst, src, queue, wait_for)
    if not (_is_array(dst) and _is_array(src)):
        raise InvalidArgumentError("copyto takes two xgpu arrays: move host data with xgpu.asarray or Array.set")
    same_device(dst, src)
    try:
        fits = np.broadcast_shapes(src.shape, dst.shape) == dst.shape
    except ValueError:
        fits = False
    if dst.dtype != src.dtype or not fits:
        raise ShapeError(f"copyto: dst is {dst.dtype} {dst.shape}, src is {src.dtype} {src.shape}; they must match "
                         "(src's shape may broadcast to dst's)")
    if not dst.nbytes:
        return dst
    if dst.shape == src.shape and dst._whole and src._whole:
        if not shares_memory(dst, src):
            _queue.device_copy(dst, src)
        return dst
    copy_into = GENERATED.elementwise.copy_into
    copy_into(dst, src)
    return dst


def asarray(data: Any, device: Device | str | None = None, dtype: Any = None, *, queue: Any = None,
            blocking: bool = True, wait_for: Any = None) -> Array:
    """Copy ``data`` (a numpy array, anything numpy can convert, or an xgpu Array) to a device.

    A pyopencl or pycuda array in a context xgpu uses is shared, not copied (docs/interop.md).

    An xgpu Array already on that device (with that dtype) is returned as it is; one on another device
    is copied through the host; with another dtype it is converted on the device.

    ``queue`` (an :class:`xgpu.Queue` of the device), ``wait_for`` and ``blocking=False`` apply to the
    upload as in :meth:`Array.set`; a non-blocking upload's event is ``queue.marker()`` (or use
    ``xgpu.empty`` and ``set``, which returns it).
    """
    if queue is not None or not blocking or wait_for is not None:
        return _asarray_on_queue(data, device, dtype, queue, blocking, wait_for)
    from ._devices import get_device

    if not isinstance(data, (Array, np.ndarray, np.generic, int, float, complex, list, tuple)) and \
            GENERATED.interop is not None:
        adopted = GENERATED.interop.adopt(data, device, dtype)  # a pyopencl or pycuda array: shared where it can be
        if adopted is not None:
            return adopted
    if _is_array(data):
        target = data.device if device is None else get_device(device)
        if target is data.device:
            return data if dtype is None else data.astype(dtype, copy=False)
        data = data.get()
    else:
        target = get_device(device)
    try:
        host = np.asarray(data, dtype=dtype)
    except ValueError as exc:  # ragged nesting ([1, [2, 3]]), or text that is not a number
        raise ShapeError(f"cannot make an array of {type(data).__name__} data: {exc}") from None
    except TypeError as exc:
        raise UnsupportedDtypeError(f"cannot make an array of {type(data).__name__} data: {exc}") from None
    check_dtype(host.dtype)
    out = Array(target, host.shape, host.dtype)
    return out.set(host)


def _host_of_shape(host: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``host`` as a numpy array of ``shape``, broadcast where it has another shape numpy can stretch."""
    host = np.asarray(host)
    if host.shape != shape:
        try:
            host = np.broadcast_to(host, shape)
        except ValueError:
            raise ShapeError(f"cannot set an array of shape {shape} from one of shape {host.shape}") from None
    return host


def _set_on_queue(a: Array, host: Any, queue: Any, blocking: bool, wait_for: Any) -> Any:
    """:meth:`Array.set` with a queue, events or blocking=False: the copy's Event, or ``a`` when blocking."""
    _queue.check_queue_of(a.device, queue, "Array.set")
    host = _host_of_shape(host, a.shape)
    if not a.nbytes:
        return a if blocking else _queue.Event(None, "an empty copy")
    if a._whole:
        event = _queue.write(a, host, queue, blocking, wait_for)
        return a if blocking else event
    if not blocking:
        raise InvalidArgumentError(f"set(blocking=False) needs an array that is contiguous from the start of its "
                                   f"memory; {a!r} is a view: set its base, or copy with blocking=True")
    _queue.write_view(a, host, queue, wait_for, lambda h: asarray(h, a.device, a.dtype),
                      GENERATED.elementwise.copy_into)
    return a


def _copyto_on_queue(dst: Array, src: Array, queue: Any, wait_for: Any) -> Array:
    if not (_is_array(dst) and _is_array(src)):
        raise InvalidArgumentError("copyto takes two xgpu arrays: move host data with xgpu.asarray or Array.set")
    chosen = _queue.pick(dst.device, queue, "copyto")
    if dst.shape == src.shape and dst.dtype == src.dtype and dst._whole and src._whole and \
            dst.device is src.device and dst.nbytes and not shares_memory(dst, src):
        _queue.device_copy(dst, src, queue, wait_for)
        return dst
    _queue._host_wait(wait_for, "copyto")
    if chosen is None:
        return copyto(dst, src)
    with chosen:
        return copyto(dst, src)


def _asarray_on_queue(data: Any, device: Any, dtype: Any, queue: Any, blocking: bool, wait_for: Any) -> Array:
    if _is_array(data):
        from ._devices import get_device

        _queue.check_queue_of(data.device if device is None else get_device(device), queue, "asarray")
        _queue._host_wait(wait_for, "asarray")
        return asarray(data, device, dtype)  # on the device already: as it is; otherwise through the host
    try:
        host = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError):
        return asarray(data, device, dtype)  # the plain path says what is wrong with the data
    from ._devices import get_device

    check_dtype(host.dtype)
    out = Array(get_device(device), host.shape, host.dtype)
    out.set(host, queue=queue, blocking=blocking, wait_for=wait_for)
    return out


def empty(shape: Any, dtype: Any = np.float32, device: Device | str | None = None) -> Array:
    """An uninitialised array on ``device`` (the default device when None)."""
    from ._devices import get_device

    return Array(get_device(device), shape, dtype)


def zeros(shape: Any, dtype: Any = np.float32, device: Device | str | None = None) -> Array:
    """An array of zeros on ``device`` (uploaded: no kernel to compile)."""
    out = empty(shape, dtype, device)
    return out.set(np.zeros(out.shape, out.dtype))


def ones(shape: Any, dtype: Any = np.float32, device: Device | str | None = None) -> Array:
    """An array of ones on ``device``."""
    return full(shape, 1, dtype, device)


def full(shape: Any, fill_value: Any, dtype: Any = None, device: Device | str | None = None) -> Array:
    """An array of ``fill_value`` on ``device``; its dtype is numpy's for the value when not given
    (float64 for a Python float: pass ``dtype=np.float32`` for the usual device type)."""
    if dtype is None:
        dtype = np.asarray(fill_value).dtype
    return empty(shape, dtype, device).fill(fill_value)


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None,
           device: Device | str | None = None) -> Array:
    """numpy's ``arange`` (same values, same dtype rules), computed on the device."""
    host_probe = np.arange(start, stop, step, dtype=dtype) if stop is not None else np.arange(start, dtype=dtype)
    out = empty(host_probe.shape, host_probe.dtype, device)
    if out.size:
        arange_into = GENERATED.elementwise.arange_into
        first = host_probe[0] if out.size else 0
        delta = (host_probe[1] - host_probe[0]) if out.size > 1 else step
        arange_into(out, first, delta)
    return out


def _like(a: Any, dtype: Any, shape: Any, device: Any) -> tuple[Any, Any, Any]:
    if not _is_array(a) and not isinstance(a, np.ndarray):
        raise InvalidArgumentError(f"*_like takes an xgpu or numpy array, not a {type(a).__name__}")
    return (a.shape if shape is None else shape, a.dtype if dtype is None else dtype,
            (a.device if _is_array(a) else None) if device is None else device)


def empty_like(a: Any, dtype: Any = None, shape: Any = None, device: Device | str | None = None) -> Array:
    """An uninitialised array with ``a``'s shape, dtype and device (each may be overridden)."""
    return empty(*_like(a, dtype, shape, device))


def zeros_like(a: Any, dtype: Any = None, shape: Any = None, device: Device | str | None = None) -> Array:
    """Zeros with ``a``'s shape, dtype and device."""
    return zeros(*_like(a, dtype, shape, device))


def ones_like(a: Any, dtype: Any = None, shape: Any = None, device: Device | str | None = None) -> Array:
    """Ones with ``a``'s shape, dtype and device."""
    return ones(*_like(a, dtype, shape, device))


def full_like(a: Any, fill_value: Any, dtype: Any = None, shape: Any = None,
              device: Device | str | None = None) -> Array:
    """``fill_value`` with ``a``'s shape, dtype and device."""
    shape, dtype, device = _like(a, dtype, shape, device)
    return full(shape, fill_value, dtype, device)


def plain_operand(x: Array) -> tuple[Array, bool]:
    """A matrix operand (2-D, or a batch of them in 3-D) as a kernel that takes ``trans`` flags wants it:
    ``(x, False)`` when x is contiguous from the start of its memory; ``(x.swapaxes(-1, -2), True)`` when x
    is such an array's transpose (``a.T``): no copy; otherwise ``(contiguous copy, False)``: one copy."""
    if x._whole or x.ndim < 2:
        return x, False
    flipped = x.swapaxes(-1, -2)
    if flipped._whole:
        return flipped, True
    return x.copy(), False


def write_through(out: Array | None, compute: Any) -> Any:
    """Run ``compute(target)`` for an output that kernels write whole: ``out`` itself when it is contiguous
    from the start of its memory (or None: compute allocates), otherwise a contiguous copy of it, copied
    back into the view afterwards."""
    if out is None or out._whole:
        return compute(out)
    result = compute(out.copy())
    return copyto(out, result)
