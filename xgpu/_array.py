"""Arrays in device memory."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DeviceMismatchError, InvalidArgumentError, ShapeError, UnsupportedDtypeError

if TYPE_CHECKING:
    from ._devices import Device

INDEX_MAX = 2**31 - 1  # the largest 32-bit index_t: a kernel launched with more is built again with 64 bits


def check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise UnsupportedDtypeError(f"{dtype!r} is not a dtype") from exc
    if dt.kind not in "biufc" or dt.hasobject:
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
    """A C-contiguous n-dimensional array in one device's memory.

    Make one with :func:`xgpu.asarray`, :func:`xgpu.empty` or :func:`xgpu.zeros`; ``get()`` (or
    ``np.asarray(array)``) copies it back to the host.
    """

    # numpy defers to us (ndarray @ Array calls Array.__rmatmul__) instead of computing on the host
    __array_ufunc__ = None

    def __init__(self, device: Device, shape: Any, dtype: Any):
        self.device = device
        self.shape = _check_shape(shape)
        self.dtype = check_dtype(dtype)
        self.size = math.prod(self.shape)
        self.nbytes = self.size * self.dtype.itemsize
        device._check_process()
        self._block = device._pool.allocate(self.nbytes)

    @property
    def _buffer(self):
        return self._block.impl

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def strides(self) -> tuple[int, ...]:
        """C-contiguous strides in bytes, as numpy reports them."""
        strides, step = [], self.dtype.itemsize
        for dim in reversed(self.shape):
            strides.append(step)
            step *= max(dim, 1)
        return tuple(reversed(strides))

    def __repr__(self) -> str:
        return f"<xgpu.Array shape={self.shape} dtype={self.dtype} on {self.device.id}>"

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def get(self, out: np.ndarray | None = None) -> np.ndarray:
        """Copy to the host; into ``out`` (C-contiguous, same shape and dtype) when given."""
        if out is None:
            out = np.empty(self.shape, self.dtype)
        elif out.shape != self.shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ShapeError(
                f"out must be a C-contiguous {self.dtype} array of shape {self.shape}, "
                f"got {out.dtype} {out.shape}{'' if out.flags.c_contiguous else ' (not contiguous)'}"
            )
        if self.nbytes:
            self.device._impl.read(self._buffer, out)
        return out

    def set(self, host: Any) -> Array:
        """Copy a host array of the same shape into this array (converting its dtype)."""
        host = np.asarray(host)
        if host.shape != self.shape:
            raise ShapeError(f"cannot set an array of shape {self.shape} from one of shape {host.shape}")
        host = np.ascontiguousarray(host, dtype=self.dtype)
        if self.nbytes:
            self.device._impl.write(self._buffer, host)
        return self

    def copy(self) -> Array:
        out = Array(self.device, self.shape, self.dtype)
        if self.nbytes:
            self.device._impl.copy(out._buffer, self._buffer, self.nbytes)
        return out

    def reshape(self, *shape: Any) -> Array:
        """A view with another shape (same data, same size); one dimension may be -1."""
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
        new_shape = shape
        view = Array.__new__(Array)
        view.__dict__.update(self.__dict__)
        view.shape = tuple(new_shape)
        return view

    def __matmul__(self, other: Any) -> Array:
        from ._ops import matmul

        return matmul(self, other if isinstance(other, Array) else asarray(other, self.device))

    def __rmatmul__(self, other: Any) -> Array:
        from ._ops import matmul

        return matmul(asarray(other, self.device), self)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        host = self.get()
        return host if dtype is None else host.astype(dtype)


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


def copyto(dst: Array, src: Array) -> Array:
    """Copy ``src`` into ``dst`` on the device: same device, shape and dtype; returns ``dst``."""
    if not (_is_array(dst) and _is_array(src)):
        raise InvalidArgumentError("copyto takes two xgpu arrays: move host data with xgpu.asarray or Array.set")
    same_device(dst, src)
    if dst.shape != src.shape or dst.dtype != src.dtype:
        raise ShapeError(f"copyto: dst is {dst.dtype} {dst.shape}, src is {src.dtype} {src.shape}; they must match")
    if dst.nbytes and not shares_memory(dst, src):
        dst.device._impl.copy(dst._buffer, src._buffer, dst.nbytes)
    return dst


def asarray(data: Any, device: Device | str | None = None, dtype: Any = None) -> Array:
    """Copy ``data`` (a numpy array, anything numpy can convert, or an xgpu Array) to a device.

    An xgpu Array already on that device (with that dtype) is returned as it is.
    """
    from ._devices import get_device

    if _is_array(data):
        target = data.device if device is None else get_device(device)
        if target is data.device and (dtype is None or np.dtype(dtype) == data.dtype):
            return data
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


def empty(shape: Any, dtype: Any = np.float32, device: Device | str | None = None) -> Array:
    """An uninitialised array on ``device`` (the default device when None)."""
    from ._devices import get_device

    return Array(get_device(device), shape, dtype)


def zeros(shape: Any, dtype: Any = np.float32, device: Device | str | None = None) -> Array:
    """An array of zeros on ``device``."""
    out = empty(shape, dtype, device)
    return out.set(np.zeros(out.shape, out.dtype))
