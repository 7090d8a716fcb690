"""A stand-in for ``pycuda.gpuarray``: the part of ``GPUArray`` that other libraries exchange memory through
(shape, dtype, strides, ``gpudata``, ``base``, ``get``, ``__cuda_array_interface__``), over the stand-in's memory."""

from __future__ import annotations

import numpy as np

from . import driver


class GPUArray:
    def __init__(self, shape, dtype, allocator=None, base=None, gpudata=None, strides=None, order="C"):
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.dtype = np.dtype(dtype)
        self.size = int(np.prod(self.shape))
        self.nbytes = self.size * self.dtype.itemsize
        if strides is None:
            strides = np.empty(self.shape, self.dtype, order=order).strides if self.size else (0,) * len(self.shape)
        self.strides = tuple(strides)
        self.base = base
        self.gpudata = gpudata if gpudata is not None else (allocator or driver.mem_alloc)(max(self.nbytes, 1))

    @property
    def ptr(self):
        return int(self.gpudata)

    def get(self):
        if not self.size:
            return np.empty(self.shape, self.dtype)
        span = sum((n - 1) * s for n, s in zip(self.shape, self.strides)) + self.dtype.itemsize
        raw = np.empty(span, np.uint8)
        driver.memcpy_dtoh(raw, self.gpudata)
        return np.ndarray(self.shape, self.dtype, buffer=raw, strides=self.strides).copy()

    def set(self, host):
        host = np.ascontiguousarray(host, self.dtype)
        driver.memcpy_htod(self.gpudata, host)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, False), "strides": self.strides,
                "version": 3, "stream": None}


def to_gpu(host):
    host = np.ascontiguousarray(host)
    out = GPUArray(host.shape, host.dtype)
    out.set(host)
    return out
