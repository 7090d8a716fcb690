"""A stand-in for ``pycuda.driver`` at the driver boundary, for tests on machines without a GPU.

It has pycuda's names, argument conventions and exception types, and keeps the driver's rules
that xgpu's CUDA backend must respect:

* calls that need a context fail with ``LogicError`` (``invalid device context``) unless one is
  current on the calling thread; contexts are pushed and popped per thread, as in the driver;
* ``module_from_buffer`` takes real cubins (ELF, EM_CUDA) and PTX: a cubin built for another
  architecture fails as the driver's ``no kernel image is available``; kernel names come from the
  cubin's symbol table (or the PTX's ``.entry`` lines);
* launches check block and grid limits and argument types like ``cuLaunchKernel`` and pycuda's
  argument packing; memory is real host memory with the device's size limit;
* an allocation, stream, event, module or page-locked buffer is freed when garbage-collected only
  where pycuda can: with its context current on the collecting thread, or on the thread that opened
  the context. Anywhere else pycuda leaks it with a ``UserWarning`` ("event in out-of-thread context
  could not be cleaned up"), and so does this stand-in (recording it in ``LEAKED``). pycuda's objects
  are C++ ones, freed when the cyclic collector clears a cycle, after every Python finalizer has run;
  this stand-in's are Python objects finalized before the wrappers that hold them, so it checks only
  objects freed outside a collection.

Kernels do not run (there is no GPU): each launch is recorded in ``LAUNCHES`` instead, so tests
see exactly what the backend asked for. ``configure(gpus=[...])`` sets the GPUs it pretends to have.
"""

from __future__ import annotations

import gc
import re
import struct
import threading
import time
import warnings
import weakref

import numpy as np


class Error(Exception):
    pass


class MemoryError(Error):  # noqa: A001 - pycuda's name
    pass


class LogicError(Error):
    pass


class LaunchError(Error):
    pass


class RuntimeError(Error):  # noqa: A001 - pycuda's name
    pass


class CompileError(Error):
    pass


GPUS = [
    {"name": "NVIDIA A100-SXM4-40GB", "cc": (8, 0), "memory": 40 * 2**30, "sms": 108, "clock_khz": 1410000,
     "pci": "0000:07:00.0"},
]
DRIVER_VERSION = 12040
INIT_ERROR: str | None = None  # set to make init() fail as it does without a driver
LAUNCHES: list[dict] = []
_initialized = False


def configure(gpus=None, init_error=None):
    global GPUS, INIT_ERROR, _initialized
    if gpus is not None:
        GPUS = gpus
    INIT_ERROR = init_error
    _initialized = False
    LAUNCHES.clear()
    STREAM_LOG.clear()


def init(flags=0):
    global _initialized
    if INIT_ERROR:
        raise RuntimeError(f"cuInit failed: {INIT_ERROR}")
    _initialized = True


def get_driver_version():
    return DRIVER_VERSION


def _need_init():
    if not _initialized:
        raise LogicError("cuDeviceGet failed: initialization error")


class device_attribute:  # noqa: N801 - pycuda's name
    MAX_THREADS_PER_BLOCK = 1
    MAX_BLOCK_DIM_X = 2
    MAX_BLOCK_DIM_Y = 3
    MAX_BLOCK_DIM_Z = 4
    MAX_GRID_DIM_X = 5
    MAX_GRID_DIM_Y = 6
    MAX_GRID_DIM_Z = 7
    MAX_SHARED_MEMORY_PER_BLOCK = 8
    CLOCK_RATE = 13
    MULTIPROCESSOR_COUNT = 16
    MEMORY_CLOCK_RATE = 36
    GLOBAL_MEMORY_BUS_WIDTH = 37


class function_attribute:  # noqa: N801 - pycuda's name
    MAX_THREADS_PER_BLOCK = 0
    SHARED_SIZE_BYTES = 1
    NUM_REGS = 4


_LIMITS = {
    device_attribute.MAX_THREADS_PER_BLOCK: 1024,
    device_attribute.MAX_BLOCK_DIM_X: 1024,
    device_attribute.MAX_BLOCK_DIM_Y: 1024,
    device_attribute.MAX_BLOCK_DIM_Z: 64,
    device_attribute.MAX_GRID_DIM_X: 2**31 - 1,
    device_attribute.MAX_GRID_DIM_Y: 65535,
    device_attribute.MAX_GRID_DIM_Z: 65535,
    device_attribute.MAX_SHARED_MEMORY_PER_BLOCK: 49152,
    device_attribute.MEMORY_CLOCK_RATE: 1215000,
    device_attribute.GLOBAL_MEMORY_BUS_WIDTH: 5120,
}


class Device:
    def __init__(self, ordinal):
        _need_init()
        if not 0 <= ordinal < len(GPUS):
            raise LogicError("cuDeviceGet failed: invalid device ordinal")
        self.ordinal = ordinal
        self._gpu = GPUS[ordinal]

    @staticmethod
    def count():
        _need_init()
        return len(GPUS)

    def name(self):
        return self._gpu["name"]

    def compute_capability(self):
        return self._gpu["cc"]

    def total_memory(self):
        return self._gpu["memory"]

    def pci_bus_id(self):
        return self._gpu["pci"]

    def get_attribute(self, attr):
        if attr == device_attribute.CLOCK_RATE:
            return self._gpu["clock_khz"]
        if attr == device_attribute.MULTIPROCESSOR_COUNT:
            return self._gpu["sms"]
        if attr in _LIMITS:
            return _LIMITS[attr]
        raise LogicError(f"cuDeviceGetAttribute failed: invalid value ({attr})")

    def retain_primary_context(self):
        return Context(self)

    def make_context(self, flags=0):
        ctx = Context(self)
        ctx.push()
        return ctx

    def __eq__(self, other):
        return isinstance(other, Device) and other.ordinal == self.ordinal

    def __hash__(self):
        return self.ordinal


_tls = threading.local()


def _stack():
    if not hasattr(_tls, "stack"):
        _tls.stack = []
    return _tls.stack


def _current():
    stack = _stack()
    if not stack:
        raise LogicError("invalid device context - no currently active context?")
    return stack[-1]


#: what was garbage-collected where pycuda could not free it (see the module's docstring)
LEAKED: list[str] = []


_COLLECTING = [False]
gc.callbacks.append(lambda phase, info: _COLLECTING.__setitem__(0, phase == "start"))


def _cleanup(context, what: str) -> bool:
    """Whether pycuda can free an object of ``context`` here (scoped_context_activation); if not, its warning."""
    if (context is None or _COLLECTING[0] or Context.get_current() is context
            or threading.get_ident() == context.thread):
        return True
    LEAKED.append(what)
    warnings.warn(f"{what} in out-of-thread context could not be cleaned up", UserWarning, stacklevel=2)
    return False


class Context:
    def __init__(self, device):
        self.device = device
        self.used = {"bytes": 0}
        self.thread = threading.get_ident()  # pycuda's context object remembers the thread that made it

    def push(self):
        _stack().append(self)

    @staticmethod
    def pop():
        stack = _stack()
        if not stack:
            raise LogicError("cuCtxPopCurrent failed: invalid device context")
        stack.pop()

    @staticmethod
    def get_current():
        stack = _stack()
        return stack[-1] if stack else None

    @staticmethod
    def synchronize():
        _current()

    def get_device(self):
        return self.device


class DeviceAllocation:
    _next = 0x7F0000000000

    def __init__(self, nbytes, context):
        self.data = bytearray(nbytes)
        self.context = context
        DeviceAllocation._next += (nbytes + 255) // 256 * 256
        self.ptr = DeviceAllocation._next
        _LIVE[self.ptr] = weakref.ref(self)

    def __int__(self):
        return self.ptr

    def free(self):
        self.context.used["bytes"] -= len(self.data)
        self.data = bytearray()
        _LIVE.pop(self.ptr, None)

    def __del__(self):  # pycuda frees an allocation when it is garbage-collected, where it can
        if self.data and _cleanup(self.context, "device_allocation"):
            self.free()


_LIVE: dict = {}  # pointer -> weak reference to its allocation


def _memory(pointer):
    """(memoryview, offset) of the live allocation holding ``pointer`` (an allocation or an int, as the driver
    takes CUdeviceptr values); the driver's error for an address that is no allocation's."""
    if isinstance(pointer, DeviceAllocation):
        return memoryview(pointer.data), 0
    address = int(pointer)
    for ptr, ref in list(_LIVE.items()):
        alloc = ref()
        if alloc is not None and ptr <= address < ptr + len(alloc.data):
            return memoryview(alloc.data), address - ptr
    raise LogicError("cuMemcpy failed: invalid argument (not a device address)")


def mem_alloc(nbytes):
    ctx = _current()
    if nbytes <= 0:
        raise LogicError("cuMemAlloc failed: invalid argument")
    if ctx.used["bytes"] + nbytes > ctx.device.total_memory():
        raise MemoryError("cuMemAlloc failed: out of memory")
    ctx.used["bytes"] += nbytes
    return DeviceAllocation(nbytes, ctx)


def _host_bytes(host):
    arr = np.asarray(host)
    if not arr.flags.c_contiguous:
        raise TypeError("expected a contiguous buffer")
    return arr


def memcpy_htod(dest, src):
    _current()
    arr = _host_bytes(src)
    mem, at = _memory(dest)
    if at + arr.nbytes > len(mem):
        raise LogicError("cuMemcpyHtoD failed: invalid argument")
    mem[at: at + arr.nbytes] = arr.tobytes()


def memcpy_dtoh(dest, src):
    _current()
    arr = _host_bytes(dest)
    mem, at = _memory(src)
    if at + arr.nbytes > len(mem):
        raise LogicError("cuMemcpyDtoH failed: invalid argument")
    arr.view(np.uint8).reshape(-1)[:] = np.frombuffer(bytes(mem[at: at + arr.nbytes]), np.uint8)


def memcpy_dtod(dest, src, size):
    _current()
    (dmem, dat), (smem, sat) = _memory(dest), _memory(src)
    if sat + size > len(smem) or dat + size > len(dmem):
        raise LogicError("cuMemcpyDtoD failed: invalid argument")
    dmem[dat: dat + size] = bytes(smem[sat: sat + size])


#: what was asked of streams, in order: ("wait", stream, event), ("record", stream, event), ("htod", stream),
#: ("dtoh", stream), ("dtod", stream); tests check the order xgpu asked for
STREAM_LOG: list[tuple] = []


class Stream:
    _next = 0x5000

    def __init__(self, flags=0):
        self.context = _current()
        Stream._next += 16
        self.handle = Stream._next  # the CUstream, as an int

    def __del__(self):
        _cleanup(self.context, "stream")

    def synchronize(self):
        _current()

    def is_done(self):
        return True

    def wait_for_event(self, evt):
        # cuStreamWaitEvent: the event may come from another context (another device) of the process
        _current()
        if not isinstance(evt, Event):
            raise TypeError("wait_for_event: expected an Event")
        STREAM_LOG.append(("wait", self, evt))


class Event:
    def __init__(self, flags=0):
        self.context = _current()
        self.t = None

    def __del__(self):
        _cleanup(self.context, "event")

    def record(self, stream=None):
        ctx = _current()
        if stream is not None and stream.context.device != self.context.device or ctx.device != self.context.device:
            raise LogicError("cuEventRecord failed: invalid resource handle")
        self.t = time.perf_counter()
        STREAM_LOG.append(("record", stream, self))
        return self

    def synchronize(self):
        _current()
        return self

    def query(self):
        return True

    def time_since(self, other):
        if self.t is None or other.t is None:
            raise LogicError("cuEventElapsedTime failed: resource handle not initialized")
        return (self.t - other.t) * 1e3


class HostAllocation(bytearray):
    """Page-locked host memory (cuMemHostAlloc): the arrays pagelocked_empty returns keep it as their base."""

    def __init__(self, nbytes):
        super().__init__(max(nbytes, 1))
        self.context = _current()

    def __del__(self):
        _cleanup(self.context, "pagelocked_host_allocation")


def pagelocked_empty(shape, dtype, order="C", mem_flags=0):
    dt = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    count = 1
    for s in shape:
        count *= s
    alloc = HostAllocation(count * dt.itemsize)
    # the allocation stays alive through the array's .base chain, as pycuda's HostAllocation does
    return np.frombuffer(alloc, np.uint8, count * dt.itemsize).view(dt).reshape(shape, order=order)


def _on_stream(stream, what):
    ctx = _current()
    if stream is not None and stream.context.device != ctx.device:
        raise LogicError(f"{what} failed: invalid resource handle")
    STREAM_LOG.append((what, stream))


def memcpy_htod_async(dest, src, stream=None):
    _on_stream(stream, "htod")
    memcpy_htod(dest, src)


def memcpy_dtoh_async(dest, src, stream=None):
    _on_stream(stream, "dtoh")
    memcpy_dtoh(dest, src)


def memcpy_dtod_async(dest, src, size, stream=None):
    _on_stream(stream, "dtod")
    memcpy_dtod(dest, src, size)


EM_CUDA = 190


def _cubin_kernels(image: bytes, device) -> list[str]:
    if image[:4] != b"\x7fELF" or image[4] != 2:
        raise LogicError("cuModuleLoadData failed: device kernel image is invalid")
    (machine,) = struct.unpack_from("<H", image, 18)
    (flags,) = struct.unpack_from("<I", image, 0x30)
    if machine != EM_CUDA:
        raise LogicError("cuModuleLoadData failed: device kernel image is invalid")
    sm = (flags >> 8) & 0xFF
    major, minor = device.compute_capability()
    # a cubin runs on its own architecture and later minor versions of the same major one
    if sm // 10 != major or sm % 10 > minor:
        raise RuntimeError("cuModuleLoadData failed: no kernel image is available for execution on the device")
    shoff, = struct.unpack_from("<Q", image, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", image, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", image, shoff + i * shentsize) for i in range(shnum)]
    names = []
    for sh in sections:
        if sh[1] != 2:  # SHT_SYMTAB
            continue
        strtab = sections[sh[6]]
        for off in range(sh[4], sh[4] + sh[5], 24):
            st_name, st_info = struct.unpack_from("<IB", image, off)
            if st_info & 0xF == 2 and st_info >> 4 == 1:  # STT_FUNC, STB_GLOBAL
                start = strtab[4] + st_name
                names.append(image[start:image.index(b"\0", start)].decode())
    return names


def _ptx_kernels(text: str) -> list[str]:
    if ".version" not in text or ".target" not in text:
        raise LogicError("cuModuleLoadData failed: a PTX JIT compilation failed")
    return re.findall(r"\.entry\s+(\w+)\s*\(", text)


class Module:
    def __init__(self, image):
        ctx = _current()
        raw = bytes(image) if not isinstance(image, str) else image.encode()
        self.context = ctx
        self.kernels: list[str] = []
        if raw[:4] == b"\x7fELF":
            self.kernels = _cubin_kernels(raw, ctx.device)
        else:
            self.kernels = _ptx_kernels(raw.rstrip(b"\0").decode(errors="replace"))

    def __del__(self):
        _cleanup(self.context, "module")

    def get_function(self, name):
        _current()
        if name in self.kernels:
            return Function(self, name)
        del self  # pycuda raises from C++: no Python frame of the error keeps the module alive
        raise LogicError("cuModuleGetFunction failed: named symbol not found")


def module_from_buffer(buffer, options=None, message_handler=None):
    return Module(buffer)


class Function:
    def __init__(self, module, name):
        self.module = module
        self.name = name

    def get_attribute(self, attr):
        _current()
        if attr == function_attribute.MAX_THREADS_PER_BLOCK:
            return 1024
        if attr == function_attribute.NUM_REGS:
            return 32
        if attr == function_attribute.SHARED_SIZE_BYTES:
            return 0
        raise LogicError("cuFuncGetAttribute failed: invalid value")

    def __call__(self, *args, block=(1, 1, 1), grid=(1, 1), stream=None, shared=0, **kw):
        if kw:
            raise ValueError(f"extra keyword arguments: {', '.join(kw)}")
        ctx = _current()
        if ctx.device != self.module.context.device:
            raise LogicError("cuLaunchKernel failed: invalid resource handle")
        block = tuple(block) + (1,) * (3 - len(block))
        grid = tuple(grid) + (1,) * (3 - len(grid))
        dev = ctx.device
        limits = [dev.get_attribute(a) for a in (device_attribute.MAX_BLOCK_DIM_X, device_attribute.MAX_BLOCK_DIM_Y,
                                                 device_attribute.MAX_BLOCK_DIM_Z)]
        glimits = [dev.get_attribute(a) for a in (device_attribute.MAX_GRID_DIM_X, device_attribute.MAX_GRID_DIM_Y,
                                                  device_attribute.MAX_GRID_DIM_Z)]
        if (block[0] * block[1] * block[2] > self.get_attribute(function_attribute.MAX_THREADS_PER_BLOCK)
                or any(b > lim for b, lim in zip(block, limits)) or any(g > lim for g, lim in zip(grid, glimits))
                or min(block + grid) < 1):
            raise LogicError("cuLaunchKernel failed: invalid argument")
        # like the driver: dynamic shared memory beyond the block's limit (48 KiB without an opt-in) is refused
        if not isinstance(shared, int) or shared < 0 or (
                shared + self.get_attribute(function_attribute.SHARED_SIZE_BYTES)
                > dev.get_attribute(device_attribute.MAX_SHARED_MEMORY_PER_BLOCK)):
            raise LogicError("cuLaunchKernel failed: invalid argument")
        packed = []
        for i, a in enumerate(args):
            if isinstance(a, DeviceAllocation):
                if a.context.device != dev:
                    raise LaunchError("cuLaunchKernel failed: an illegal memory access was encountered")
                packed.append(("ptr", int(a)))
            elif isinstance(a, np.number):
                packed.append((a.dtype.name, a.item()))
            else:
                raise TypeError(f"invalid type on parameter #{i} (0-based)")
        LAUNCHES.append({"kernel": self.name, "block": block, "grid": grid, "args": packed, "shared": shared,
                         "device": dev.ordinal,
                         "stream": stream, "thread": threading.current_thread()})
