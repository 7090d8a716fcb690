"""The backend contract: everything a backend plugin implements, and nothing else.

The core talks to a driver only through these classes; it never imports a driver and never
branches on a backend's name. A backend plugin provides:

* a :class:`Backend` (registered from the ``xgpu_register_backends`` hook) that lists devices,
  or raises :class:`~xgpu.errors.BackendUnavailableError` saying why it cannot;
* per device, a :class:`DeviceImpl` that allocates and copies memory, compiles source in the
  backend's language and launches kernels;
* a prelude: source text that defines every word of :data:`xgpu.template.REQUIRED_WORDS` for
  the backend's language, so one neutral template renders for any backend.

Vocabulary: a *work-group* (OpenCL) is a *block* (CUDA); a *work-item* is a *thread*; *local
memory* is *shared memory*.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AdoptedArray",
    "Backend",
    "BufferImpl",
    "DeviceImpl",
    "Diagnostic",
    "DeviceInfo",
    "EventImpl",
    "KernelImpl",
    "LocalMemory",
    "OfflineBuild",
    "ProgramImpl",
    "QueueImpl",
]


@dataclass(frozen=True)
class DeviceInfo:
    """What a backend knows of one device. ``local_id`` is the part of the id after ``backend:``."""

    local_id: str
    name: str
    vendor: str
    platform: str
    type: str  # "gpu", "cpu" or "accelerator"
    driver_version: str
    compute_units: int
    clock_mhz: int
    global_mem_bytes: int
    local_mem_bytes: int
    max_work_group_size: int
    max_work_item_sizes: tuple[int, ...] = (1024, 1024, 64)
    fp64: bool = False
    fp16_storage: bool = True
    fp16_arithmetic: bool = False
    is_simulator: bool = False
    #: Other names a device spec may use for it (``pocl`` for "Portable Computing Language").
    aliases: tuple[str, ...] = ()
    #: Identity beyond the name (UUID, PCI id, compute capability, ...): shown and used in cache keys.
    extra: dict[str, Any] = field(default_factory=dict)
    #: The device checks memory accesses as it runs (a simulator): after each launch the core waits
    #: for the kernel and asks :meth:`DeviceImpl.take_diagnostics` what it found.
    checks_memory: bool = False
    #: How the device does each operation that may be native or emulated: ``{"atomic:float32:add":
    #: "native" or "emulated"}``; an operation missing here is one it cannot do (see
    #: :func:`xgpu.template.atomic_features`). ``device.supports("atomic:float32:add")`` reads it.
    features: dict[str, str] = field(default_factory=dict)
    #: The subgroup (warp) sizes the device runs natively and a kernel may ask for (``subgroup_size=``);
    #: empty where it has no native subgroups (then they are emulated through local memory).
    subgroup_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class LocalMemory:
    """A launch argument standing for one ``LOCAL_MEM_DYNAMIC`` array of ``nbytes`` (a hidden kernel
    parameter, in the kernel's parameter order). OpenCL passes it as a ``__local`` pointer argument of that
    size; CUDA carves the kernel's arrays from the block's dynamic shared memory, passing each one's offset
    (a multiple of :data:`LOCAL_ALIGN` bytes) and asking the launch for the total."""

    name: str
    nbytes: int


#: The alignment of each launch-sized local array within the block's dynamic shared memory (CUDA).
LOCAL_ALIGN = 16


@dataclass(frozen=True)
class Diagnostic:
    """One problem a checking device saw while running a kernel (out-of-bounds access, data race,
    uninitialized value). ``line`` is the line it blames in ``file``, the name a ``#line`` directive
    gave (a template), or in the compiled source when ``file`` is None; None if unknown."""

    kind: str  # the report's first line: "Invalid write of size 4 at global memory address 0x..."
    kernel: str
    line: int | None
    text: str  # the whole report, as the checker wrote it
    file: str | None = None


class BufferImpl(abc.ABC):
    """A block of device memory, ``nbytes`` long (a backend may allocate at least one byte)."""

    nbytes: int

    def usable(self) -> bool:
        """False once the backend has freed the memory in a finalizer of its own. The garbage collector
        finalizes a reference cycle's objects in any order, so a buffer's can run before that of the pool
        block that holds it; the pool then drops the buffer instead of handing it out again."""
        return True


class EventImpl(abc.ABC):
    """A finished or running piece of device work."""

    @abc.abstractmethod
    def wait(self) -> None: ...

    @abc.abstractmethod
    def elapsed_s(self) -> float:
        """Device time between the work's start and end, in seconds (waits for it first)."""

    def done(self) -> bool:
        """Whether the work has ended, without blocking (False where a backend cannot tell)."""
        return False

    def usable(self) -> bool:
        """False once a finalizer of the backend's own has let go of what it waits on (see
        BufferImpl.usable): a pooled buffer whose last work is such an event is dropped, not reused."""
        return True

    def times_ns(self) -> tuple[int, int] | None:
        """When the work started and ended on the device's clock, in nanoseconds (waits for it first);
        None where the backend has no such clock. Comparable between queues of one device."""
        return None


class QueueImpl(abc.ABC):
    """A queue (OpenCL) / stream (CUDA) of one device beside its default one: work on it runs in order,
    and in no order against the device's other queues unless an event says so (``wait_for``)."""

    @abc.abstractmethod
    def finish(self) -> None:
        """Wait for all work queued on this queue."""


class KernelImpl(abc.ABC):
    """One compiled kernel function."""

    name: str

    @abc.abstractmethod
    def max_work_group_size(self) -> int:
        """The largest work-group (block) this compiled kernel can be launched with on its device."""

    def static_local_mem_bytes(self) -> int:
        """Local (shared) memory the compiled kernel declares itself, beyond launch-sized arrays (0: unknown)."""
        return 0


class ProgramImpl(abc.ABC):
    """A compiled program: the result of :meth:`DeviceImpl.compile`."""

    #: The compiler's log (warnings), empty when it had nothing to say.
    log: str = ""

    @abc.abstractmethod
    def kernel(self, name: str) -> KernelImpl:
        """Return the kernel called ``name``; raise ``KeyError`` if there is none."""


class DeviceImpl(abc.ABC):
    """One device of a backend. Every method translates driver errors into :mod:`xgpu.errors`.

    Work on a device's default queue runs in the order it was submitted (an in-order queue or stream);
    the ``queue=None`` of the optional ``enqueue_*`` methods below means that queue. A backend that can
    make more queues implements :meth:`new_queue` and the ``enqueue_*`` methods; the defaults serve a
    backend with one queue (they wait on the host for ``wait_for`` and call the blocking methods), so a
    plugin written against the one-queue contract keeps working.
    """

    info: DeviceInfo

    @abc.abstractmethod
    def allocate(self, nbytes: int) -> BufferImpl: ...

    @abc.abstractmethod
    def write(self, buffer: BufferImpl, host: Any) -> None:
        """Copy the C-contiguous numpy array ``host`` into ``buffer`` (blocking)."""

    @abc.abstractmethod
    def read(self, buffer: BufferImpl, host: Any) -> None:
        """Copy ``buffer`` into the C-contiguous numpy array ``host`` (blocking)."""

    @abc.abstractmethod
    def copy(self, dst: BufferImpl, src: BufferImpl, nbytes: int) -> None:
        """Copy ``nbytes`` from ``src`` to ``dst`` on the device."""

    @abc.abstractmethod
    def compile(self, source: str, options: tuple[str, ...]) -> ProgramImpl:
        """Compile full source (prelude included) or raise :class:`~xgpu.errors.CompileError`."""

    @abc.abstractmethod
    def launch(
        self,
        kernel: KernelImpl,
        global_size: tuple[int, ...],
        local_size: tuple[int, ...],
        args: list[Any],
    ) -> EventImpl:
        """Launch ``kernel``. ``global_size`` is a multiple of ``local_size`` in every dimension.

        ``args`` holds :class:`BufferImpl` objects, numpy scalars and :class:`LocalMemory` objects (the
        hidden parameters of launch-sized local arrays), in the kernel's order.
        """

    @abc.abstractmethod
    def synchronize(self) -> None:
        """Wait for all work queued on this device."""

    # Optional: several queues (streams) per device, events between them, non-blocking copies. ``queue``
    # is a QueueImpl from new_queue() or None (the default queue); ``wait_for`` holds EventImpls of this
    # device (the core waits on the host for other devices' events first). A None result is work that
    # has ended already.
    def new_queue(self) -> QueueImpl:
        """A new in-order queue (stream) on this device."""
        raise NotImplementedError

    def enqueue_launch(self, queue: QueueImpl | None, kernel: KernelImpl, global_size: tuple[int, ...],
                       local_size: tuple[int, ...], args: list[Any], wait_for: Sequence[EventImpl]) -> EventImpl:
        """:meth:`launch` on ``queue``, after the work of ``wait_for``."""
        _one_queue(queue, wait_for)
        return self.launch(kernel, global_size, local_size, args)

    def enqueue_write(self, queue: QueueImpl | None, buffer: BufferImpl, host: Any, wait_for: Sequence[EventImpl],
                      blocking: bool) -> EventImpl | None:
        """Copy the C-contiguous array ``host`` into ``buffer``; returns at once unless ``blocking`` (the
        core keeps ``host`` alive until the event ends)."""
        _one_queue(queue, wait_for)
        self.write(buffer, host)
        return None

    def enqueue_read(self, queue: QueueImpl | None, buffer: BufferImpl, host: Any, wait_for: Sequence[EventImpl],
                     blocking: bool) -> EventImpl | None:
        """Copy ``buffer`` into the C-contiguous array ``host``; returns at once unless ``blocking``."""
        _one_queue(queue, wait_for)
        self.read(buffer, host)
        return None

    def enqueue_copy(self, queue: QueueImpl | None, dst: BufferImpl, src: BufferImpl, nbytes: int,
                     wait_for: Sequence[EventImpl]) -> EventImpl | None:
        """:meth:`copy` on ``queue``, after the work of ``wait_for``."""
        _one_queue(queue, wait_for)
        self.copy(dst, src, nbytes)
        return None

    def marker(self, queue: QueueImpl | None) -> EventImpl | None:
        """An event that ends when all the work queued on ``queue`` so far has ended."""
        if queue is None:
            self.synchronize()
            return None
        raise NotImplementedError

    def allocate_host(self, nbytes: int) -> Any:
        """A 1-D numpy uint8 array of ``nbytes`` in host memory the device copies to and from fastest (page-
        locked, or the device's host-visible memory); it keeps that memory alive. Default: plain memory."""
        import numpy as np

        return np.empty(nbytes, np.uint8)

    # Optional: the on-disk compile cache uses these where a backend provides them.
    def program_binary(self, program: ProgramImpl) -> bytes | None:
        """The compiled binary of ``program``, to cache on disk; None where there is none."""
        return None

    def load_binary(self, binary: bytes, options: tuple[str, ...]) -> ProgramImpl:
        """A program from a binary that ``program_binary`` gave (raise if it cannot be loaded)."""
        raise NotImplementedError

    # Optional: devices with ``info.checks_memory`` report what they found here.
    def take_diagnostics(self) -> list[Diagnostic]:
        """The problems reported since the last call (the work launched has finished)."""
        return []

    # Optional: exchange with other libraries without a copy (docs/interop.md). A backend that leaves
    # these as they are exchanges through host copies.
    def dlpack_device(self) -> tuple[int, int] | None:
        """The DLPack ``(device_type, device_id)`` under which this device's buffers are shared in place:
        ``(1, 0)`` (kDLCPU) where the host may read and write them while kernels use them too (fine-grain
        SVM on a CPU device), ``(2, ordinal)`` (kDLCUDA) for CUDA memory; None where only a copy can leave."""
        return None

    def buffer_pointer(self, buffer: BufferImpl) -> int:
        """The address of ``buffer``'s first byte in the address space :meth:`dlpack_device` names."""
        raise NotImplementedError

    def wrap_memory(self, pointer: int, nbytes: int, owner: Any) -> BufferImpl | None:
        """A buffer over ``nbytes`` of another library's memory at ``pointer`` (in the address space
        :meth:`dlpack_device` names), keeping ``owner`` alive while it lives; None where the device cannot
        use that memory in place (the core copies instead)."""
        return None

    def ready_for(self, stream: int | None) -> None:
        """Make the work queued so far visible to a consumer on ``stream`` (a CUDA stream handle; -1: the
        consumer synchronizes itself; None: the host). By default: wait for all of it."""
        self.synchronize()

    def consumer_stream(self) -> int | None:
        """The stream handle to pass a DLPack producer (``__dlpack__(stream=...)``); None on host devices."""
        return None

    def native_array(self, library: str, buffer: BufferImpl, shape: tuple[int, ...], dtype: Any,
                     strides: tuple[int, ...], offset: int) -> Any:
        """The buffer as an array object of the driver's Python library (``"pyopencl"``: a
        ``pyopencl.array.Array``, ``"pycuda"``: a ``GPUArray``), sharing its memory; ``strides`` and
        ``offset`` in bytes. Raise ``NotImplementedError`` for a library this backend does not run on."""
        raise NotImplementedError


def _one_queue(queue: QueueImpl | None, wait_for: Sequence[EventImpl]) -> None:
    """The defaults' part for a backend with one queue: its work runs in order, so waiting for
    ``wait_for`` first (events of this device) keeps every dependency."""
    if queue is not None:
        raise NotImplementedError("this backend has one queue per device")
    for event in wait_for:
        event.wait()


class Backend(abc.ABC):
    """A backend plugin's entry: its name, its source language and its devices."""

    #: Name used in device ids (``name:...``) and with ``XGPU_DISABLE_PLUGINS``-style selection.
    name: str
    #: The C dialect its compiler takes: ``"opencl"`` or ``"cuda"``; picks the template prelude.
    language: str

    @abc.abstractmethod
    def prelude(self) -> str:
        """Source that defines the neutral template words for this backend's language."""

    @abc.abstractmethod
    def devices(self) -> Sequence[DeviceImpl]:
        """Every device this backend can use here.

        Raise :class:`~xgpu.errors.BackendUnavailableError` with a reason a person can act on
        (``"pyopencl is not installed: pip install pyopencl"``) when there are none.
        """

    def version(self) -> str:
        """The driver's or runtime's version, for reports."""
        return ""

    def compile_offline(self, source: str, target: str | None, options: tuple[str, ...]) -> OfflineBuild:
        """Compile full source for a named ``target`` (``sm_80``...) without a device.

        Backends whose compiler needs a device leave this as it is.
        """
        raise NotImplementedError(f"the {self.name} backend cannot compile without a device")

    # Optional: objects of the driver's own Python library (docs/interop.md).
    def adopt_array(self, obj: Any, devices: Sequence[DeviceImpl]) -> AdoptedArray | None:
        """``obj`` as memory of one of ``devices`` (this backend's devices in use) when it is an array of
        this backend's driver library living there; None when it is not such an array (the core tries
        other ways); raise :class:`~xgpu.errors.InvalidArgumentError` when it is one that cannot be shared."""
        return None

    def adopt_queue(self, queue: Any) -> DeviceImpl | None:
        """A device that runs its work on ``queue`` (the driver library's own queue or stream object) in
        its context; None when ``queue`` is not one of this backend's."""
        return None


@dataclass
class AdoptedArray:
    """Another library's array as a backend sees it (:meth:`Backend.adopt_array`): the device it lives on
    (one of those passed, or None: a context xgpu does not use), and either a buffer over its memory with
    the array's layout in bytes, or (``host``) its elements copied to a numpy array when it cannot be shared."""

    device: DeviceImpl | None
    buffer: BufferImpl | None
    shape: tuple[int, ...]
    dtype: Any
    strides: tuple[int, ...]
    offset: int
    host: Any = None


@dataclass
class OfflineBuild:
    """The result of :meth:`Backend.compile_offline`: the target, the compiler log, the binary,
    and per kernel the resources the assembler reports (``registers``, ``shared_bytes``, ``spill_bytes``)."""

    target: str
    log: str
    binary: bytes
    resources: dict[str, dict[str, int]] = field(default_factory=dict)
