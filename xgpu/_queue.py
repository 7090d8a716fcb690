"""Queues (OpenCL) / streams (CUDA) and the events that order work between them.

Every device has a default queue (``device.default_queue``), in-order, used whenever no other is named;
``device.queue()`` makes another. Work on one queue runs in submission order; work on two queues runs
in no order unless an event says so (``wait_for=[event]``). A queue is named per call (``queue=``) or
for a block of code (``with q:``), which is how the library's operations (gemm, conv2d...) reach it.

The buffer pool sees the queues through :func:`ordered`: every command records its event on the memory
blocks it touches, and a block the pool hands out again carries the last event of each queue that used
it; the first command on it from another queue waits for those on the device (no host wait, no
synchronous free). See docs/multidevice.md.
"""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING, Any

from ._wait import wait_interruptibly
from .errors import DeviceMismatchError, InvalidArgumentError, ShapeError, UnsupportedDtypeError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .backend import EventImpl, QueueImpl

# (the Device type is not imported, not even for annotations: xgpu._devices imports this module)
Device = Any

# the queue each device's work goes to in this thread (and asyncio task), set by ``with queue:``
_current: contextvars.ContextVar[dict[int, Queue] | None] = contextvars.ContextVar("xgpu_queue", default=None)


class Queue:
    """A queue (OpenCL) / stream (CUDA) of one device: ``device.queue()`` makes one, ``device.default_queue``
    is the one every call uses when none is named. Work on a queue runs in order; pass ``queue=q`` to a
    launch or copy, or run a block of calls on it with ``with q:``."""

    def __init__(self, device: Device, impl: QueueImpl | None, number: int):
        self.device = device
        self._impl = impl
        self._number = number
        self._tokens = threading.local()  # per thread: ``with q:`` may be entered by several threads at once

    @property
    def is_default(self) -> bool:
        return self._impl is None

    def __repr__(self) -> str:
        return f"<xgpu.Queue {'default' if self.is_default else self._number} of {self.device.id}>"

    def finish(self, timeout: float | None = None) -> None:
        """Wait for all work queued on this queue (only this one); Ctrl-C interrupts the wait, ``timeout``
        raises :class:`~xgpu.errors.KernelTimeoutError`."""
        if self._impl is None:
            self.device.synchronize(timeout)
            return
        wait_interruptibly(self._impl.finish, timeout, f"the work queued on {self!r}")
        self.device._forget_finished()

    def marker(self) -> Event:
        """An event that ends when everything queued on this queue so far has ended (pass it in ``wait_for``
        of work on another queue, or wait for it)."""
        impl = self.device._impl.marker(self._impl)
        return Event(impl, f"the work queued on {self!r}", self.device, self)

    def __enter__(self) -> Queue:
        chosen = dict(_current.get() or {})
        chosen[id(self.device)] = self
        stack = self._tokens.__dict__.setdefault("stack", [])
        stack.append(_current.set(chosen))
        return self

    def __exit__(self, *exc: Any) -> None:
        _current.reset(self._tokens.stack.pop())


class Event:
    """Work queued on a device (a launch, a copy, a marker): ``wait()`` for it, ``done`` asks without waiting,
    ``elapsed_s`` is its device time and ``profile`` its start and end on the device's clock. Pass it in
    ``wait_for=`` to order work on another queue after it."""

    def __init__(self, impl: EventImpl | None, what: str = "the kernel", device: Device | None = None,
                 queue: Queue | None = None, keep: Any = None):
        self._impl = impl  # None: work that had ended when the call returned
        self._what = what
        self._done = impl is None
        self.device = device
        self.queue = queue
        self._keep = keep  # host memory a copy uses: alive at least as long as this event

    def __repr__(self) -> str:
        return f"<xgpu.Event {self._what}{' (done)' if self._done else ''}>"

    def wait(self, timeout: float | None = None) -> Event:
        """Wait until the work ends; Ctrl-C interrupts the wait, ``timeout`` (seconds) raises
        :class:`~xgpu.errors.KernelTimeoutError` naming the work."""
        if not self._done and self._impl is not None:
            wait_interruptibly(self._impl.wait, timeout, self._what, getattr(self._impl, "done", None))
            self._done = True
            self._keep = None
        return self

    @property
    def done(self) -> bool:
        """Whether the work has ended (never blocks; False where the backend cannot tell yet)."""
        if not self._done and self._impl is not None and self._impl.done():
            self._done = True
        return self._done

    @property
    def elapsed_s(self) -> float:
        """The work's device time in seconds (waits for it first)."""
        if self._impl is None:
            return 0.0
        self.wait()
        return self._impl.elapsed_s()

    @property
    def profile(self) -> tuple[float, float]:
        """(start, end) of the work on the device's clock, in seconds (waits for it first): comparable
        between the queues of one device. InvalidArgumentError where the backend keeps no such times."""
        times = None
        if self._impl is not None:
            self.wait()
            times = self._impl.times_ns()
        if times is None:
            raise InvalidArgumentError(f"{self._what}: no device timestamps for this event (work that ended in the "
                                       "call, or a backend without them); elapsed_s gives its duration")
        return times[0] * 1e-9, times[1] * 1e-9


def pick(device: Device, queue: Any, what: str) -> Queue | None:
    """The queue work on ``device`` goes to: ``queue`` when given (checked), else the one ``with q:`` chose
    for this device, else None (the default queue)."""
    if queue is None:
        chosen = _current.get()
        queue = chosen.get(id(device)) if chosen else None
        if queue is None:
            return None
    elif not isinstance(queue, Queue):
        raise InvalidArgumentError(f"{what}: queue= takes an xgpu.Queue (device.queue()), not a "
                                   f"{type(queue).__name__}")
    if queue.device is not device:
        raise DeviceMismatchError(
            f"{what}: the queue is one of {queue.device.id}, but the work is on {device.id}; make a queue of "
            f"that device with xgpu.get_device({device.id!r}).queue()"
        )
    return None if queue.is_default else queue


def check_queue_of(device: Device, queue: Any, what: str) -> None:
    """``queue`` (when given) belongs to ``device``: a clear error otherwise."""
    if queue is not None:
        pick(device, queue, what)


def _events(wait_for: Any, what: str) -> list[Event]:
    if wait_for is None:
        return []
    if isinstance(wait_for, Event):
        wait_for = [wait_for]
    try:
        events = list(wait_for)
    except TypeError:
        raise InvalidArgumentError(f"{what}: wait_for= takes a list of xgpu.Event, not a "
                                   f"{type(wait_for).__name__}") from None
    for e in events:
        if not isinstance(e, Event):
            raise InvalidArgumentError(
                f"{what}: wait_for= holds a {type(e).__module__}.{type(e).__name__}; it takes xgpu.Event objects "
                "(what launches, copies and queue.marker() return), not a driver's own events"
            )
    return events


def ordered(device: Device, queue: Queue | None, blocks: Iterable[Any], wait_for: Any, what: str) -> list[EventImpl]:
    """The events of ``device`` that work on ``queue`` touching ``blocks`` must wait for: those in ``wait_for``
    (other devices' events are waited for here, on the host: a driver orders work within one device only)
    and what other queues last did with a pooled block before it was freed."""
    found: list[EventImpl] = []
    for e in _events(wait_for, what):
        if e._impl is None or e._done:
            continue
        if e.device is device:
            found.append(e._impl)
        else:
            e.wait()
    key = None if queue is None else queue._impl
    for block in blocks:
        pending = block.pending
        if not pending:
            continue
        kept = []
        for k, ev in pending:
            if k is key:  # the same queue runs in order
                kept.append((k, ev))
            elif not ev.done():
                found.append(ev)
                kept.append((k, ev))
        block.pending = kept
    return found


def record(queue: Queue | None, blocks: Iterable[Any], event: EventImpl | None) -> None:
    """Remember ``event`` as the last work of ``queue`` on each block (for the pool)."""
    key = None if queue is None else queue._impl
    for block in blocks:
        if event is None:
            block.uses.pop(key, None)  # ended, and with it everything before it on that queue
        else:
            block.uses[key] = event


class InFlight:
    """Host memory and device blocks that running non-blocking copies use: kept until their events end."""

    def __init__(self) -> None:
        self._items: list[tuple[EventImpl, Any]] = []
        self._lock = threading.Lock()

    def add(self, event: EventImpl, keep: Any) -> None:
        with self._lock:
            self._items = [(e, k) for e, k in self._items if not e.done()]
            self._items.append((event, keep))

    def forget_finished(self, everything: bool = False) -> None:
        with self._lock:
            self._items = [] if everything else [(e, k) for e, k in self._items if not e.done()]

    def __len__(self) -> int:
        return len(self._items)


# -- copies on a queue: called by xgpu._array for a named queue, a ``with q:`` block, a non-blocking copy or
# -- wait_for (the plain blocking copies on the default queue keep their own short path there)

def _host_wait(wait_for: Any, what: str) -> None:
    for e in _events(wait_for, what):
        e.wait()


def needs_queue_path(device: Device, block: Any) -> bool:
    """Whether a plain (blocking, default-queue) copy must go through the queue-aware path: a ``with q:``
    block for this device, or a pooled block that another queue used before it was freed and may still be
    using. What the default queue did with it needs no wait: the copy runs after it on that queue. (Without
    this, a pooled block the default queue once copied into took the queue path on every later read: on
    Intel's CPU runtime, the runtime's copy of 128 MiB took 50-66 ms against numpy's 19.)"""
    chosen = _current.get()
    if chosen and id(device) in chosen:
        return True
    if block.pending:
        block.pending = [(k, ev) for k, ev in block.pending if not ev.done()]
        return any(k is not None for k, _ev in block.pending)
    return False


def device_copy(dst: Any, src: Any, queue: Any = None, wait_for: Any = None) -> Event:
    """Copy the whole array ``src`` into the whole array ``dst`` (same device, same size) on a queue."""
    dev = dst.device
    what = f"a copy on {dev.id}"
    chosen = pick(dev, queue, what)
    blocks = [dst._block, src._block]
    deps = ordered(dev, chosen, blocks, wait_for, what)
    if chosen is None and not deps:
        impl = dev._impl.copy(dst._buffer, src._buffer, dst.nbytes)  # (a backend may return its event)
    else:
        impl = dev._impl.enqueue_copy(None if chosen is None else chosen._impl, dst._buffer, src._buffer, dst.nbytes,
                                      deps)
    record(chosen, blocks, impl)
    return Event(impl, what, dev, chosen or dev.default_queue)


def read(a: Any, out: Any, queue: Any, blocking: bool, wait_for: Any) -> Any:
    """``a.get(out, queue=, blocking=, wait_for=)`` (``out`` already checked): ``out``, or with
    ``blocking=False`` the copy's Event (``out`` is filled when it ends; it is kept alive until then)."""
    import numpy as np

    dev = a.device
    what = f"a copy of {a!r} to the host"
    chosen = pick(dev, queue, "Array.get")
    if not blocking and not out.flags.c_contiguous:
        raise InvalidArgumentError("Array.get(blocking=False) copies into out as it is: pass a C-contiguous out "
                                   "(xgpu.pinned_empty(shape, dtype, device) makes one the device copies fastest)")
    src = a
    if not a._whole:  # gathered into a contiguous copy on the same queue first
        _host_wait(wait_for, what)
        wait_for = None
        if chosen is None:
            src = a.copy()
        else:
            with chosen:
                src = a.copy()
    host = out if out.flags.c_contiguous else np.empty(a.shape, a.dtype)
    deps = ordered(dev, chosen, [src._block], wait_for, what)
    impl = dev._impl.enqueue_read(None if chosen is None else chosen._impl, src._buffer, host, deps, blocking)
    record(chosen, [src._block], impl)
    if blocking:
        if host is not out:
            out[...] = host
        return out
    keep = (out, src._block)
    if impl is not None:
        dev._in_flight.add(impl, keep)
    return Event(impl, what, dev, chosen or dev.default_queue, keep)


def write(a: Any, host: Any, queue: Any, blocking: bool, wait_for: Any) -> Event:
    """``a.set(host, queue=, blocking=, wait_for=)`` for a whole array (``host`` has its shape): the copy's
    Event; with ``blocking=False`` it returns at once and the host data is kept alive until the copy ends."""
    import numpy as np

    dev = a.device
    what = f"a copy to {a!r}"
    chosen = pick(dev, queue, "Array.set")
    data = np.ascontiguousarray(host, dtype=a.dtype)  # the caller's own array when it is already so (pinned)
    deps = ordered(dev, chosen, [a._block], wait_for, what)
    impl = dev._impl.enqueue_write(None if chosen is None else chosen._impl, a._buffer, data, deps, blocking)
    record(chosen, [a._block], impl)
    keep = None
    if not blocking and impl is not None:
        keep = (data, a._block)
        dev._in_flight.add(impl, keep)
    return Event(impl, what, dev, chosen or dev.default_queue, keep)


def write_view(a: Any, host: Any, queue: Any, wait_for: Any, upload: Any, copy_into: Any) -> None:
    """``a.set(host, queue=...)`` for a view: uploaded whole, then copied into the view, on one queue."""
    chosen = pick(a.device, queue, "Array.set")
    _host_wait(wait_for, f"a copy to {a!r}")
    if chosen is None:
        copy_into(a, upload(host))
    else:
        with chosen:
            copy_into(a, upload(host))


def pinned_empty(shape: Any, dtype: Any, device: Device) -> Any:
    """A numpy array in host memory that ``device`` copies to and from fastest (page-locked for CUDA, the
    device's host-visible memory for OpenCL), for non-blocking copies; it keeps that memory alive."""
    import math

    import numpy as np

    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise UnsupportedDtypeError(f"{dtype!r} is not a dtype") from exc
    if dt.kind not in "biufc" or dt.hasobject:
        raise UnsupportedDtypeError(f"dtype {dt} cannot be copied to a device; use a numeric dtype (float32, ...)")
    try:
        dims = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ShapeError(f"shape must be an int or a tuple of ints, not {shape!r}") from None
    if any(d < 0 for d in dims) or isinstance(shape, (bool, str, bytes)):
        raise ShapeError(f"shape must be an int or a tuple of ints >= 0, not {shape!r}")
    nbytes = math.prod(dims) * dt.itemsize
    raw = device._impl.allocate_host(max(nbytes, 1))
    return raw[:nbytes].view(dt).reshape(dims)
