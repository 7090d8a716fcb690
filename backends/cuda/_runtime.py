"""Running kernels on NVIDIA GPUs through pycuda: devices, contexts, memory, streams, events, launches.

Kernels are compiled by NVRTC to a cubin for the device's architecture (nvcc where NVRTC is
missing) and loaded with ``module_from_buffer``: no per-kernel nvcc process as in pycuda's
``SourceModule``. Each device keeps its primary context; every driver call runs with that context
pushed on the calling thread's context stack and popped afterwards, so several devices and threads
never see each other's current context.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import weakref
from typing import Any

import numpy as np

from xgpu.errors import (
    BackendUnavailableError,
    CompileError,
    DeviceError,
    InvalidArgumentError,
    LaunchError,
    OutOfMemoryError,
)
from xgpu.plugin import (
    LOCAL_ALIGN,
    AdoptedArray,
    BufferImpl,
    DeviceImpl,
    DeviceInfo,
    EventImpl,
    KernelImpl,
    LocalMemory,
    ProgramImpl,
    QueueImpl,
)
from xgpu.template import atomic_features

from ._nvrtc import compile_cuda, find_tool, supported_archs


def _atomic_kind(dtype: str, op: str) -> str:
    """What prelude.mako compiles each atomic to: CUDA's own, but float min/max by compare-and-swap."""
    return "emulated" if dtype.startswith("float") and op in ("min", "max") else "native"


def driver():
    """pycuda's driver module (imported here only, so that tests can stand in for it)."""
    import pycuda.driver

    return pycuda.driver


@contextlib.contextmanager
def translate_errors(device: str, what: str, nbytes: int | None = None):
    """Map pycuda's exceptions to xgpu's, chaining the original."""
    drv = driver()
    try:
        yield
    except drv.MemoryError as exc:
        size = f" of {nbytes} bytes ({nbytes / 2**20:.1f} MiB)" if nbytes is not None else ""
        raise OutOfMemoryError(f"{device}: out of memory in {what}{size}: {exc}") from exc
    except drv.LaunchError as exc:
        raise LaunchError(f"{device}: {what} failed: {exc}") from exc
    except drv.Error as exc:
        raise DeviceError(f"{device}: {what} failed: {exc}") from exc


def _release(holder: Any, *names: str) -> None:
    """Drop ``holder``'s pycuda objects (attributes ``names``) with its device's context current here.

    pycuda frees an allocation, event, stream or module only where its context is current, or on the
    thread that opened the context; anywhere else it leaks it with a warning ("event in out-of-thread
    context could not be cleaned up"). Python drops the last reference on whichever thread held it last
    (a wait's helper thread, a DeviceGroup part's thread, the garbage collector), so every wrapper hands
    its objects back through here."""
    held = [holder.__dict__.pop(name, None) for name in names]
    device = holder.__dict__.get("device")
    if device is not None:
        device.release(held)


class CudaBuffer(BufferImpl):
    def __init__(self, allocation: Any, nbytes: int, owner: Any = None, device: CudaDevice | None = None):
        #: pycuda's DeviceAllocation, or the int pointer of another library's memory (kept alive by ``owner``)
        self.allocation = allocation
        self.nbytes = nbytes
        self.owner = owner
        self.device = device  # the allocation's device (None for another library's memory)

    def __del__(self) -> None:
        _release(self, "allocation")

    def usable(self) -> bool:
        return "allocation" in self.__dict__

    @property
    def arg(self) -> Any:
        """What a launch passes for it: pycuda packs an allocation, or an integer of pointer size."""
        return np.uintp(self.allocation) if isinstance(self.allocation, int) else self.allocation


class CudaEvent(EventImpl):
    def __init__(self, device: CudaDevice, start: Any, end: Any):
        self.device = device
        self.start = start
        self.end = end

    def __del__(self) -> None:
        # the device's spare events: recorded again by later launches (no create, no destroy)
        device = self.__dict__.get("device")
        if device is not None:
            device.spare_events(self.__dict__.pop("start", None), self.__dict__.pop("end", None))

    def usable(self) -> bool:
        return "end" in self.__dict__

    def wait(self) -> None:
        with self.device.active("waiting for a kernel"):
            self.end.synchronize()

    def elapsed_s(self) -> float:
        self.wait()
        with self.device.active("reading event times"):
            return self.end.time_since(self.start) * 1e-3  # pycuda gives milliseconds

    def done(self) -> bool:
        with self.device.active("querying an event"):
            return bool(self.end.query())

    def times_ns(self) -> tuple[int, int] | None:
        # CUDA events give only intervals: measured from an event the device recorded when it was opened
        self.wait()
        with self.device.active("reading event times"):
            epoch = self.device.epoch
            return int(self.start.time_since(epoch) * 1e6), int(self.end.time_since(epoch) * 1e6)


class CudaStream(QueueImpl):
    """A stream of a device beside its default one."""

    def __init__(self, device: CudaDevice, stream: Any):
        self.device = device
        self.stream = stream

    def __del__(self) -> None:
        _release(self, "stream")

    def finish(self) -> None:
        with self.device.active("synchronizing a stream"):
            self.stream.synchronize()


class CudaKernel(KernelImpl):
    def __init__(self, function: Any, name: str, device: CudaDevice):
        self.function = function
        self.name = name
        self.device = device

    def __del__(self) -> None:
        _release(self, "function")  # pycuda's function keeps its module alive: the last one frees it

    def max_work_group_size(self) -> int:
        drv = driver()
        with self.device.active(f"querying kernel {self.name}"):
            return int(self.function.get_attribute(drv.function_attribute.MAX_THREADS_PER_BLOCK))

    def static_local_mem_bytes(self) -> int:
        drv = driver()
        with self.device.active(f"querying kernel {self.name}"):
            return int(self.function.get_attribute(drv.function_attribute.SHARED_SIZE_BYTES))


class CudaProgram(ProgramImpl):
    def __init__(self, module: Any, device: CudaDevice, binary: bytes, log: str):
        self.module = module
        self.device = device
        self.binary = binary
        self.log = log

    def __del__(self) -> None:
        _release(self, "module")

    def kernel(self, name: str) -> CudaKernel:
        drv = driver()
        try:
            with self.device.active(f"looking up kernel {name}"):
                return CudaKernel(self.module.get_function(name), name, self.device)
        except DeviceError as exc:
            if isinstance(exc.__cause__, drv.LogicError):  # cuModuleGetFunction: named symbol not found
                raise KeyError(name) from exc
            raise


def _nvcc() -> str | None:
    return find_tool("nvcc")


def compile_with_nvcc(source: str, arch: str, options: tuple[str, ...]) -> tuple[bytes, str]:
    """The fallback where NVRTC is not installed: ``nvcc --cubin`` in a temporary folder."""
    nvcc = _nvcc()
    if nvcc is None:
        raise BackendUnavailableError(
            "neither NVRTC nor nvcc is installed: pip install 'xgpu[cuda]' (cuda-bindings, nvidia-cuda-nvrtc)"
        )
    with tempfile.TemporaryDirectory(prefix="xgpu-nvcc-") as tmp:
        src, out = os.path.join(tmp, "kernel.cu"), os.path.join(tmp, "kernel.cubin")
        with open(src, "w") as f:
            f.write(source)
        cmd = [nvcc, "--cubin", f"-arch={arch}", "-std=c++17", *options, "-o", out, src]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        log = (proc.stdout + proc.stderr).strip().replace(src, "kernel.cu")
        if proc.returncode:
            raise CompileError("nvcc failed", backend="cuda", device=arch, source=source, options=tuple(cmd[2:-3]),
                               log=log)
        with open(out, "rb") as f:
            return f.read(), log


# float32 lanes per multiprocessor and the float64 rate against float32, by compute capability
# (NVIDIA's CUDA C programming guide, "arithmetic instructions" throughput table)
_FP32_LANES = {(6, 0): 64, (7, 0): 64, (7, 5): 64, (8, 0): 64}
_FP64_RATE = {(6, 0): 1 / 2, (7, 0): 1 / 2, (8, 0): 1 / 2, (9, 0): 1 / 2, (10, 0): 1 / 2}


def peak_figures(cc: tuple[int, int], sms: int, clock_khz: int, memory_clock_khz: int, bus_bits: int) -> dict:
    """Peaks the driver's figures allow: FMA lanes x 2 FLOP x clock; double-data-rate memory x bus width."""
    lanes = _FP32_LANES.get(cc, 128)
    fp32 = sms * lanes * 2 * clock_khz * 1e3 / 1e9
    return {
        "peak_gflops_float32": fp32,
        "peak_gflops_float64": fp32 * _FP64_RATE.get(cc, 1 / 64),
        "peak_gbps": 2 * memory_clock_khz * 1e3 * bus_bits / 8 / 1e9,
    }


class CudaDevice(DeviceImpl):
    def __init__(self, ordinal: int, dev: Any, driver_version: int, uuid: str):
        self._spare: list[Any] = []  # events of ended CudaEvents, recorded again by later launches
        drv = driver()
        attr = drv.device_attribute
        self.ordinal = ordinal
        self.dev = dev
        self._id = f"cuda:{ordinal}"
        self._lock = threading.RLock()
        major, minor = dev.compute_capability()
        self.arch = f"sm_{major}{minor}"
        self.max_grid = tuple(int(dev.get_attribute(a)) for a in (attr.MAX_GRID_DIM_X, attr.MAX_GRID_DIM_Y,
                                                                   attr.MAX_GRID_DIM_Z))
        cuda = f"{driver_version // 1000}.{driver_version % 1000 // 10}"
        self.info = DeviceInfo(
            local_id=str(ordinal),
            name=dev.name(),
            vendor="NVIDIA",
            platform=f"CUDA {cuda}",
            type="gpu",
            driver_version=cuda,
            compute_units=int(dev.get_attribute(attr.MULTIPROCESSOR_COUNT)),
            clock_mhz=int(dev.get_attribute(attr.CLOCK_RATE)) // 1000,
            global_mem_bytes=int(dev.total_memory()),
            local_mem_bytes=int(dev.get_attribute(attr.MAX_SHARED_MEMORY_PER_BLOCK)),
            max_work_group_size=int(dev.get_attribute(attr.MAX_THREADS_PER_BLOCK)),
            max_work_item_sizes=tuple(int(dev.get_attribute(a)) for a in (attr.MAX_BLOCK_DIM_X, attr.MAX_BLOCK_DIM_Y,
                                                                          attr.MAX_BLOCK_DIM_Z)),
            fp64=True,
            fp16_storage=True,
            fp16_arithmetic=(major, minor) >= (5, 3),
            features={**atomic_features(_atomic_kind), "subgroups": "native"},
            subgroup_sizes=(32,),
            extra={
                "compute_capability": f"{major}.{minor}",
                "arch": self.arch,
                "uuid": uuid,
                "pci_bus_id": dev.pci_bus_id(),
                "memory_bus_bits": int(dev.get_attribute(attr.GLOBAL_MEMORY_BUS_WIDTH)),
                "memory_clock_mhz": int(dev.get_attribute(attr.MEMORY_CLOCK_RATE)) // 1000,
                **peak_figures((major, minor), int(dev.get_attribute(attr.MULTIPROCESSOR_COUNT)),
                               int(dev.get_attribute(attr.CLOCK_RATE)), int(dev.get_attribute(attr.MEMORY_CLOCK_RATE)),
                               int(dev.get_attribute(attr.GLOBAL_MEMORY_BUS_WIDTH))),
            },
        )
        # the device's primary context: shared with other libraries in the process (CuPy, PyTorch)
        self.context = dev.retain_primary_context()
        with self.active("creating a stream"):
            self.stream = drv.Stream()
            self.epoch = drv.Event()  # where times_ns() counts from
            self.epoch.record(self.stream)
            self.epoch.synchronize()
        self._streams: weakref.WeakSet[CudaStream] = weakref.WeakSet()  # the others: synchronize() ends them too

    #: spare events kept per device; beyond this they are destroyed
    SPARE_EVENTS = 256

    def spare_events(self, *events: Any) -> None:
        """Keep pycuda events whose CudaEvent has gone, for later launches (a launch records two)."""
        keep = [e for i, e in enumerate(events) if e is not None and all(e is not o for o in events[:i])]
        spare = self.__dict__.get("_spare")  # gone once the device itself is collected
        if spare is not None and len(spare) + len(keep) <= self.SPARE_EVENTS:
            spare.extend(keep)  # list.extend is atomic: no lock, no context needed
        else:
            self.release(keep)

    def _event(self) -> Any:
        """A spare event or a new one; call within active()."""
        try:
            return self._spare.pop()
        except IndexError:
            return driver().Event()

    def release(self, held: list) -> None:
        """Drop the last references to the pycuda objects in ``held`` with this device's context current on
        this thread, where pycuda can free them (see _release)."""
        try:
            with self._lock:
                self.context.push()
                try:
                    held.clear()
                finally:
                    self.context.pop()  # static in pycuda: pops this thread's current context, the one pushed
        except Exception:  # shutting down, or the context is gone: pycuda frees nothing there anyway
            held.clear()

    def __del__(self) -> None:  # a device list read again drops the old devices: their stream and events too
        held = list(self.__dict__.pop("_spare", None) or ())
        held += [self.__dict__.pop(name, None) for name in ("stream", "epoch")]
        if "context" in self.__dict__:
            self.release(held)

    @contextlib.contextmanager
    def active(self, what: str, nbytes: int | None = None):
        """Run driver calls with this device's context current on this thread, then restore the stack."""
        drv = driver()
        with self._lock, translate_errors(self._id, what, nbytes):
            self.context.push()
            try:
                yield
            finally:
                drv.Context.pop()

    def allocate(self, nbytes: int) -> CudaBuffer:
        with self.active("allocating memory", nbytes):
            return CudaBuffer(driver().mem_alloc(max(nbytes, 1)), nbytes, device=self)

    def write(self, buffer: CudaBuffer, host: Any) -> None:  # type: ignore[override]  # handed only this backend's own objects
        with self.active("copying to the device"):
            self.stream.synchronize()  # kernels still reading the buffer finish first
            driver().memcpy_htod(buffer.allocation, host)

    def read(self, buffer: CudaBuffer, host: Any) -> None:  # type: ignore[override]  # handed only this backend's own objects
        with self.active("copying from the device"):
            self.stream.synchronize()  # kernels writing the buffer finish first
            driver().memcpy_dtoh(host, buffer.allocation)

    def copy(self, dst: CudaBuffer, src: CudaBuffer, nbytes: int) -> None:  # type: ignore[override]  # handed only this backend's own objects
        with self.active("copying on the device"):
            self.stream.synchronize()
            driver().memcpy_dtod(dst.allocation, src.allocation, nbytes)

    def _target(self) -> str:
        """The architecture to compile for: the device's own, or, where this NVRTC does not know it
        yet, PTX for the newest one it knows (the driver compiles PTX for newer GPUs)."""
        try:
            known = supported_archs()
        except BackendUnavailableError:
            return self.arch
        number = int(self.arch[3:])
        if number in known:
            return self.arch
        if known and number > max(known):
            return f"compute_{max(known)}"
        raise BackendUnavailableError(
            f"{self._id} ({self.info.name}) is {self.arch}; this NVRTC compiles for sm_{min(known)} to "
            f"sm_{max(known)}: install an NVRTC that supports it (pip install 'nvidia-cuda-nvrtc<13')"
        )

    def compile(self, source: str, options: tuple[str, ...]) -> CudaProgram:
        target = self._target()
        try:
            built = compile_cuda(source, target, options)
            binary, log = (built.cubin if built.cubin is not None else built.ptx.encode()), built.log
        except BackendUnavailableError as exc:
            if "NVRTC is not installed" not in str(exc):
                raise
            binary, log = compile_with_nvcc(source, self.arch, options)
        except CompileError as exc:
            exc.device = self._id
            raise
        return self.load_binary(binary, options, log)

    def program_binary(self, program: CudaProgram) -> bytes | None:  # type: ignore[override]  # handed only this backend's own objects
        return program.binary

    def load_binary(self, binary: bytes, options: tuple[str, ...], log: str = "") -> CudaProgram:
        with self.active("loading a compiled module"):
            module = driver().module_from_buffer(binary)
        return CudaProgram(module, self, binary, log)

    # -- several streams ------------------------------------------------------------------------------

    def new_queue(self) -> CudaStream:
        with self.active("creating a stream"):
            made = CudaStream(self, driver().Stream())
        self._streams.add(made)
        return made

    def _on(self, queue: Any, wait_for: Any) -> Any:
        """The stream to use, made to wait (on the device) for the events of ``wait_for``; call within active()."""
        stream = self.stream if queue is None else queue.stream
        for e in wait_for:
            stream.wait_for_event(e.end)
        return stream

    def _timed(self, what: str, queue: Any, wait_for: Any, blocking: bool, work: Any) -> CudaEvent:
        with self.active(what):
            stream = self._on(queue, wait_for)
            start, end = self._event(), self._event()
            start.record(stream)
            work(stream)
            end.record(stream)
            if blocking:
                end.synchronize()
        return CudaEvent(self, start, end)

    def enqueue_launch(self, queue, kernel, global_size, local_size, args, wait_for) -> CudaEvent:
        return self.launch(kernel, global_size, local_size, args, queue=queue, wait_for=wait_for)

    def enqueue_write(self, queue, buffer, host, wait_for, blocking) -> CudaEvent:
        # asynchronous for page-locked host memory (pinned_empty); the driver copies pageable memory at once
        return self._timed("copying to the device", queue, wait_for, blocking,
                           lambda stream: driver().memcpy_htod_async(buffer.allocation, host, stream))

    def enqueue_read(self, queue, buffer, host, wait_for, blocking) -> CudaEvent:
        return self._timed("copying from the device", queue, wait_for, blocking,
                           lambda stream: driver().memcpy_dtoh_async(host, buffer.allocation, stream))

    def enqueue_copy(self, queue, dst, src, nbytes, wait_for) -> CudaEvent:
        return self._timed("copying on the device", queue, wait_for, False,
                           lambda stream: driver().memcpy_dtod_async(dst.allocation, src.allocation, nbytes, stream))

    def marker(self, queue) -> CudaEvent:
        with self.active("recording an event"):
            event = self._event()
            event.record(self._on(queue, ()))
        return CudaEvent(self, event, event)

    def allocate_host(self, nbytes: int) -> Any:
        """Page-locked host memory (cuMemHostAlloc): the copies that use it run asynchronously."""
        with self.active("allocating page-locked host memory", nbytes):
            return driver().pagelocked_empty((max(nbytes, 1),), np.uint8)

    def launch(self, kernel: CudaKernel, global_size, local_size, args, queue=None, wait_for=()) -> CudaEvent:  # type: ignore[override]  # handed only this backend's own objects
        grid = tuple(g // ls for g, ls in zip(global_size, local_size))
        for i, (n, limit) in enumerate(zip(grid, self.max_grid)):
            if n > limit:
                raise LaunchError(
                    f"{self._id}: launching {kernel.name} needs {n} blocks in dimension {i}, more than the "
                    f"{limit} CUDA allows there: put the long dimension first (global_size[0])"
                )
        block = tuple(local_size) + (1,) * (3 - len(local_size))
        grid3 = grid + (1,) * (3 - len(grid))
        values, shared = [], 0
        for a in args:
            if isinstance(a, LocalMemory):  # a LOCAL_MEM_DYNAMIC array: its offset in the dynamic shared memory
                values.append(np.uint32(shared))
                shared += -(-a.nbytes // LOCAL_ALIGN) * LOCAL_ALIGN
            else:
                values.append(a.arg if isinstance(a, CudaBuffer) else a)
        what = f"launching {kernel.name} grid {grid3} block {block}" + (f" with {shared} bytes of shared memory"
                                                                         if shared else "")
        with self.active(what):
            stream = self._on(queue, wait_for)
            start, end = self._event(), self._event()
            start.record(stream)
            kernel.function(*values, block=block, grid=grid3, stream=stream, shared=shared)
            end.record(stream)
        return CudaEvent(self, start, end)

    def synchronize(self) -> None:
        with self.active("synchronizing"):
            self.stream.synchronize()
            for other in list(self._streams):
                other.stream.synchronize()

    # exchange with other libraries (_shared.py)
    def dlpack_device(self) -> tuple[int, int] | None:
        return (KDL_CUDA, self.ordinal)

    def buffer_pointer(self, buffer: CudaBuffer) -> int:  # type: ignore[override]  # handed only this backend's own objects
        return int(buffer.allocation)

    def wrap_memory(self, pointer: int, nbytes: int, owner: Any) -> CudaBuffer:
        return CudaBuffer(int(pointer), nbytes, owner)

    def ready_for(self, stream: int | None) -> None:
        # the consumer's stream runs after everything queued here so far: waiting for our stream is enough
        if stream != -1:
            self.synchronize()

    def consumer_stream(self) -> int | None:
        return int(self.stream.handle)

    def native_array(self, library: str, buffer: CudaBuffer, shape: tuple[int, ...], dtype: Any,  # type: ignore[override]  # handed only this backend's own objects
                     strides: tuple[int, ...], offset: int) -> Any:
        if library != "pycuda":
            raise NotImplementedError(library)
        with self.active("making a GPUArray"):
            return gpuarray(self, buffer.allocation, shape, dtype, strides, offset, buffer)


def device_uuid(ordinal: int) -> str:
    """The GPU's UUID (``GPU-xxxxxxxx-...``), read through cuda-bindings; '' where it cannot be read."""
    try:
        from cuda.bindings import driver as cu

        (err,) = cu.cuInit(0)
        err, dev = cu.cuDeviceGet(ordinal)
        err2, uuid = cu.cuDeviceGetUuid(dev)
        if err != cu.CUresult.CUDA_SUCCESS or err2 != cu.CUresult.CUDA_SUCCESS:
            return ""
        raw = bytes(uuid.bytes)
    except Exception:  # no cuda-bindings, no driver: the id and PCI bus id still identify the device
        return ""
    h = raw.hex()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def list_devices() -> list[CudaDevice]:
    try:
        drv = driver()
    except ImportError as exc:
        if "libcuda" in str(exc):
            raise BackendUnavailableError(f"no NVIDIA driver ({exc})") from exc
        raise BackendUnavailableError(
            f"pycuda is not installed ({exc}); on a machine with an NVIDIA GPU: pip install 'xgpu[cuda]'"
        ) from exc
    try:
        drv.init()
        count = drv.Device.count()
        version = drv.get_driver_version()
    except drv.Error as exc:
        raise BackendUnavailableError(f"no usable NVIDIA GPU: {exc}") from exc
    if not count:
        raise BackendUnavailableError("the NVIDIA driver sees no GPU")
    found = []
    for i in range(count):
        try:
            found.append(CudaDevice(i, drv.Device(i), version, device_uuid(i)))
        except (drv.Error, DeviceError):
            continue  # a GPU in a prohibited compute mode, or lost: the others are still usable
    if not found:
        raise BackendUnavailableError(f"the NVIDIA driver sees {count} GPU(s), but none could be opened")
    return found


# -- memory shared with other libraries: DLPack (kDLCUDA), pycuda's GPUArray ------------------------------
# Another library's device memory is used at its own pointer: the buffer holds the pointer (an int) and the
# object that owns the memory, so kernels and copies reach the very same bytes.

KDL_CUDA = 2


def gpuarray(device: CudaDevice, allocation: Any, shape: tuple[int, ...], dtype: Any, strides: tuple[int, ...],
             offset: int, keep: Any) -> Any:
    """A pycuda GPUArray over ``allocation`` (+ ``offset`` bytes) that keeps ``keep`` alive."""
    from pycuda import gpuarray as ga

    if any(s < 0 for s in strides):
        raise InvalidArgumentError("pycuda GPUArrays cannot have negative strides: pass a copy (a.copy()) of this view")
    data = allocation if not offset else int(allocation) + offset
    return ga.GPUArray(shape, dtype, base=keep, gpudata=data, strides=strides)


def adopt_gpuarray(obj: Any, devices: list[CudaDevice]) -> AdoptedArray | None:
    module = sys.modules.get("pycuda.gpuarray")
    if module is None or not isinstance(obj, module.GPUArray):
        return None
    if not devices:
        return AdoptedArray(None, None, obj.shape, obj.dtype, obj.strides, 0, host=obj.get())
    current = driver().Context.get_current()
    owner = next((d for d in devices if current is not None and current.get_device() == d.dev), devices[0])
    if any(s < 0 for s in obj.strides):
        return AdoptedArray(None, None, obj.shape, obj.dtype, obj.strides, 0, host=obj.get())
    nbytes = sum((n - 1) * s for n, s in zip(obj.shape, obj.strides)) + obj.dtype.itemsize if obj.size else 0
    return AdoptedArray(owner, CudaBuffer(int(obj.gpudata), nbytes, owner=obj), obj.shape, obj.dtype, obj.strides, 0)
