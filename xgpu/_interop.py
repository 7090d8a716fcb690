"""Exchanging arrays with other libraries: DLPack both ways, ``__cuda_array_interface__``, and the driver
libraries' own arrays and queues (pyopencl, pycuda). docs/interop.md says what is shared and what is copied.

The core never names a driver here: a device's backend says whether its memory can be shared
(``DeviceImpl.dlpack_device``), where a buffer is (``buffer_pointer``), wraps memory of another library
(``wrap_memory``), and recognises its driver library's arrays and queues (``Backend.adopt_array``,
``Backend.adopt_queue``). Arrays reach this module through ``xgpu._array.GENERATED`` (no import cycle).
"""

from __future__ import annotations

import math
import sys
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _dlpack
from ._array import GENERATED, Array, asarray, check_dtype
from ._devices import Device, _default_key, _get_state, default_device_reason, devices, get_device
from ._pool import Block
from .errors import DeviceNotFoundError, InteropError, InvalidArgumentError, UnsupportedDtypeError

if TYPE_CHECKING:
    from .backend import BufferImpl


# -- export ------------------------------------------------------------------------------------------


def dlpack_device(a: Array) -> tuple[int, int]:
    """Where consumers find ``a``'s elements: its device's shared memory, or the host (a copy) where the
    device cannot share its memory."""
    return a.device._impl.dlpack_device() or (_dlpack.KDL_CPU, 0)


def to_dlpack(a: Array, stream: Any = None, max_version: Any = None, dl_device: Any = None,
              copy: bool | None = None) -> Any:
    impl = a.device._impl
    shared = impl.dlpack_device()
    versioned = max_version is not None and int(max_version[0]) >= 1
    host_wanted = dl_device is not None and tuple(dl_device) != (shared or (_dlpack.KDL_CPU, 0))
    if host_wanted and tuple(dl_device) != (_dlpack.KDL_CPU, 0):
        raise InteropError(f"{a.device.id} cannot export to DLPack device {tuple(dl_device)}: only to "
                           f"{shared or (_dlpack.KDL_CPU, 0)} or to the host (kDLCPU, 0), as a copy")
    if shared is None or host_wanted or copy:
        if copy is False:
            why = ("the host was asked for" if host_wanted else
                   f"{a.device.id} ({a.device.name}) has no memory the host or another library can address")
            raise InteropError(f"a copy is needed ({why}): leave copy=None to get one")
        if stream not in (None, -1) and (shared is None or shared[0] == _dlpack.KDL_CPU):
            raise InteropError(f"stream={stream!r}: a CPU tensor takes no stream (pass None)")
        host = np.ascontiguousarray(a.get())
        flags = _dlpack.FLAG_IS_COPIED
        return _dlpack.make_capsule(host.ctypes.data, (_dlpack.KDL_CPU, 0), host.shape, host.dtype,
                                    tuple(s // max(host.itemsize, 1) for s in host.strides), 0, host, versioned, flags)
    if shared[0] == _dlpack.KDL_CPU and stream not in (None, -1):
        raise InteropError(f"stream={stream!r}: {a.device.id}'s memory is host memory, a CPU tensor takes no stream "
                           "(pass None)")
    if shared[0] != _dlpack.KDL_CPU and stream == 0:
        raise InteropError("stream=0 is ambiguous for CUDA (DLPack forbids it): pass 1 for the legacy default "
                           "stream, 2 for the per-thread one, or the stream's handle")
    impl.ready_for(None if stream is None or shared[0] == _dlpack.KDL_CPU else int(stream))
    pointer = impl.buffer_pointer(a._buffer) if a.nbytes else 0
    owner = (a._block, a._buffer)  # the pool cannot reuse the memory while a consumer holds it
    return _dlpack.make_capsule(pointer, shared, a.shape, a.dtype, a._estrides, a.offset if a.nbytes else 0, owner,
                                versioned)


def cuda_array_interface(a: Array) -> dict[str, Any]:
    impl = a.device._impl
    shared = impl.dlpack_device()
    if shared is None or shared[0] != _dlpack.KDL_CUDA:
        # an AttributeError, so that hasattr(a, "__cuda_array_interface__") is False off CUDA
        raise AttributeError(f"__cuda_array_interface__: {a.device.id} is not a CUDA device")
    stream = impl.consumer_stream()
    pointer = impl.buffer_pointer(a._buffer) + a.offset if a.nbytes else 0
    return {
        "shape": a.shape,
        "typestr": a.dtype.str,
        "data": (pointer, False),
        "strides": None if a.is_contiguous else a.strides,
        "version": 3,
        # the stream our work is queued on: a consumer waits for it before touching the memory
        "stream": stream if stream not in (None, 0) else None,
    }


# -- import ------------------------------------------------------------------------------------------


def array_over(device: Device, buffer: BufferImpl, shape: tuple[int, ...], dtype: np.dtype,
               estrides: tuple[int, ...], offset: int) -> Array:
    """An xgpu array over memory it does not own (``buffer`` wraps it): never returned to the pool."""
    a = Array.__new__(Array)
    a.device, a.dtype, a._block = device, check_dtype(dtype), Block(buffer, None)
    a.shape, a._estrides, a._offset = tuple(shape), tuple(estrides), offset
    a.size = math.prod(a.shape)
    a.nbytes = a.size * a.dtype.itemsize
    return a


def _extent(shape: tuple[int, ...], estrides: tuple[int, ...]) -> tuple[int, int]:
    """The lowest and one-past-highest element the strides reach, relative to the first element."""
    low = sum(min(0, (n - 1) * s) for n, s in zip(shape, estrides))
    high = sum(max(0, (n - 1) * s) for n, s in zip(shape, estrides)) + 1
    return low, high


def _wrap(device: Device, pointer: int, shape: tuple[int, ...], dtype: np.dtype, estrides: tuple[int, ...],
          owner: Any) -> Array | None:
    """An array over another library's memory at ``pointer`` (its first element) on ``device``; None where
    the device cannot use that memory in place."""
    if not math.prod(shape):
        return None
    low, high = _extent(shape, estrides)
    itemsize = dtype.itemsize
    buffer = device._impl.wrap_memory(pointer + low * itemsize, (high - low) * itemsize, owner)
    if buffer is None:
        return None
    return array_over(device, buffer, shape, dtype, estrides, -low)


def _host_device(device: Any) -> Device:
    """The device a host tensor goes to: the one asked for, else the default device when it can share host
    memory, else the first one (by the default rule) that can, else the default device (a copy)."""
    if device is not None:
        return get_device(device)
    try:
        default = default_device_reason()[0]
    except DeviceNotFoundError:
        default = None
    if default is not None and default._impl.dlpack_device() == (_dlpack.KDL_CPU, 0):
        return default
    sharing = [d for d in devices() if not d.is_simulator and d._impl.dlpack_device() == (_dlpack.KDL_CPU, 0)]
    if sharing:
        return min(sharing, key=_default_key)
    return get_device(None)


def _from_host(host: np.ndarray, device: Any, copy: bool | None, what: str) -> Array:
    target = _host_device(device)
    dtype = check_dtype(host.dtype)
    if copy is not True and host.flags.writeable and dtype == host.dtype and \
            target._impl.dlpack_device() == (_dlpack.KDL_CPU, 0) and \
            all(s % host.itemsize == 0 for s in host.strides):
        wrapped = _wrap(target, host.ctypes.data, host.shape, dtype, tuple(s // host.itemsize for s in host.strides),
                        host)
        if wrapped is not None:
            return wrapped
    if copy is False and host.size:  # an empty array has nothing to copy
        why = "it is read-only" if not host.flags.writeable else \
            f"{target.id} ({target.name}) cannot use host memory in place"
        raise InteropError(f"{what} cannot be shared with xgpu without a copy ({why}): leave copy=None for a copy")
    return asarray(host, target)


def from_dlpack(x: Any, device: Any = None, copy: bool | None = None) -> Array:
    """An xgpu array over the memory of any DLPack producer (PyTorch, numpy, CuPy, JAX...), without a copy
    where the device can use that memory in place (docs/interop.md has the table).

    A CPU tensor goes to ``device`` (default: the default device if it shares host memory, else the first
    CPU device that does); a CUDA tensor to the xgpu CUDA device with its ordinal. ``copy=False`` raises
    where a copy would be needed, ``copy=True`` always copies.
    """
    if isinstance(x, Array):
        return x.copy() if copy else x
    if not hasattr(x, "__dlpack__") or not hasattr(x, "__dlpack_device__"):
        raise InvalidArgumentError(f"from_dlpack takes an object with __dlpack__ and __dlpack_device__ (a PyTorch "
                                   f"tensor, a numpy array...), not a {type(x).__name__}")
    kind, ordinal = (int(v) for v in x.__dlpack_device__())
    what = f"this {type(x).__name__}"
    if kind in (_dlpack.KDL_CPU, _dlpack.KDL_CUDA_HOST):
        try:
            host = np.from_dlpack(x)
        except (BufferError, TypeError, RuntimeError) as exc:
            raise UnsupportedDtypeError(f"{what} cannot be read through DLPack: {exc}") from None
        return _from_host(host, device, copy, what)
    target = _shared_device((kind, ordinal), device, what)
    impl = target._impl
    taken = _take(x, impl.consumer_stream())
    if taken.read_only and copy is False:
        raise InteropError(f"{what} is read-only: xgpu arrays are writeable; leave copy=None for a copy")
    check_dtype(taken.dtype)
    wrapped = None if copy or taken.read_only else _wrap(target, taken.pointer, taken.shape, taken.dtype,
                                                        taken.strides, taken)
    if wrapped is not None:
        return wrapped
    if copy is False:
        raise InteropError(f"{target.id} cannot use {what}'s memory in place: leave copy=None for a copy")
    # a copy on the device: wrap for as long as the copy takes, then let the producer have it back
    view = _wrap(target, taken.pointer, taken.shape, taken.dtype, taken.strides, taken)
    if view is None:
        raise InteropError(f"{target.id} cannot read {what}'s memory")
    return view.copy()


def _shared_device(where: tuple[int, int], device: Any, what: str) -> Device:
    if device is not None:
        target = get_device(device)
        if target._impl.dlpack_device() != where:
            raise InteropError(f"{what} lives on DLPack device {where}; {target.id} cannot use that memory: move it to "
                               "the host in its own library first, or leave device=None")
        return target
    for d in devices():
        if d._impl.dlpack_device() == where:
            return d
    raise DeviceNotFoundError(f"{what} lives on DLPack device {where}, which no xgpu device here uses; copy it to "
                              "the host in its own library (.cpu(), .get()) and pass that")


def _take(x: Any, stream: int | None) -> _dlpack.Imported:
    try:
        capsule = x.__dlpack__(stream=stream, max_version=_dlpack.VERSION)
    except TypeError:  # a producer older than DLPack 1.0 takes no max_version
        capsule = x.__dlpack__(stream=stream)
    return _dlpack.take_capsule(capsule)


# -- driver libraries' own arrays and queues ---------------------------------------------------------

_adopted: list[Device] = []
_adopted_lock = threading.Lock()


def _known_devices() -> list[Device]:
    with _adopted_lock:
        return devices() + list(_adopted)


def adopt(data: Any, device: Any, dtype: Any) -> Array | None:
    """``data`` as an xgpu array when it is an array of a backend's driver library (pyopencl, pycuda):
    sharing its memory when it lives in a context xgpu uses, else copied; None for anything else."""
    known = _known_devices()
    for backend in list(_get_state().backends.values()):
        mine = [d for d in known if d._backend is backend]
        found = backend.adopt_array(data, [d._impl for d in mine])
        if found is None:
            continue
        target = None if device is None else get_device(device)
        owner = next((d for d in mine if d._impl is found.device), None)
        if found.buffer is None or owner is None or (target is not None and target is not owner):
            # a context xgpu does not use, or another device asked for: the elements, through the host
            host = found.host if found.host is not None else data.get()
            return asarray(host, target, dtype)
        itemsize = np.dtype(found.dtype).itemsize
        if found.offset % itemsize or any(s % itemsize for s in found.strides):
            raise InvalidArgumentError(f"this {type(data).__name__}'s offset or strides are not whole elements")
        out = array_over(owner, found.buffer, found.shape, np.dtype(found.dtype),
                         tuple(s // itemsize for s in found.strides), found.offset // itemsize)
        return out if dtype is None else out.astype(dtype, copy=False)
    return None


def to_native(a: Array, library: str) -> Any:
    try:
        native = a.device._impl.native_array(library, a._buffer, a.shape, a.dtype, a.strides, a.offset)
    except NotImplementedError:
        raise InvalidArgumentError(f"to_{library}(): {a.device.id} is a {a.device.backend} device, whose arrays "
                                   f"{library} does not run on; move the array there (a.to(device)) or use "
                                   "DLPack") from None
    # the other library holds the buffer itself (its views too, which no xgpu object can follow): the memory
    # never goes back to the pool, the driver frees it once neither library holds it
    a._block.pool = None
    return native


def device_from_queue(queue: Any) -> Device:
    """An xgpu device that queues its work on a driver library's queue (``pyopencl.CommandQueue``), in that
    queue's context: both libraries' work on shared buffers runs in the order it was queued."""
    for backend in list(_get_state().backends.values()):
        for d in _known_devices():
            if d._backend is backend and getattr(d._impl, "queue", None) is queue:
                return d
        impl = backend.adopt_queue(queue)
        if impl is None:
            continue
        dev = Device(backend, impl)
        with _adopted_lock:
            _adopted.append(dev)
        return dev
    raise InvalidArgumentError(f"a {type(queue).__name__} is no queue of a backend xgpu has (pass a "
                               "pyopencl.CommandQueue)")


Device.from_pyopencl = staticmethod(device_from_queue)
GENERATED.interop = sys.modules[__name__]  # arrays reach this module through it (see xgpu._array)
