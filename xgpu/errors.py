"""Every error xgpu raises, in one tree.

    XgpuError
    ├── DeviceNotFoundError          a device spec matched nothing (lists the devices there are)
    ├── BackendUnavailableError      a backend's driver or devices are missing (says why)
    ├── UnsupportedDtypeError        a dtype the operation or the device cannot handle   (also TypeError)
    ├── ShapeError                   shapes that do not fit together, or ranks that are wrong (also ValueError)
    ├── InvalidArgumentError         any other bad argument value                        (also ValueError)
    │   └── InteropError             an exchange that cannot be done as asked (copy=False where only a copy
    │                                works, a stream for a CPU array)                    (also BufferError)
    ├── InvalidIndexError            an index out of range, or one that is not a basic index (also IndexError)
    ├── DeviceMismatchError          arrays of one operation live on different devices   (also ValueError)
    ├── TemplateError                a kernel template could not be found or rendered (names file and line)
    ├── CompileError                 the device compiler rejected the rendered source (names template line)
    ├── LaunchError                  a kernel launch the device or kernel cannot run
    │   └── MemoryCheckError         a checking device (Oclgrind) saw a bad access or race (names template line)
    ├── KernelTimeoutError           a wait with a timeout ran out (names the kernel)  (also TimeoutError)
    ├── OutOfMemoryError             an allocation the device cannot satisfy            (also MemoryError)
    └── DeviceError                  any other failure reported by a driver (the original is chained)

Driver exceptions never reach a user: backends translate them at their boundary and chain the
original (``raise ... from exc``).
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "CompileError",
    "DeviceError",
    "DeviceMismatchError",
    "DeviceNotFoundError",
    "InvalidArgumentError",
    "InteropError",
    "InvalidIndexError",
    "KernelTimeoutError",
    "LaunchError",
    "MemoryCheckError",
    "OutOfMemoryError",
    "ShapeError",
    "TemplateError",
    "UnsupportedDtypeError",
    "XgpuError",
]


class XgpuError(Exception):
    """The root of every error xgpu raises."""


class DeviceNotFoundError(XgpuError, LookupError):
    """A device spec matched no device."""


class BackendUnavailableError(XgpuError):
    """A backend cannot be used here (driver missing, no devices...); the message says why."""


class UnsupportedDtypeError(XgpuError, TypeError):
    """A dtype that the operation or the device does not support."""


class ShapeError(XgpuError, ValueError):
    """Shapes that do not fit together, or an array of the wrong rank."""


class InvalidArgumentError(XgpuError, ValueError):
    """An argument value that cannot be used (the message says which and why)."""


class InteropError(InvalidArgumentError, BufferError):
    """An exchange with another library that cannot be done as asked (``copy=False`` where only a copy can
    work, a stream a CPU array cannot take): a BufferError, as DLPack consumers expect."""


class InvalidIndexError(XgpuError, IndexError):
    """An index out of an array's range, or one that xgpu arrays do not take (fancy or boolean indexing)."""


class DeviceMismatchError(XgpuError, ValueError):
    """Arrays of one operation live on different devices."""


class TemplateError(XgpuError):
    """A kernel template could not be loaded or rendered.

    ``filename`` and ``lineno`` name the template line where rendering failed, when known.
    """

    def __init__(self, message: str, *, filename: str | None = None, lineno: int | None = None):
        super().__init__(message)
        self.filename = filename
        self.lineno = lineno


class CompileError(XgpuError):
    """The device compiler rejected a rendered kernel.

    Carries ``backend``, ``device`` (its id), ``source`` (what the compiler saw), ``options``,
    ``log`` (the compiler's own words), and ``filename``/``lineno``: the first template line the
    log blames, found through the ``#line`` directives xgpu puts into rendered source.
    """

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        device: str,
        source: str,
        options: tuple[str, ...] | list[str],
        log: str,
        filename: str | None = None,
        lineno: int | None = None,
    ):
        super().__init__(message)
        self.backend = backend
        self.device = device
        self.source = source
        self.options = tuple(options)
        self.log = log
        self.filename = filename
        self.lineno = lineno

    def dump(self, file=None) -> None:
        """Print the whole rendered source with line numbers, then the compiler log."""
        import sys

        out = file or sys.stderr
        for i, line in enumerate(self.source.splitlines(), 1):
            print(f"{i:5d}  {line}", file=out)
        print("---- compiler log ----", file=out)
        print(self.log, file=out)


class LaunchError(XgpuError):
    """A kernel launch that the device or the compiled kernel cannot run."""


class MemoryCheckError(LaunchError):
    """A device that checks memory (Oclgrind) saw an out-of-bounds access, a data race or a use of
    uninitialized memory while running a kernel.

    ``problems`` holds one dict per distinct problem: ``kind``, ``kernel``, ``filename``/``lineno``
    (the template line, when known), ``source_line`` (the rendered text) and ``count`` (reports of it).
    """

    def __init__(self, message: str, *, device: str, problems: list[dict]):
        super().__init__(message)
        self.device = device
        self.problems = problems


class KernelTimeoutError(XgpuError, TimeoutError):
    """``Event.wait(timeout=)`` or ``Device.synchronize(timeout=)`` ran out of time; names the kernel.

    A running kernel cannot be cancelled (OpenCL has no way to): it goes on until it ends, and work queued
    behind it on the device waits for it.
    """


class OutOfMemoryError(XgpuError, MemoryError):
    """An allocation (or launch) that the device has no memory or resources for."""


class DeviceError(XgpuError):
    """Any other failure a driver reported; the driver's exception is chained as ``__cause__``."""


class CompilerWarning(UserWarning):
    """A device compiler's warning about a kernel, once per program, naming the template line it blames
    (the whole log is ``program.build_log``). Silence with ``warnings.filterwarnings("ignore",
    category=xgpu.errors.CompilerWarning)``."""
