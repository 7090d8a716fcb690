"""DLPack capsules, made and read with ctypes (the ABI of DLPack 1.0, ``dlpack.h``).

A producer hands a ``PyCapsule`` named ``"dltensor_versioned"`` (DLPack >= 1.0) or ``"dltensor"`` (older
consumers) holding a managed tensor: the tensor's description plus a deleter the consumer calls when it no
longer needs the memory. The consumer renames the capsule (``"used_..."``) when it takes it; a capsule
nobody took calls the deleter when it is destroyed.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import UnsupportedDtypeError

KDL_CPU = 1
KDL_CUDA = 2
KDL_CUDA_HOST = 3
KDL_OPENCL = 4
KDL_CUDA_MANAGED = 13

#: DLPack's flags (DLManagedTensorVersioned.flags)
FLAG_READ_ONLY = 1 << 0
FLAG_IS_COPIED = 1 << 1

#: the version this module writes
VERSION = (1, 0)

_KDL_INT, _KDL_UINT, _KDL_FLOAT, _KDL_COMPLEX, _KDL_BOOL = 0, 1, 2, 5, 6
_CODES = {"i": _KDL_INT, "u": _KDL_UINT, "f": _KDL_FLOAT, "c": _KDL_COMPLEX, "b": _KDL_BOOL}
_KINDS = {v: k for k, v in _CODES.items()}


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensor(ctypes.Structure):
    pass


class DLManagedTensorVersioned(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _DELETER)]
DLManagedTensorVersioned._fields_ = [
    ("version", DLPackVersion),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", _DELETER),
    ("flags", ctypes.c_uint64),
    ("dl_tensor", DLTensor),
]

_NAMES = {True: b"dltensor_versioned", False: b"dltensor"}
_USED = {True: b"used_dltensor_versioned", False: b"used_dltensor"}

_api = ctypes.pythonapi
_CAPSULE_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _CAPSULE_DESTRUCTOR]
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_api.PyCapsule_SetName.restype = ctypes.c_int
_api.PyCapsule_SetName.argtypes = [ctypes.c_void_p, ctypes.c_char_p]

# what each exported tensor keeps alive until its deleter runs: its struct, shape and strides, and the owner
# of the memory (an xgpu array's memory block, so the pool cannot hand it to another array meanwhile)
_LIVE: dict[int, tuple[Any, ...]] = {}
_LIVE_LOCK = threading.Lock()


def _release(address: int) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(address, None)


@_DELETER
def _deleter(address: int) -> None:
    _release(address)


@_CAPSULE_DESTRUCTOR
def _capsule_destructor(capsule: int) -> None:
    # a capsule nobody consumed still holds its tensor: free it (a consumed one was renamed "used_...")
    for versioned in (True, False):
        if _api.PyCapsule_IsValid(capsule, _NAMES[versioned]):
            address = _api.PyCapsule_GetPointer(capsule, _NAMES[versioned])
            _release(address)
            return


def dl_dtype(dtype: np.dtype) -> tuple[int, int]:
    """DLPack's (type code, bits) of a numpy dtype."""
    code = _CODES.get(dtype.kind)
    if code is None:
        raise UnsupportedDtypeError(f"DLPack has no type for {dtype}")
    return code, dtype.itemsize * 8


def np_dtype(code: int, bits: int, lanes: int) -> np.dtype:
    """The numpy dtype of DLPack's (type code, bits, lanes); a clear error for those xgpu has no dtype for."""
    kind = _KINDS.get(code)
    if kind is None or lanes != 1 or bits % 8:
        raise UnsupportedDtypeError(f"DLPack type (code {code}, {bits} bits, {lanes} lanes) has no xgpu dtype "
                                    "(bfloat16 and vector types have none): convert it in its library first")
    return np.dtype("?" if kind == "b" else f"{kind}{bits // 8}")


def make_capsule(pointer: int, device: tuple[int, int], shape: tuple[int, ...], dtype: np.dtype,
                 strides: tuple[int, ...], byte_offset: int, owner: Any, versioned: bool,
                 flags: int = 0) -> Any:
    """A DLPack capsule for memory at ``pointer`` (+ ``byte_offset``); ``strides`` in elements. ``owner`` is
    kept alive until the consumer's call of the deleter (or until the capsule is dropped unused)."""
    code, bits = dl_dtype(dtype)
    ndim = len(shape)
    c_shape = (ctypes.c_int64 * max(ndim, 1))(*shape)
    c_strides = (ctypes.c_int64 * max(ndim, 1))(*strides)
    managed: DLManagedTensor | DLManagedTensorVersioned
    if versioned:
        managed = DLManagedTensorVersioned()
        managed.version = DLPackVersion(*VERSION)
        managed.flags = flags
    else:
        managed = DLManagedTensor()
    tensor = managed.dl_tensor
    tensor.data = pointer
    tensor.device = DLDevice(*device)
    tensor.ndim = ndim
    tensor.dtype = DLDataType(code, bits, 1)
    tensor.shape = ctypes.cast(c_shape, ctypes.POINTER(ctypes.c_int64))
    tensor.strides = ctypes.cast(c_strides, ctypes.POINTER(ctypes.c_int64))
    tensor.byte_offset = byte_offset
    managed.deleter = _deleter
    address = ctypes.addressof(managed)
    with _LIVE_LOCK:
        _LIVE[address] = (managed, c_shape, c_strides, owner)
    return _api.PyCapsule_New(address, _NAMES[versioned], _capsule_destructor)


def live_exports() -> int:
    """How many exported tensors have not been released by their consumers yet."""
    with _LIVE_LOCK:
        return len(_LIVE)


@dataclass
class Imported:
    """A DLPack tensor taken from a capsule; ``release()`` (or garbage collection) calls its producer's deleter."""

    pointer: int  # data + byte_offset: the first element
    device: tuple[int, int]
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # in elements
    dtype: np.dtype
    read_only: bool
    _managed: int
    _versioned: bool

    def release(self) -> None:
        managed, self._managed = self._managed, 0
        if not managed:
            return
        kind = DLManagedTensorVersioned if self._versioned else DLManagedTensor
        struct = kind.from_address(managed)
        if struct.deleter:
            struct.deleter(managed)

    def __del__(self) -> None:
        self.release()


def take_capsule(capsule: Any) -> Imported:
    """Consume a DLPack capsule (either name): read its tensor and rename it ``used_...``; the returned
    object calls the producer's deleter when it is released."""
    obj = ctypes.c_void_p(id(capsule))
    for versioned in (True, False):
        if _api.PyCapsule_IsValid(obj, _NAMES[versioned]):
            break
    else:
        raise BufferError("not an unused DLPack capsule (named 'dltensor_versioned' or 'dltensor')")
    address = _api.PyCapsule_GetPointer(obj, _NAMES[versioned])
    kind = DLManagedTensorVersioned if versioned else DLManagedTensor
    managed = kind.from_address(address)
    if versioned and managed.version.major != 1:
        raise BufferError(f"DLPack {managed.version.major}.{managed.version.minor} is not one xgpu reads (1.x)")
    t = managed.dl_tensor
    shape = tuple(int(t.shape[i]) for i in range(t.ndim))
    dtype = np_dtype(t.dtype.code, t.dtype.bits, t.dtype.lanes)
    if t.strides:
        strides = tuple(int(t.strides[i]) for i in range(t.ndim))
    else:  # NULL strides: C order
        step, out = 1, []
        for n in reversed(shape):
            out.append(step)
            step *= max(n, 1)
        strides = tuple(reversed(out))
    _api.PyCapsule_SetName(obj, _USED[versioned])
    return Imported((t.data or 0) + t.byte_offset, (t.device.device_type, t.device.device_id), shape, strides,
                    dtype, bool(versioned and managed.flags & FLAG_READ_ONLY), address, versioned)
