"""The OpenCL backend, on pyopencl: every OpenCL platform and device the ICD loader finds.

Registered through the ``xgpu`` entry-point group like any third-party plugin. pyopencl is
imported only when devices are first listed, so a missing driver makes the backend unavailable
(with the reason) instead of breaking ``import xgpu``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import stat
import sys
import tempfile
import threading
import warnings
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from xgpu.errors import (
    BackendUnavailableError,
    CompileError,
    DeviceError,
    LaunchError,
    OutOfMemoryError,
)
from xgpu.plugin import (
    AdoptedArray,
    Backend,
    BufferImpl,
    DeviceImpl,
    DeviceInfo,
    Diagnostic,
    EventImpl,
    KernelImpl,
    LocalMemory,
    OfflineBuild,
    ProgramImpl,
    QueueImpl,
    cache_dir,
    hookimpl,
)
from xgpu.template import atomic_features

from . import _shared
from ._icd import ensure_vendor_folder

_PRELUDE_FILE = Path(__file__).with_name("prelude.mako")
_SIMULATORS = ("oclgrind",)
# Mesa's llvmpipe (under rusticl) is a GPU driver run in software, a few GF/s: like a simulator it is never
# the default device and gets small sizes in tests and the parity matrix, but it checks nothing
_SOFTWARE_GPUS = ("llvmpipe",)
# short names people use for platforms whose full names do not contain them
_PLATFORM_ALIASES = {"portable computing language": ("pocl",), "clover": ("mesa",), "rusticl": ("mesa",)}


#: What Oclgrind checks: ``1`` (the default) out-of-bounds accesses and data races; ``all`` adds
#: reads of uninitialized memory (off by default: Oclgrind 21.10's checker for those aborts on LLVM's
#: ``freeze``, so kernels are then built with ``-cl-opt-disable``, and even so it reports control flow
#: on uninitialized values at the implicit-GEMM kernel's FMA line, with no wrong output behind it);
#: ``0`` runs Oclgrind without checks.
CHECKS_ENV = "XGPU_OCLGRIND_CHECKS"


def _checks_wanted() -> str:
    value = os.environ.get(CHECKS_ENV, "1").strip().lower()
    return "" if value in ("0", "no", "off", "false") else "all" if value == "all" else "1"


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


#: set beside OCLGRIND_LOG when xgpu made the file: "pid:path", the process it belongs to
_LOG_OWNER_ENV = "XGPU_OCLGRIND_LOG_PID"


def _arm_oclgrind() -> str | None:
    """Ask Oclgrind (which reads these when a context is created) to check for races (and, asked,
    uninitialized values) and to write its reports to a file of this process's; return the file."""
    path = os.environ.get("OCLGRIND_LOG")
    owner_pid, _, owner_path = os.environ.get(_LOG_OWNER_ENV, "").partition(":")
    if path and owner_path == path and owner_pid != str(os.getpid()):
        # the private file of the process that started this one (pytest-xdist's workers, Dask's): reports
        # of two processes in one file would each be taken by whichever launch reads it first, and each
        # context Oclgrind makes empties the file
        os.environ.pop("OCLGRIND_LOG")
        path = None
    level = _checks_wanted()
    if not level:
        return None
    if path:
        problem = _unwritable(path)
        if not problem:
            return _arm_checks(level, path)
        # Oclgrind would drop its reports silently while the device claims to check memory: xgpu owns the log
        warnings.warn(f"OCLGRIND_LOG={path!r} cannot be written ({problem}): Oclgrind's reports go to a "
                      "private file of this process instead", RuntimeWarning, stacklevel=3)
    try:
        fd, path = tempfile.mkstemp(prefix="xgpu-oclgrind-", suffix=".log")
    except OSError as exc:
        warnings.warn(f"no file for Oclgrind's reports ({exc}): its memory and race checks are off in this process",
                      RuntimeWarning, stacklevel=3)
        os.environ.pop("OCLGRIND_LOG", None)
        return None
    os.close(fd)
    os.environ["OCLGRIND_LOG"] = path
    os.environ[_LOG_OWNER_ENV] = f"{os.getpid()}:{path}"
    atexit.register(_remove, path)
    return _arm_checks(level, path)


def _unwritable(path: str) -> str | None:
    """Why Oclgrind could not append its reports to ``path`` (None: it can)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a regular file"
    finally:
        os.close(fd)
    return None


def _arm_checks(level: str, path: str) -> str:
    os.environ.setdefault("OCLGRIND_DATA_RACES", "1")
    if level == "all":
        os.environ.setdefault("OCLGRIND_UNINITIALIZED", "1")
    return path


def _pin_pocl() -> None:
    """PoCL's worker threads, free to move between cores, made its timings jump from call to call (the
    first 3x3 ResNet layer: 11-19 ms on 2 cores); pinned, one per core, they hold 11.2-12.0 ms, and a
    256^3 GEMM runs at 78-81 instead of 50-54 GF/s. PoCL reads this when it starts; a value the user
    set (POCL_AFFINITY=0 turns pinning off) is left alone."""
    os.environ.setdefault("POCL_AFFINITY", "1")


def _enable_rusticl() -> None:
    """Mesa's rusticl lists a device only for the drivers named in RUSTICL_ENABLE: on a machine without
    a GPU that is llvmpipe, Mesa's software rasteriser (OpenCL 3.0, no float64, no float16). Read when
    its ICD loads; a value the user set is left alone."""
    os.environ.setdefault("RUSTICL_ENABLE", "llvmpipe")


_AT_LINE = re.compile(r"At line (\d+) \(column \d+\) of (.+?):\s*$", re.M)
_KERNEL = re.compile(r"^\s*Kernel: (\S+)", re.M)


def parse_oclgrind_log(text: str) -> list[Diagnostic]:
    """Oclgrind's reports: blocks separated by blank lines, each headed by an unindented line."""
    found: list[Diagnostic] = []
    for block in re.split(r"\n\s*\n(?=\S)", text.strip("\n")):
        head = block.strip().splitlines()[0] if block.strip() else ""
        if not head:
            continue
        line = _AT_LINE.search(block)
        kernel = _KERNEL.search(block)
        file = line.group(2).strip() if line else None
        # the line after "At line N of FILE:" echoes source text, which is the wrong line when #line
        # directives renamed it: xgpu shows the template line itself
        kept, skip = [], False
        for ln in block.strip().splitlines():
            if not skip:
                kept.append(ln)
            skip = bool(_AT_LINE.search(ln))
        block = "\n".join(kept)
        found.append(Diagnostic(head.strip(), kernel.group(1) if kernel else "?",
                                int(line.group(1)) if line else None, block.strip(),
                                None if file in (None, "input.cl") else file))
    return found


# clang-based OpenCL compilers (PoCL's, Oclgrind's) print a count of their diagnostics to the process's
# stderr ("1 warning generated.", "2 warnings and 1 error generated."), beside the build log that already
# holds the diagnostics themselves (and reaches the user as CompileError or CompilerWarning)
_CHATTER = re.compile(r"^\d+ (?:warnings?|errors?)(?: and \d+ (?:warnings?|errors?))? generated\.\r?\n?", re.M)
_STDERR_LOCK = threading.Lock()  # the redirection is the whole process's: one build at a time under it


@contextlib.contextmanager
def quiet_compiler():
    """Hold back what a compiler prints to file descriptor 2 while a build runs; afterwards pass on all of it
    but the compiler's diagnostic counts (another thread's output in that time is delayed, not lost)."""
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            capture = tempfile.TemporaryFile()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable stderr or temporary folder: leave it alone
            yield
            return
        try:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
            capture.seek(0)
            text = capture.read()
            capture.close()
            rest = _CHATTER.sub("", text.decode(errors="replace"))
            if rest:
                with contextlib.suppress(OSError):
                    os.write(2, rest.encode(errors="replace"))


def _cl():
    import pyopencl

    return pyopencl


@contextlib.contextmanager
def translate_errors(device: str, what: str, nbytes: int | None = None):
    """Map pyopencl's exceptions to xgpu's, chaining the original."""
    cl = _cl()
    try:
        yield
    except cl.Error as exc:
        raise translated(exc, device, what, nbytes) from exc


def translated(exc: Any, device: str, what: str, nbytes: int | None = None) -> Exception:
    """The xgpu exception for pyopencl's ``exc``, raised while ``device`` was doing ``what``."""
    cl = _cl()
    code = getattr(exc, "code", None)
    status = cl.status_code
    if code in (status.MEM_OBJECT_ALLOCATION_FAILURE, status.OUT_OF_HOST_MEMORY, status.INVALID_BUFFER_SIZE) or (
        code == status.OUT_OF_RESOURCES and nbytes is not None
    ):
        size = f" of {nbytes} bytes ({nbytes / 2**20:.1f} MiB)" if nbytes is not None else ""
        return OutOfMemoryError(f"{device}: out of memory in {what}{size}: {exc}")
    if code in (status.INVALID_WORK_GROUP_SIZE, status.INVALID_WORK_ITEM_SIZE, status.OUT_OF_RESOURCES):
        return LaunchError(f"{device}: {what} failed: {exc}")
    return DeviceError(f"{device}: {what} failed: {exc}")


class OpenCLBuffer(BufferImpl):
    def __init__(self, mem: Any, nbytes: int, host: Any = None):
        self.mem = mem
        self.nbytes = nbytes
        #: the same memory as a numpy array, where the host shares it (fine-grain SVM, wrapped host memory)
        self.host = host


def _host_room() -> int | None:
    """Bytes this process may still map under its address-space limit (``ulimit -v``); None: no limit.
    A CPU device's buffers are this process's memory."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError, ValueError):
        return None
    return soft - mapped - (64 << 20)  # room for the runtime's own bookkeeping


_UNSERIALISED = contextlib.nullcontext()  # reusable: entering it does nothing


class OpenCLEvent(EventImpl):
    def __init__(self, event: Any, device: str, serial: Any = _UNSERIALISED, queue: Any = None):
        self.event = event
        self.device = device
        self.serial = serial
        self.queue = queue  # the command queue it was enqueued on (flushed when another queue waits on it)

    def wait(self) -> None:
        with self.serial, translate_errors(self.device, "waiting for a kernel"):
            self.event.wait()

    def done(self) -> bool:
        """Whether the kernel has finished (or failed), without blocking."""
        cl = _cl()
        try:
            return self.event.command_execution_status <= cl.command_execution_status.COMPLETE
        except cl.Error:
            return True  # wait() reports the failure

    def elapsed_s(self) -> float:
        self.wait()
        with translate_errors(self.device, "reading profiling info"):
            return (self.event.profile.end - self.event.profile.start) * 1e-9

    def times_ns(self) -> tuple[int, int] | None:
        self.wait()
        cl = _cl()
        try:
            return int(self.event.profile.start), int(self.event.profile.end)
        except cl.Error:  # a marker, on runtimes that keep no times for one
            return None


class OpenCLQueue(QueueImpl):
    """A command queue of a device beside its default one (in-order, with profiling)."""

    def __init__(self, queue: Any, device: str, serial: Any):
        self.queue = queue
        self.device = device
        self.serial = serial

    def finish(self) -> None:
        with self.serial, translate_errors(self.device, "finishing a queue"):
            self.queue.finish()


class OpenCLKernel(KernelImpl):
    def __init__(self, kernel: Any, name: str, device: Any):
        self.kernel = kernel
        self.name = name
        self._device = device
        self.lock = threading.Lock()  # set_args + enqueue must not interleave between threads
        self.arg_dtypes: tuple[Any, ...] | None = None  # what pyopencl was last told the scalars are
        self._static_local: int | None = None

    def static_local_mem_bytes(self) -> int:
        # read before the first launch sets any __local argument's size, which the driver would count too
        if self._static_local is None:
            cl = _cl()
            try:
                self._static_local = int(self.kernel.get_work_group_info(cl.kernel_work_group_info.LOCAL_MEM_SIZE,
                                                                         self._device))
            except cl.Error:
                self._static_local = 0
        return self._static_local

    def max_work_group_size(self) -> int:
        cl = _cl()
        reported = int(self.kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, self._device))
        if any(s in self._device.name.lower() for s in _SOFTWARE_GPUS):
            # rusticl 22.3 reports 32 work-items for every kernel on llvmpipe, yet runs work-groups up to the
            # device's maximum (1024) right, barriers and local memory included (checked here with 256;
            # the GEMM and conv2d tests run every variant there); later Mesa reports llvmpipe's 1024
            return max(reported, int(self._device.max_work_group_size))
        return reported


class OpenCLProgram(ProgramImpl):
    def __init__(self, program: Any, device: Any, log: str):
        self.program = program
        self.device = device
        self.log = log

    def kernel(self, name: str) -> OpenCLKernel:
        cl = _cl()
        try:
            return OpenCLKernel(cl.Kernel(self.program, name), name, self.device)
        except cl.Error as exc:
            raise KeyError(name) from exc


def _device_type(cl: Any, dev: Any) -> str:
    if dev.type & cl.device_type.GPU:
        return "gpu"
    if dev.type & cl.device_type.CPU:
        return "cpu"
    return "accelerator"


_SUB_GROUP_SIZES_INTEL = 0x4108  # clGetDeviceInfo's CL_DEVICE_SUB_GROUP_SIZES_INTEL (no pyopencl name)


def _subgroup_sizes(dev: Any, extensions: list[str]) -> tuple[int, ...]:
    """The subgroup sizes a kernel may require on a device with ``cl_intel_required_subgroup_size``,
    read through the ICD loader pyopencl itself loaded; () where there is no such choice."""
    if "cl_intel_subgroups" not in extensions or "cl_intel_required_subgroup_size" not in extensions:
        return ()
    import ctypes

    cl = _cl()
    try:
        loader = next(iter(sorted((Path(cl.__file__).parent / ".libs").glob("libOpenCL*"))), None)
        lib = ctypes.CDLL(str(loader) if loader else "libOpenCL.so.1")
        get_info = lib.clGetDeviceInfo
        get_info.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_size_t, ctypes.c_void_p,
                             ctypes.POINTER(ctypes.c_size_t)]
        size = ctypes.c_size_t(0)
        if get_info(ctypes.c_void_p(dev.int_ptr), _SUB_GROUP_SIZES_INTEL, 0, None, ctypes.byref(size)) != 0:
            return ()
        values = (ctypes.c_size_t * (size.value // ctypes.sizeof(ctypes.c_size_t)))()
        if get_info(ctypes.c_void_p(dev.int_ptr), _SUB_GROUP_SIZES_INTEL, size, values, None) != 0:
            return ()
    except (OSError, AttributeError):
        return ()
    return tuple(sorted(int(v) for v in values))


def _amd_identity(dev: Any, extensions: list[str]) -> dict[str, Any]:
    """The PCI device id and board name AMD's driver reports (cl_amd_device_attribute_query), else nothing."""
    if "cl_amd_device_attribute_query" not in extensions:
        return {}
    cl = _cl()
    found: dict[str, Any] = {}
    for key, param in (("pci_device_id", "PCIE_ID_AMD"), ("board_name", "BOARD_NAME_AMD")):
        try:
            value = dev.get_info(getattr(cl.device_info, param))
        except (AttributeError, cl.Error):  # an older driver or pyopencl without the query
            continue
        found[key] = value.strip() if isinstance(value, str) else int(value)
    return found


def _atomics(extensions: list[str], fp64: bool) -> dict[str, str]:
    """What prelude.mako compiles each atomic to on a device with these extensions (the same tests)."""
    base = "cl_khr_int64_base_atomics" in extensions
    extended = "cl_khr_int64_extended_atomics" in extensions

    def how(dtype: str, op: str) -> str | None:
        if dtype in ("int32", "uint32"):
            return "native"  # OpenCL 1.1 core, global and local
        if dtype in ("int64", "uint64"):
            if not base:
                return None
            return "native" if op in ("add", "sub", "xchg", "cas") or extended else "emulated"
        if dtype == "float32":
            return "native" if op in ("xchg", "cas") else "emulated"
        if not (fp64 and base):  # float64: through 64-bit compare-and-swap
            return None
        return "native" if op == "cas" else "emulated"

    table = atomic_features(how)
    if "cl_intel_subgroups" in extensions:  # what prelude.mako uses; elsewhere one work-item per subgroup
        table["subgroups"] = "native"
    return table


#: Oclgrind's report log -> how far this process has read it; the lock that guards it, and the one that
#: serialises every call that may run Oclgrind's queue
_LOG_READ: dict[str, int] = {}
#: base log -> how many contexts xgpu has made over Oclgrind with reports beside it, in this process
_LOG_CONTEXTS: dict[str, int] = {}
_LOG_LOCK = threading.Lock()
_OCLGRIND_SERIAL = threading.RLock()


def _context_with_own_log(cl: Any, dev: Any, base: str) -> tuple[Any, str]:
    """A new context over Oclgrind and the report file that is its alone.

    Oclgrind opens ``OCLGRIND_LOG`` afresh, truncating it, for every context it makes, and each context
    then writes at its own offset: with two contexts over one file (the device list read again, or a
    context that other code made with pyopencl), one context's reports landed where this process had
    already read to, or were read from their middle. So every context xgpu makes writes to a file of its
    own beside ``base`` (``base.1``, ``base.2``...; removed at exit when ``base`` is xgpu's own), and
    ``base`` is left to the contexts that other code makes."""
    with _LOG_LOCK:
        n = _LOG_CONTEXTS.get(base, 0) + 1
        _LOG_CONTEXTS[base] = n
        path = f"{base}.{n}"
        ours = os.environ.get(_LOG_OWNER_ENV, "") == f"{os.getpid()}:{base}"
        if not ours and _unwritable(path):  # beside a file of the user's, in a folder this process cannot write
            fd, path = tempfile.mkstemp(prefix="xgpu-oclgrind-", suffix=".log")
            os.close(fd)
            ours = True
        if ours:
            atexit.register(_remove, path)
        os.environ["OCLGRIND_LOG"] = path
        try:
            context = cl.Context([dev])
        finally:
            os.environ["OCLGRIND_LOG"] = base
        _LOG_READ[path] = 0  # the context's logger has just emptied it
    return context, path


class OpenCLDevice(DeviceImpl):
    def __init__(self, platform_index: int, device_index: int, platform: Any, dev: Any, log: str | None,
                 context: Any = None, queue: Any = None, local_id: str | None = None):
        cl = _cl()
        self.dev = dev
        extensions = dev.extensions.split()
        name = dev.name.strip()
        simulator = any(s in (name + platform.name).lower() for s in _SIMULATORS)
        # Oclgrind writes what it finds to the log file: read from where the last launch left off
        self._log = log if simulator else None
        # Oclgrind runs a queue's kernels in whichever thread waits on it, and two at once abort the process
        # (an assertion in its Context): every call that may run the queue holds this lock there
        # (one lock for every device object over Oclgrind: a device list read again, or a queue handed over
        # from pyopencl, makes another object for the same simulator)
        self.serial: Any = _OCLGRIND_SERIAL if "oclgrind" in (name + platform.name).lower() else _UNSERIALISED
        if self._log and context is None:
            context, self._log = _context_with_own_log(cl, dev, self._log)
        elif self._log:  # a context made elsewhere (Device.from_pyopencl): its reports go where OCLGRIND_LOG said
            with _LOG_LOCK:  # where this process has read the log to: shared by every object over it
                _LOG_READ.setdefault(self._log, os.path.getsize(self._log) if os.path.exists(self._log) else 0)
        uninit = self._log is not None and os.environ.get("OCLGRIND_UNINITIALIZED", "0") not in ("", "0")
        self._extra_options: tuple[str, ...] = ("-cl-opt-disable",) if uninit else ()
        self.info = DeviceInfo(
            local_id=local_id or f"{platform_index}:{device_index}",
            name=name,
            vendor=dev.vendor.strip(),
            platform=platform.name.strip(),
            type=_device_type(cl, dev),
            driver_version=dev.driver_version.strip(),
            compute_units=int(dev.max_compute_units),
            clock_mhz=int(dev.max_clock_frequency),
            global_mem_bytes=int(dev.global_mem_size),
            local_mem_bytes=int(dev.local_mem_size),
            max_work_group_size=int(dev.max_work_group_size),
            max_work_item_sizes=tuple(int(s) for s in dev.max_work_item_sizes),
            fp64=bool(dev.double_fp_config) or "cl_khr_fp64" in extensions,
            fp16_storage=True,  # vload_half/vstore_half are core OpenCL C
            fp16_arithmetic="cl_khr_fp16" in extensions,
            is_simulator=simulator or any(s in name.lower() for s in _SOFTWARE_GPUS),
            checks_memory=self._log is not None,
            aliases=_PLATFORM_ALIASES.get(platform.name.strip().lower(), ()),
            features=_atomics(extensions, bool(dev.double_fp_config) or "cl_khr_fp64" in extensions),
            subgroup_sizes=_subgroup_sizes(dev, extensions),
            extra={
                "opencl_version": dev.version.strip(),
                "platform_version": platform.version.strip(),
                "max_mem_alloc_bytes": int(dev.max_mem_alloc_size),
                # lanes of the native float vector (8 on AVX2, 16 on AVX-512): the device rules size
                # register blocks by it (xgpu.rules: simd-narrow)
                "native_vector_width_float": int(dev.native_vector_width_float),
                # what the device says it is and can do: the extension list (xgpu bench device picks
                # its float16 and int8 kernels by it), the PCI vendor id, and where AMD's driver reports
                # them, the PCI device id and the board's marketing name (xgpu devices --peaks matches
                # published figures by them)
                "extensions": sorted(extensions),
                "vendor_id": int(dev.vendor_id),
                **_amd_identity(dev, extensions),
                # part of the device's identity, so compile-cache keys tell such builds apart
                **({"build_options": " ".join(self._extra_options)} if self._extra_options else {}),
            },
        )
        self._id = f"opencl:{self.info.local_id}"
        # one context per device per process, kept for as long as its queue and buffers live (or the context
        # and queue of pyopencl code that handed them over: Device.from_pyopencl)
        self.context = context if context is not None else cl.Context([dev])
        self.queue = queue if queue is not None else cl.CommandQueue(
            self.context, dev, properties=cl.command_queue_properties.PROFILING_ENABLE
        )
        self.shares_host = _shared.shares_host_memory(dev, self.info.type)
        self._queues: weakref.WeakSet[OpenCLQueue] = weakref.WeakSet()  # the others: synchronize() ends them too

    def allocate(self, nbytes: int) -> OpenCLBuffer:
        cl = _cl()
        limit = self.info.extra["max_mem_alloc_bytes"]
        if nbytes > limit:
            raise OutOfMemoryError(
                f"{self._id}: cannot allocate {nbytes} bytes ({nbytes / 2**20:.1f} MiB): one buffer may hold "
                f"at most {limit} bytes ({limit / 2**20:.1f} MiB) on {self.info.name}"
            )
        if self.info.type == "cpu":
            room = _host_room()
            if room is not None and nbytes > room:
                # PoCL allocates at first use and aborts the process there: refuse what cannot fit first
                raise OutOfMemoryError(
                    f"{self._id}: cannot allocate {nbytes} bytes ({nbytes / 2**20:.1f} MiB): this process may map "
                    f"only {max(room, 0) / 2**20:.1f} MiB more (its address-space limit, ulimit -v); free arrays, "
                    "use smaller ones, or raise the limit"
                )
        with self.serial, translate_errors(self._id, "allocating memory", nbytes):
            if self.shares_host:  # fine-grain SVM: host memory too (_shared.py)
                return _svm_buffer(self.context, self.queue, nbytes)
            mem = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, max(nbytes, 1))
        return OpenCLBuffer(mem, nbytes)

    def write(self, buffer: OpenCLBuffer, host: Any) -> None:  # type: ignore[override]  # handed only this backend's own objects
        if buffer.host is not None and host.flags.c_contiguous:  # memory the host shares: copied here
            with self.serial, translate_errors(self._id, "waiting for the queue before a copy to the device"):
                self.queue.finish()  # what the queue does with the buffer before this write
            np.copyto(buffer.host[:host.nbytes], host.reshape(-1).view(np.uint8))
            return
        with self.serial, translate_errors(self._id, "copying to the device"):
            _cl().enqueue_copy(self.queue, buffer.mem, host, is_blocking=True)

    def read(self, buffer: OpenCLBuffer, host: Any) -> None:  # type: ignore[override]  # handed only this backend's own objects
        if buffer.host is not None and host.flags.c_contiguous:
            # memory the host shares: the queue's work finished, numpy copies it (128 MiB: 33-40 ms against
            # the runtime's 52-66 on Intel's, which a GEMM timed with its result's download paid for)
            with self.serial, translate_errors(self._id, "waiting for the queue before a copy from the device"):
                self.queue.finish()
            np.copyto(host.reshape(-1).view(np.uint8), buffer.host[:host.nbytes])
            return
        with self.serial, translate_errors(self._id, "copying from the device"):
            _cl().enqueue_copy(self.queue, host, buffer.mem, is_blocking=True)

    def copy(self, dst: OpenCLBuffer, src: OpenCLBuffer, nbytes: int) -> OpenCLEvent:  # type: ignore[override]  # handed only this backend's own objects
        with self.serial, translate_errors(self._id, "copying on the device"):
            event = _cl().enqueue_copy(self.queue, dst.mem, src.mem, byte_count=nbytes)
        return OpenCLEvent(event, self._id, self.serial, self.queue)  # the pool orders other queues' reuse after it

    # -- several queues ------------------------------------------------------------------------------

    def new_queue(self) -> OpenCLQueue:
        cl = _cl()
        with self.serial, translate_errors(self._id, "creating a command queue"):
            queue = cl.CommandQueue(self.context, self.dev, properties=cl.command_queue_properties.PROFILING_ENABLE)
        made = OpenCLQueue(queue, self._id, self.serial)
        self._queues.add(made)
        return made

    def _on(self, queue: Any) -> Any:
        return self.queue if queue is None else queue.queue

    def _events(self, wait_for: Any) -> list[Any] | None:
        # OpenCL runs an event's command only once its queue is flushed: one queue waiting on another's event
        # that nothing flushes waits for ever (rusticl does; the specification asks for clFlush)
        for e in wait_for:
            if e.queue is not None:
                with translate_errors(self._id, "flushing a queue"):
                    e.queue.flush()
        return [e.event for e in wait_for] or None

    def enqueue_launch(self, queue, kernel, global_size, local_size, args, wait_for) -> OpenCLEvent:
        return self.launch(kernel, global_size, local_size, args, queue=queue, wait_for=wait_for)

    def enqueue_write(self, queue, buffer, host, wait_for, blocking) -> OpenCLEvent:
        with self.serial, translate_errors(self._id, "copying to the device"):
            event = _cl().enqueue_copy(self._on(queue), buffer.mem, host, is_blocking=blocking,
                                       wait_for=self._events(wait_for))
        return OpenCLEvent(event, self._id, self.serial, self._on(queue))

    def enqueue_read(self, queue, buffer, host, wait_for, blocking) -> OpenCLEvent:
        with self.serial, translate_errors(self._id, "copying from the device"):
            event = _cl().enqueue_copy(self._on(queue), host, buffer.mem, is_blocking=blocking,
                                       wait_for=self._events(wait_for))
        return OpenCLEvent(event, self._id, self.serial, self._on(queue))

    def enqueue_copy(self, queue, dst, src, nbytes, wait_for) -> OpenCLEvent:
        with self.serial, translate_errors(self._id, "copying on the device"):
            event = _cl().enqueue_copy(self._on(queue), dst.mem, src.mem, byte_count=nbytes,
                                       wait_for=self._events(wait_for))
        return OpenCLEvent(event, self._id, self.serial, self._on(queue))

    def marker(self, queue) -> OpenCLEvent:
        with self.serial, translate_errors(self._id, "queueing a marker"):
            event = _cl().enqueue_marker(self._on(queue))
        return OpenCLEvent(event, self._id, self.serial, self._on(queue))

    def allocate_host(self, nbytes: int) -> Any:
        """Memory the runtime allocates for the host side (CL_MEM_ALLOC_HOST_PTR: pinned on GPU drivers), mapped
        for good: the numpy array keeps the mapping, and the mapping the buffer."""
        import numpy as np

        cl = _cl()
        with self.serial, translate_errors(self._id, "allocating host memory", nbytes):
            buf = cl.Buffer(self.context, cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR, max(nbytes, 1))
            host, _event = cl.enqueue_map_buffer(self.queue, buf, cl.map_flags.READ | cl.map_flags.WRITE, 0,
                                                 (max(nbytes, 1),), np.uint8, is_blocking=True)
        return host

    def compile(self, source: str, options: tuple[str, ...]) -> OpenCLProgram:
        cl = _cl()
        # the bare program object and its bare build: pyopencl's wrappers add their own include path, cache
        # and temp files, and a warning of any build log (the log is kept on the program instead, and its
        # warnings become xgpu's CompilerWarning), which catch_warnings() could hide only thread-unsafely
        with self.serial:
            program = cl._cl._Program(self.context, source)
            return self._build(program, source, options)

    def _build(self, program: Any, source: str, options: tuple[str, ...]) -> OpenCLProgram:
        cl = _cl()
        try:
            with quiet_compiler():
                program._build(options=" ".join(options + self._extra_options).encode(), devices=[self.dev])
        except cl.Error as exc:
            log = ""
            with contextlib.suppress(cl.Error):
                log = program.get_build_info(self.dev, cl.program_build_info.LOG).strip()
            raise CompileError(
                f"{self._id}: build failed",
                backend="opencl",
                device=self._id,
                source=source,
                options=options,
                log=log or str(exc),
            ) from exc
        log = ""
        with contextlib.suppress(cl.Error):
            log = program.get_build_info(self.dev, cl.program_build_info.LOG).strip()
        return OpenCLProgram(program, self.dev, log)

    def program_binary(self, program: OpenCLProgram) -> bytes | None:  # type: ignore[override]  # handed only this backend's own objects
        cl = _cl()
        try:
            binaries = program.program.get_info(cl.program_info.BINARIES)
        except cl.Error:
            return None
        return bytes(binaries[0]) if binaries and binaries[0] else None

    def load_binary(self, binary: bytes, options: tuple[str, ...]) -> OpenCLProgram:
        cl = _cl()
        with self.serial, translate_errors(self._id, "loading a cached program binary"):
            program = cl._cl._Program(self.context, [self.dev], [binary])
            with quiet_compiler():
                program._build(options=" ".join(options + self._extra_options).encode(), devices=[self.dev])
        return OpenCLProgram(program, self.dev, "")

    def launch(self, kernel: OpenCLKernel, global_size, local_size, args, queue=None, wait_for=()) -> OpenCLEvent:  # type: ignore[override]  # handed only this backend's own objects
        cl = _cl()
        # (a try, not translate_errors: a launch is the hot path, and a generator's context costs microseconds)
        try:
            with self.serial, kernel.lock:
                # told the scalars' types, pyopencl packs them itself: 2 us for ten arguments, against 50-85 us
                # when it works out each scalar's size through the driver (6 us a scalar, measured here)
                # scalars arrive as numpy scalars; the numpy test first: isinstance against the buffer class (an
                # abc.ABC) costs a microsecond a miss, 40-50 us a launch of the GEMM's sixteen arguments
                dtypes = tuple([a.dtype if isinstance(a, np.generic) else None for a in args])
                if dtypes != kernel.arg_dtypes:
                    kernel.kernel.set_scalar_arg_dtypes(list(dtypes))
                    kernel.arg_dtypes = dtypes
                kernel.kernel.set_args(*[a if isinstance(a, np.generic) else
                                         cl.LocalMemory(a.nbytes) if type(a) is LocalMemory else a.mem for a in args])
                target = self.queue if queue is None else queue.queue
                event = cl.enqueue_nd_range_kernel(target, kernel.kernel, global_size, local_size,
                                                   wait_for=self._events(wait_for) if wait_for else None)
        except cl.Error as exc:
            raise translated(exc, self._id, f"launching {kernel.name} {global_size}/{local_size}") from exc
        return OpenCLEvent(event, self._id, self.serial, target)

    def synchronize(self) -> None:
        with self.serial, translate_errors(self._id, "finishing the queue"):
            self.queue.finish()
            for other in list(self._queues):
                other.queue.finish()

    def take_diagnostics(self) -> list[Diagnostic]:
        if not self._log or not os.path.exists(self._log):
            return []
        with _LOG_LOCK, open(self._log, "rb") as f:
            # from where any device object last read: a report is taken once, by the launch that made it
            # (from the start again if a context made elsewhere over the same file has emptied it since)
            start = _LOG_READ.get(self._log, 0)
            f.seek(start if start <= os.fstat(f.fileno()).st_size else 0)
            text = f.read()
            _LOG_READ[self._log] = f.tell()
        # a file shared with a context made elsewhere may hold the zeros of a hole another context left
        return parse_oclgrind_log(text.replace(b"\0", b"").decode(errors="replace"))

    # exchange with other libraries (_shared.py)
    def dlpack_device(self) -> tuple[int, int] | None:
        return (_shared.KDL_CPU, 0) if self.shares_host else None

    def buffer_pointer(self, buffer: OpenCLBuffer) -> int:  # type: ignore[override]  # handed only this backend's own objects
        if buffer.host is None:
            raise NotImplementedError(f"{self._id}: this buffer is not in host memory")
        return int(buffer.host.ctypes.data)

    def wrap_memory(self, pointer: int, nbytes: int, owner: Any) -> OpenCLBuffer | None:
        if not self.shares_host:
            return None
        with self.serial, translate_errors(self._id, "wrapping host memory", nbytes):
            mem = _shared.wrap_host(self.context, pointer, nbytes)
        buffer = OpenCLBuffer(mem, nbytes, _shared.host_bytes(pointer, nbytes))
        buffer.owner = owner  # type: ignore[attr-defined]  # the other library's memory lives as long as this
        return buffer

    def native_array(self, library: str, buffer: OpenCLBuffer, shape: tuple[int, ...], dtype: Any,  # type: ignore[override]  # handed only this backend's own objects
                     strides: tuple[int, ...], offset: int) -> Any:
        if library != "pyopencl":
            raise NotImplementedError(library)
        return _shared.pyopencl_array(self, buffer.mem, shape, dtype, strides, offset)


def _svm_buffer(context: Any, queue: Any, nbytes: int) -> OpenCLBuffer:
    mem, host = _shared.allocate_svm(context, queue, nbytes)
    return OpenCLBuffer(mem, nbytes, host[:nbytes])


class OpenCLBackend(Backend):
    name = "opencl"
    language = "opencl"

    def __init__(self) -> None:
        self._prelude: str | None = None
        self._version = ""
        self._log: str | None = None

    def prelude(self) -> str:
        if self._prelude is None:
            from mako.template import Template

            self._prelude = Template(filename=str(_PRELUDE_FILE), strict_undefined=True).render()
        return self._prelude

    def version(self) -> str:
        return self._version

    def adopt_array(self, obj: Any, devices: Any) -> AdoptedArray | None:
        return _shared.adopt_pyopencl_array(obj, list(devices), OpenCLBuffer)

    def adopt_queue(self, queue: Any) -> OpenCLDevice | None:
        def make(pi: int, di: int, platform: Any, dev: Any, local_id: str) -> OpenCLDevice:
            with translate_errors(f"opencl:{local_id}", "adopting a pyopencl queue"):
                return OpenCLDevice(pi, di, platform, dev, self._log, context=queue.context, queue=queue,
                                    local_id=local_id)

        return _shared.device_for_queue(queue, make)

    def compile_offline(self, source: str, target: str | None, options: tuple[str, ...]) -> OfflineBuild:
        """AMD (``gfx90a``: clang + ROCm device libs) or Intel (``dg2``: ocloc) GPUs, with none present."""
        from .targets import compile_target

        return compile_target(source, target, options)

    def devices(self) -> list[OpenCLDevice]:
        try:
            root = cache_dir()
        except OSError:  # listing devices never depends on the cache folder: a private temporary one is used
            root = None
        ensure_vendor_folder(root)
        try:
            cl = _cl()
        except ImportError as exc:
            raise BackendUnavailableError(f"pyopencl is not installed ({exc}): pip install pyopencl") from exc
        self._version = f"pyopencl {cl.VERSION_TEXT}"
        log = self._log = _arm_oclgrind()
        _pin_pocl()
        _enable_rusticl()
        try:
            platforms = cl.get_platforms()
        except cl.Error as exc:
            raise BackendUnavailableError(
                f"no OpenCL platform found ({exc}); install one, e.g. apt-get install pocl-opencl-icd"
            ) from exc
        found: list[OpenCLDevice] = []
        for pi, platform in enumerate(platforms):
            try:
                devs = platform.get_devices()
            except cl.Error:
                continue  # a platform without devices (Mesa's Clover without a GPU, say)
            for di, dev in enumerate(devs):
                with contextlib.suppress(cl.Error):
                    found.append(OpenCLDevice(pi, di, platform, dev, log))
        if not found:
            raise BackendUnavailableError(
                "the OpenCL platforms found have no usable devices; install one, e.g. apt-get install pocl-opencl-icd"
            )
        return found


_backend = OpenCLBackend()


@hookimpl
def xgpu_register_backends(register):
    register.add_backend(_backend)


@hookimpl
def xgpu_register_targets(register):
    from .targets import register_targets

    register_targets(register)


@hookimpl
def xgpu_register_bench_peers(register):
    for name in ("clblast", "reikna"):
        register.add(name, backend="opencl", module="xgpu.backends.opencl.peers")
