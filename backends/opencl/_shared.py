"""Memory the host and other libraries share with OpenCL kernels, and pyopencl's own arrays and queues.

On a CPU device with fine-grain buffer SVM (Intel's CPU runtime, PoCL) every buffer is a fine-grain SVM
allocation wrapped in a ``cl_mem`` (``CL_MEM_USE_HOST_PTR`` on an SVM pointer: OpenCL 2.0 makes that
SVM memory the buffer's storage). Kernels, copies and pyopencl take the ``cl_mem`` as before; the host,
numpy and PyTorch read and write the same bytes, legally while kernels use them (fine-grain SVM needs
no map). ``XGPU_SVM=0`` allocates ordinary buffers instead (then exchange copies).

Host memory of another library (a PyTorch CPU tensor) is wrapped the same way, with ``CL_MEM_USE_HOST_PTR``
on its pointer, on those devices: Intel's runtime has fine-grain *system* SVM (any host pointer is
shared memory); PoCL's CPU driver keeps a ``USE_HOST_PTR`` buffer's storage in the host memory given.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from typing import Any

import numpy as np

from xgpu.errors import InvalidArgumentError
from xgpu.plugin import AdoptedArray

SVM_ENV = "XGPU_SVM"
KDL_CPU = 1
#: SVM allocations are aligned like a cache line pair (what the CPU runtimes' vector loads like)
ALIGNMENT = 128


def _cl():
    import pyopencl

    return pyopencl


def shares_host_memory(dev: Any, device_type: str) -> bool:
    """Whether arrays on this device live in fine-grain SVM, the host's memory too."""
    if device_type != "cpu" or os.environ.get(SVM_ENV, "1").strip().lower() in ("0", "no", "off", "false"):
        return False
    cl = _cl()
    try:
        caps = int(dev.svm_capabilities)
    except (cl.Error, AttributeError):  # OpenCL 1.x: no SVM
        return False
    return bool(caps & cl.device_svm_capabilities.FINE_GRAIN_BUFFER)


def allocate_svm(context: Any, queue: Any, nbytes: int) -> tuple[Any, Any]:
    """A fine-grain SVM allocation (freed in queue order, after the work queued on it) and a buffer over it."""
    cl = _cl()
    flags = cl.svm_mem_flags.READ_WRITE | cl.svm_mem_flags.SVM_FINE_GRAIN_BUFFER
    host = cl.svm_empty(context, flags, max(nbytes, 1), np.uint8, alignment=ALIGNMENT, queue=queue)
    mem = cl.Buffer(context, cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR, hostbuf=host)
    return mem, host


def host_bytes(pointer: int, nbytes: int) -> np.ndarray:
    """The ``nbytes`` of host memory at ``pointer`` as a writeable numpy array (no copy)."""
    return np.frombuffer(memoryview((ctypes.c_uint8 * nbytes).from_address(pointer)).cast("B"), np.uint8)


def wrap_host(context: Any, pointer: int, nbytes: int) -> Any:
    cl = _cl()
    return cl.Buffer(context, cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR, hostbuf=host_bytes(pointer, nbytes))


def pyopencl_array(device: Any, mem: Any, shape: tuple[int, ...], dtype: Any, strides: tuple[int, ...],
                   offset: int) -> Any:
    from pyopencl import array as cl_array

    if any(s < 0 for s in strides):
        raise InvalidArgumentError("pyopencl arrays cannot have negative strides: pass a copy (a.copy()) of this view")
    return cl_array.Array(device.queue, shape, dtype, strides=strides, data=mem, offset=offset)


def adopt_pyopencl_array(obj: Any, devices: list[Any], make_buffer: Any) -> AdoptedArray | None:
    """``obj`` as memory of one of ``devices`` (``make_buffer(mem, nbytes)`` wraps a ``cl_mem``) when it is a
    pyopencl array; None when it is not one."""
    module = sys.modules.get("pyopencl.array")
    if module is None or not isinstance(obj, module.Array):
        return None  # pyopencl not even imported: obj cannot be one of its arrays
    cl = _cl()
    data = obj.base_data
    owner = next((d for d in devices if d.context == obj.context), None)
    if owner is None or not isinstance(data, cl.MemoryObjectHolder):
        # a context xgpu does not use (or SVM data): the elements, copied through the host
        return AdoptedArray(None, None, obj.shape, obj.dtype, obj.strides, 0, host=obj.get())
    if obj.queue is not None and obj.queue != owner.queue:
        obj.queue.finish()  # its pending work on the memory first: xgpu queues on its own queue
    return AdoptedArray(owner, make_buffer(data, int(data.size)), obj.shape, obj.dtype, obj.strides,
                        int(obj.offset))


_adopted_count = 0
_adopted_lock = threading.Lock()


def device_for_queue(queue: Any, make: Any) -> Any:
    """An ``OpenCLDevice`` over a pyopencl queue someone made (``make(platform_index, device_index, platform,
    dev, local_id)`` builds it); None when ``queue`` is no pyopencl queue."""
    module = sys.modules.get("pyopencl")
    if module is None or not isinstance(queue, module.CommandQueue):
        return None
    cl = _cl()
    if queue.properties & cl.command_queue_properties.OUT_OF_ORDER_EXEC_MODE_ENABLE:
        raise InvalidArgumentError("this queue runs commands out of order; xgpu needs an in-order queue (make it "
                                   "without OUT_OF_ORDER_EXEC_MODE_ENABLE)")
    dev = queue.device
    platforms = cl.get_platforms()
    pi = next(i for i, p in enumerate(platforms) if p == dev.platform)
    di = next(i for i, d in enumerate(platforms[pi].get_devices()) if d == dev)
    global _adopted_count
    with _adopted_lock:
        _adopted_count += 1
        n = _adopted_count
    return make(pi, di, platforms[pi], dev, f"{pi}:{di}:q{n}")
