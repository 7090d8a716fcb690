"""xgpu: write a GPU kernel once as a template, run it on NVIDIA, AMD and Intel hardware.

Public surface (everything else is private)::

    xgpu.devices(), xgpu.get_device(spec), xgpu.list_backends()     devices and backends
    xgpu.asarray(x, device), xgpu.empty/zeros/ones/full/arange(...) arrays in device memory (and *_like)
    xgpu.bfloat16                                                   bfloat16 (ml_dtypes') for arrays
    xgpu.elementwise(...), xgpu.reduction(...), xgpu.scan(...)      kernels from one line
    a + b, a < b, xgpu.sum/max/min/mean/cumsum/dot/where/exp/...    numpy's arithmetic on the device
    xgpu.render(template, backend), xgpu.compile(template, device) kernel templates
    xgpu.gemm(a, b, c, ...), xgpu.matmul(a, b), a @ b, xgpu.conv2d   the kernel library
    xgpu.DeviceGroup(devices), matmul/conv2d(..., devices=[...])    a batch split over devices
    device.queue(), queue=, wait_for=, xgpu.pinned_empty(...)       queues (streams), events, non-blocking copies
    xgpu.quantized.linear(...), xgpu.quantized.conv2d(...)          quantized layers (PyTorch's arithmetic)
    xgpu.cache_info(), xgpu.cache_clear()                           the on-disk compile cache
    xgpu.KernelTemplate, xgpu.hookimpl, xgpu.errors                 templates, plugins, errors
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import errors, quantized
from ._array import (
    Array,
    arange,
    asarray,
    copyto,
    empty,
    empty_like,
    full,
    full_like,
    ones,
    ones_like,
    shares_memory,
    zeros,
    zeros_like,
)
from ._cache import clear as cache_clear
from ._cache import info as cache_info
from ._devices import Device, devices, get_device, list_backends, pinned_empty
from ._elementwise import ElementwiseKernel, ReductionKernel, ScanKernel, elementwise, reduction, scan
from ._group import DeviceGroup
from ._interop import from_dlpack
from ._math import abs, cumsum, dot, exp, log, max, mean, min, sqrt, sum, where  # noqa: A004  (numpy's names)
from ._ops import conv2d, gemm, matmul
from ._plugins import register_plugin, unregister_plugin
from ._program import Kernel, Program, compile, compile_offline, render
from ._queue import Event, Queue
from .errors import XgpuError
from .hookspecs import hookimpl
from .template import BFLOAT16, REQUIRED_WORDS, KernelTemplate, RenderedSource, ctype

#: bfloat16 as a dtype (``ml_dtypes.bfloat16``): ``xgpu.asarray(x, dtype=xgpu.bfloat16)``
bfloat16 = BFLOAT16.type

try:
    __version__ = _version("xgpu")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "REQUIRED_WORDS",
    "Array",
    "Device",
    "DeviceGroup",
    "ElementwiseKernel",
    "ReductionKernel",
    "ScanKernel",
    "Event",
    "Kernel",
    "KernelTemplate",
    "Program",
    "Queue",
    "RenderedSource",
    "XgpuError",
    "__version__",
    "asarray",
    "bfloat16",
    "cache_clear",
    "cache_info",
    "compile",
    "compile_offline",
    "conv2d",
    "copyto",
    "ctype",
    "devices",
    "empty",
    "errors",
    "gemm",
    "get_device",
    "list_backends",
    "matmul",
    "quantized",
    "hookimpl",
    "register_plugin",
    "render",
    "shares_memory",
    "unregister_plugin",
    "zeros",
    "arange",
    "elementwise",
    "reduction",
    "scan",
    "empty_like",
    "full",
    "from_dlpack",
    "full_like",
    "ones",
    "ones_like",
    "pinned_empty",
    "zeros_like",
    "abs",
    "cumsum",
    "dot",
    "exp",
    "log",
    "max",
    "mean",
    "min",
    "sqrt",
    "sum",
    "where",
]
