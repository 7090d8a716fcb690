"""Devices: listing, selection by spec, and the default rule."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import _plugins
from ._pool import MemoryPool
from .errors import BackendUnavailableError, DeviceError, DeviceNotFoundError, InvalidArgumentError, XgpuError
from .template import BFLOAT16

if TYPE_CHECKING:
    from .backend import Backend, DeviceImpl

DEVICE_ENV = "XGPU_DEVICE"
_TYPE_RANK = {"gpu": 0, "accelerator": 1, "cpu": 2}


class Device:
    """One compute device. ``id`` (``opencl:0:1``, ``cuda:0``) names it everywhere: specs, reports, tests.

    Attributes: ``id``, ``backend``, ``name``, ``vendor``, ``platform``, ``type`` (``gpu``, ``cpu``
    or ``accelerator``), ``driver_version``, ``compute_units``, ``clock_mhz``, ``global_mem_bytes``,
    ``local_mem_bytes``, ``max_work_group_size``, ``max_work_item_sizes``, ``fp64``,
    ``fp16_storage``, ``fp16_arithmetic``, ``is_simulator``, ``checks_memory`` (every launch is
    checked for out-of-bounds accesses and races, as on Oclgrind), ``language``.
    """

    def __init__(self, backend: Backend, impl: DeviceImpl):
        info = impl.info
        self._opened_impl = impl
        self._opened_in = os.getpid()
        self._backend = backend
        self._last_kernel: str | None = None  # the last kernel launched here, named by synchronize(timeout=)
        self.id = f"{backend.name}:{info.local_id}"
        self.backend = backend.name
        self.language = backend.language
        self.name = info.name
        self.vendor = info.vendor
        self.platform = info.platform
        self.type = info.type
        self.driver_version = info.driver_version
        self.compute_units = info.compute_units
        self.clock_mhz = info.clock_mhz
        self.global_mem_bytes = info.global_mem_bytes
        self.local_mem_bytes = info.local_mem_bytes
        self.max_work_group_size = info.max_work_group_size
        self.max_work_item_sizes = info.max_work_item_sizes
        self.fp64 = info.fp64
        self.fp16_storage = info.fp16_storage
        self.fp16_arithmetic = info.fp16_arithmetic
        self.is_simulator = info.is_simulator
        self.checks_memory = info.checks_memory
        self.extra = dict(info.extra)
        self.features = dict(info.features)
        #: Native subgroup (warp) sizes a kernel may ask for with ``subgroup_size=``; () where subgroups are
        #: emulated through local memory (docs/templates.md, Subgroups).
        self.subgroup_sizes = tuple(info.subgroup_sizes)
        self.aliases = info.aliases
        self._pool = MemoryPool(impl, info.global_mem_bytes)
        self._programs: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._programs_lock = threading.Lock()
        from ._queue import InFlight, Queue

        self._in_flight = InFlight()  # host memory of non-blocking copies, kept until they end
        self._queues_made = 0
        #: The queue (OpenCL) / stream (CUDA) every call uses when none is named.
        self.default_queue = Queue(self, None, 0)

    def queue(self) -> Any:
        """A new in-order queue (OpenCL) / stream (CUDA) on this device: work on it runs in order, and in no
        order against the device's other queues unless ``wait_for=`` says so (docs/multidevice.md)."""
        from ._queue import Queue

        try:
            impl = self._impl.new_queue()
        except NotImplementedError:
            raise BackendUnavailableError(
                f"the {self.backend} backend has one queue per device ({self.id}); work there runs in order on "
                "device.default_queue"
            ) from None
        self._queues_made += 1
        return Queue(self, impl, self._queues_made)

    def _forget_finished(self, everything: bool = False) -> None:
        self._in_flight.forget_finished(everything)

    #: ``Device.from_pyopencl(queue)``: the device of a ``pyopencl.CommandQueue`` you made, in its context;
    #: xgpu queues its work there, so pyopencl's and xgpu's work on shared buffers runs in order
    #: (docs/interop.md). Set by ``xgpu._interop``, which builds on this module.
    from_pyopencl: ClassVar[Callable[[Any], Device]]

    def __repr__(self) -> str:
        return f"<xgpu.Device {self.id} {self.name!r} ({self.platform})>"

    def __str__(self) -> str:
        return self.id

    def supports(self, dtype: Any, *, arithmetic: bool = False) -> bool | str:
        """Can kernels on this device use ``dtype``?

        For ``float16``: every device can store it (load/store through float, as the library's
        kernels do); ``arithmetic=True`` asks whether the device computes in half precision too
        (``cl_khr_fp16``, CUDA sm_53+). bfloat16 (``xgpu.bfloat16``): stored on every device, computed in
        float32 everywhere (``arithmetic=True`` is False).
        An operation such as ``"atomic:float32:add"`` (``atomic:<dtype>:<add|sub|min|max|and|or|xor|
        xchg|cas>``) answers ``"native"``, ``"emulated"`` (a compare-and-swap loop) or False;
        ``"subgroups"`` answers ``"native"`` or False (then the subgroup words are emulated through local
        memory).
        """
        if isinstance(dtype, str) and (dtype.startswith("atomic:") or dtype == "subgroups"):
            return self.features.get(dtype, False)
        try:
            dt = np.dtype(dtype)
        except TypeError:
            return False
        if dt == np.float64:
            return self.fp64
        if dt == np.float16:
            return self.fp16_arithmetic if arithmetic else self.fp16_storage
        if dt == BFLOAT16:  # integer conversions on every device; its arithmetic is float32's
            return not arithmetic
        return dt in (np.float32, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
                      np.bool_)

    def synchronize(self, timeout: float | None = None) -> None:
        """Wait for all work queued on this device; Ctrl-C interrupts the wait, ``timeout`` (seconds) raises
        :class:`~xgpu.errors.KernelTimeoutError`."""
        from ._wait import wait_interruptibly

        last = getattr(self, "_last_kernel", None)
        wait_interruptibly(self._impl.synchronize, timeout,
                           f"the work queued on {self.id}" + (f" (last kernel launched: {last!r})" if last else ""))
        self._forget_finished()

    @property
    def _impl(self) -> DeviceImpl:
        """The driver's device; refused in a forked child (the driver's state did not survive the fork)."""
        self._check_process()
        return self._opened_impl

    def _check_process(self) -> None:
        if os.getpid() != self._opened_in:
            raise DeviceError(
                f"{self.id} ({self.name}) was opened by process {self._opened_in} and this process "
                f"({os.getpid()}) is a fork of it: drivers do not survive fork() (PoCL hangs, others crash). "
                "Start workers with multiprocessing's 'spawn' or 'forkserver' method "
                "(multiprocessing.set_start_method('spawn')), or list devices only in the children"
            )

    def prelude(self) -> str:
        return self._backend.prelude()

    def as_dict(self) -> dict[str, Any]:
        keys = (
            "id backend name vendor platform type driver_version compute_units clock_mhz global_mem_bytes "
            "local_mem_bytes max_work_group_size fp64 fp16_storage fp16_arithmetic is_simulator checks_memory"
        ).split()
        d = {k: getattr(self, k) for k in keys}
        d["max_work_item_sizes"] = list(self.max_work_item_sizes)
        d["extra"] = self.extra
        return d


def pinned_empty(shape: Any, dtype: Any = np.float32, device: Device | str | None = None) -> np.ndarray:
    """An uninitialised numpy array in host memory that ``device`` copies to and from fastest (page-locked for
    CUDA, the device's host-visible memory for OpenCL): the host side of non-blocking copies
    (``a.get(out=pinned, queue=q, blocking=False)``). It keeps that memory alive; otherwise it is an ordinary
    numpy array."""
    from ._queue import pinned_empty as make

    return make(shape, dtype, get_device(device))


@dataclass(frozen=True)
class BackendStatus:
    name: str
    plugin: str
    language: str
    available: bool
    reason: str
    version: str
    device_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["device_ids"] = list(self.device_ids)
        return d


class _State:
    def __init__(self) -> None:
        registry = _plugins.collect_backends()
        self.backends: dict[str, Backend] = registry.backends
        self.devices: list[Device] = []
        self.status: dict[str, BackendStatus] = {}
        for name, backend in registry.backends.items():
            reason, found, version = "", [], ""
            try:
                found = [Device(backend, impl) for impl in backend.devices()]
                version = backend.version()
                if not found:
                    reason = "no devices found"
            except BackendUnavailableError as exc:
                reason = str(exc)
            except Exception as exc:  # a plugin must never take the whole library down
                reason = f"failed to list devices: {type(exc).__name__}: {exc}"
            self.devices.extend(found)
            self.status[name] = BackendStatus(
                name,
                registry.owners[name],
                backend.language,
                bool(found),
                reason,
                version,
                tuple(d.id for d in found),
            )


_state: _State | None = None
_state_lock = threading.RLock()


def _get_state() -> _State:
    global _state
    with _state_lock:
        if _state is None:
            _state = _State()
        return _state


def reset() -> None:
    """Forget the device list (plugins changed); it is rebuilt on next use."""
    global _state
    with _state_lock:
        _state = None


_plugins.on_change.append(reset)


def default_backend() -> str:
    """The backend that rendering and offline compiling use when none is named: the default device's,
    or (with no device at all) the first registered backend by name."""
    state = _get_state()
    try:
        return default_device_reason()[0].backend
    except XgpuError:
        if not state.backends:
            raise BackendUnavailableError(
                f"no backend is registered; check {_plugins.DISABLE_ENV} and the installed plugin packages"
            ) from None
        return sorted(state.backends)[0]


def devices() -> list[Device]:
    """Every device of every available backend."""
    return list(_get_state().devices)


def list_backends() -> dict[str, BackendStatus]:
    """Every registered backend with its availability and the reason when it is unavailable."""
    return dict(_get_state().status)


def backend(name: str) -> Backend:
    """The registered backend called ``name`` (available or not: rendering needs only its prelude)."""
    state = _get_state()
    try:
        return state.backends[name]
    except KeyError:
        known = ", ".join(sorted(state.backends)) or "none"
        raise BackendUnavailableError(
            f"no backend named {name!r} is registered (registered: {known}); "
            f"check {_plugins.DISABLE_ENV} and that its plugin package is installed"
        ) from None


def _default_key(d: Device) -> tuple[int, int, int]:
    # GPUs before accelerators before CPUs; within a kind, the bigger device
    return (_TYPE_RANK.get(d.type, 3), -d.compute_units, -d.global_mem_bytes)


def default_device_reason() -> tuple[Device, str]:
    """The device ``get_device()`` picks, and why."""
    spec = os.environ.get(DEVICE_ENV, "").strip()
    if spec:
        return _select(spec, env=True), f"{DEVICE_ENV}={spec}"
    candidates = [d for d in devices() if not d.is_simulator]
    if not candidates:
        raise DeviceNotFoundError(
            "no device to pick by default" + _listing() + "\nSimulators are picked only when asked for by name."
        )
    best = min(candidates, key=_default_key)
    return best, f"default rule: first {best.type} (GPU before accelerator before CPU, never a simulator)"


def get_device(spec: Device | str | None = None) -> Device:
    """Pick a device.

    ``spec`` is a device id (``opencl:0:1``, ``cuda:0``), a backend name (``opencl``: its
    default device), or a case-insensitive substring of a device's or platform's name
    (``intel``, ``pocl``, ``oclgrind``). With no spec, ``XGPU_DEVICE`` (same syntax) decides,
    else the default rule: a GPU before a CPU, never a simulator unless asked for.
    """
    if isinstance(spec, Device):
        return spec
    if spec is None:
        return default_device_reason()[0]
    if not isinstance(spec, str):
        raise InvalidArgumentError(f"device spec must be a string or an xgpu.Device, not {type(spec).__name__}")
    return _select(spec)


def _listing() -> str:
    devs = devices()
    lines = [f"\n  {d.id:<14} {d.name} ({d.platform})" for d in devs] or ["\n  (none)"]
    unavailable = [f"\n  {s.name}: {s.reason}" for s in list_backends().values() if not s.available]
    text = "\nDevices there are:" + "".join(lines)
    if unavailable:
        text += "\nUnavailable backends:" + "".join(unavailable)
    return text


def select_devices(specs=(), backends=(), exclude=()) -> list[Device]:
    """The devices some specs name (every device when none), of the given backends (any when none),
    less those an ``exclude`` spec names; each once, in order."""
    chosen = [d for spec in specs for d in match_devices(spec)] if specs else devices()
    if backends:
        chosen = [d for d in chosen if d.backend in backends]
    gone = {d.id for spec in exclude for d in match_devices(spec)}
    return list({d.id: d for d in chosen if d.id not in gone}.values())


def match_devices(spec: str) -> list[Device]:
    """Every device a spec names: an id names one, a backend name all of its devices, a substring
    every device whose name, platform, vendor or alias contains it (simulators included)."""
    s = spec.strip()
    devs = devices()
    if s in _get_state().backends:
        return [d for d in devs if d.backend == s]
    exact = [d for d in devs if d.id == s]
    if exact:
        return exact
    low = s.lower()
    return [d for d in devs if any(low in text.lower() for text in (d.name, d.platform, d.vendor, *d.aliases))]


def _select(spec: str, env: bool = False) -> Device:
    s = spec.strip()
    where = f" (from {DEVICE_ENV})" if env else ""
    if not s:
        raise DeviceNotFoundError(f"empty device spec{where}" + _listing())
    matches = match_devices(s)
    if not matches:
        state = _get_state()
        if s in state.backends:
            raise BackendUnavailableError(f"backend {s!r} is unavailable: {state.status[s].reason}{where}")
        raise DeviceNotFoundError(f"no device matches {spec!r}{where}" + _listing())
    # a simulator only when the spec names it or nothing else matches
    pool = [d for d in matches if not d.is_simulator] or matches
    return min(pool, key=_default_key)
