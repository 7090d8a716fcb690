"""Several devices of one process working on one batched operation (issue 18).

A :class:`DeviceGroup` splits a batched ``matmul`` or ``conv2d`` along its batch axis, in proportion
to each device's speed (measured on the first call for a problem, or given as ``weights``), runs the
parts at once (one host thread a device: each device keeps its own in-order queue, so the threads never
wait for each other), and gathers the parts into one result. Every part is the same library call a
single device makes on those batch items, so the result is the one-device result, item for item.

What it costs: the inputs go to the host once (when they are device arrays), each device receives its
slice of the batched operand and the whole of the shared one (the weights, a broadcast matrix), and
each part comes back to the host; the gathered result is then one more upload to the group's first
device (``host=True`` skips it). See docs/multidevice.md.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

# arrays through the package's facade: xgpu._array imports xgpu._ops, which reaches this module
import xgpu

from ._devices import Device, get_device
from .errors import InvalidArgumentError, KernelTimeoutError, ShapeError, UnsupportedDtypeError, XgpuError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


@dataclass(frozen=True)
class Span:
    """One step of one device's part of a split call, in seconds from the call's start."""

    device: str
    step: str  # "upload" (one operand), "launch" (host side, compiling included), "compute" or "download"
    start_s: float
    end_s: float
    items: int  # batch items in the part


@dataclass(frozen=True)
class Part:
    """The batch items ``start:stop`` that ``device`` runs."""

    device: Device
    start: int
    stop: int

    @property
    def items(self) -> int:
        return self.stop - self.start


def split_counts(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` items shared in proportion to ``weights`` (largest remainders; the counts sum to ``total``)."""
    whole = float(sum(weights))
    exact = [total * w / whole for w in weights]
    counts = [int(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], -weights[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _host(x: Any, name: str) -> np.ndarray:
    """An operand as a host array (a device array is read back: one copy)."""
    if isinstance(x, xgpu.Array):
        return x.get()
    if x is None:
        raise InvalidArgumentError(f"{name} is None: pass a numpy array or an xgpu array")
    try:
        return np.ascontiguousarray(x)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"cannot make an array of {name} ({type(x).__name__}): {exc}") from None


class DeviceGroup:
    """Devices that share the work of one batched call: ``DeviceGroup(["pocl", "intel"])``.

    ``devices``: Device objects or specs (``opencl:1:0``, ``pocl``, ...), each at most once.
    ``weights``: one positive number a device, the share of the batch it gets; None (the default)
    measures each device's speed on one batch item the first time a problem (its shape without the
    batch, dtype and options) is seen, and keeps it in :attr:`speeds`.
    """

    def __init__(self, devices: Sequence[Device | str], weights: Sequence[float] | None = None):
        if isinstance(devices, (str, Device)) or not hasattr(devices, "__iter__"):
            raise InvalidArgumentError(
                f"DeviceGroup takes a list of devices or device specs, not {devices!r}: DeviceGroup(['pocl', 'intel'])"
            )
        found = [get_device(d) for d in devices]
        if not found:
            raise InvalidArgumentError("DeviceGroup needs at least one device: DeviceGroup(['pocl', 'intel'])")
        ids = [d.id for d in found]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise InvalidArgumentError(
                f"DeviceGroup lists {', '.join(repeated)} more than once; a device takes its share through weights="
            )
        self.devices: tuple[Device, ...] = tuple(found)
        self.weights: tuple[float, ...] | None = None
        if weights is not None:
            ws = tuple(weights)
            if len(ws) != len(found) or not all(
                isinstance(w, (int, float, np.integer, np.floating)) and not isinstance(w, bool) and w >= 0 for w in ws
            ) or not sum(ws) > 0:
                raise InvalidArgumentError(
                    f"weights must be {len(found)} numbers >= 0 (one a device, not all 0), got {weights!r}"
                )
            self.weights = tuple(float(w) for w in ws)
        #: measured speeds, batch items a second: ``{problem: {device id: items/s}}``
        self.speeds: dict[tuple[Any, ...], dict[str, float]] = {}
        #: what the last call did on each device, for a timeline (:meth:`trace_text`)
        self.last_trace: list[Span] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<xgpu.DeviceGroup {' '.join(d.id for d in self.devices)}>"

    # ---------------------------------------------------------------------------------------------
    # the operations

    def matmul(self, a: Any, b: Any, *, host: bool = False, timeout: float | None = None) -> Any:
        """``a @ b`` (numpy's matmul) with the batch split over the devices.

        ``a``, ``b``: numpy or xgpu arrays, 2-D or 3-D; a 3-D operand's batch is split, a 2-D one (or a
        batch of 1) goes whole to every device. Returns an xgpu array on the group's first device, or the
        numpy array with ``host=True``.
        """
        from .kernels.gemm import matmul as impl

        ha, hb = _host(a, "a"), _host(b, "b")
        if ha.ndim not in (2, 3) or hb.ndim not in (2, 3):
            raise ShapeError(f"matmul takes 2-D or 3-D arrays, got a {ha.shape} and b {hb.shape}")
        if ha.shape[-1] != hb.shape[-2]:
            raise ShapeError(f"matmul: a {ha.shape} and b {hb.shape} do not fit: {ha.shape[-1]} != {hb.shape[-2]}")
        ba = ha.shape[0] if ha.ndim == 3 else 1
        bb = hb.shape[0] if hb.ndim == 3 else 1
        if ba != bb and 1 not in (ba, bb):
            raise ShapeError(f"matmul: batch sizes {ba} and {bb} do not broadcast")
        if ha.dtype != hb.dtype:
            raise UnsupportedDtypeError(f"matmul: a is {ha.dtype} and b is {hb.dtype}; convert one (astype)")
        batch = max(ba, bb)
        if ha.ndim == 2 and hb.ndim == 2:  # no batch: one device does it all
            batch = 1
        out_shape = (batch, ha.shape[-2], hb.shape[-1]) if (ha.ndim == 3 or hb.ndim == 3) else (ha.shape[0], hb.shape[1])
        split_a, split_b = ha.ndim == 3 and ba > 1, hb.ndim == 3 and bb > 1

        def run(dev: Device, i: int, j: int, upload: Callable[..., Any]) -> xgpu.Array:
            pa = upload(ha[i:j] if split_a else ha)
            pb = upload(hb[i:j] if split_b else hb)
            return impl(pa, pb)

        problem = ("matmul", ha.shape[1:] if split_a else ha.shape, hb.shape[1:] if split_b else hb.shape, ha.dtype.str)
        return self._run(problem, batch, out_shape, ha.dtype, run, host, len(out_shape) == 3, timeout)

    def conv2d(self, x: Any, w: Any, bias: Any = None, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
               groups: int = 1, layout: str = "NCHW", host: bool = False, timeout: float | None = None) -> Any:
        """:func:`xgpu.conv2d` with the batch (N, the first axis in both layouts) split over the devices;
        ``w`` and ``bias`` go whole to every device. Returns an xgpu array on the group's first device, or
        the numpy array with ``host=True``; ``timeout`` as for :meth:`matmul`."""
        from .kernels.conv2d import conv2d as impl

        hx, hw = _host(x, "x"), _host(w, "w")
        hbias = None if bias is None else _host(bias, "bias")
        if hx.ndim != 4:
            raise ShapeError(f"conv2d takes a 4-D x ({layout}), got shape {hx.shape}")
        kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "layout": layout}
        # every part checks its arguments itself, all alike, and the first device's error is the one raised
        batch = hx.shape[0]

        def run(dev: Device, i: int, j: int, upload: Callable[..., Any]) -> xgpu.Array:
            px = upload(hx[i:j])
            pw = upload(hw)
            pbias = None if hbias is None else upload(hbias)
            return impl(px, pw, pbias, **kwargs)

        problem = ("conv2d", hx.shape[1:], hw.shape, None if hbias is None else hbias.shape, hx.dtype.str,
                   repr(sorted(kwargs.items())))
        return self._run(problem, batch, None, hx.dtype, run, host, True, timeout)

    # ---------------------------------------------------------------------------------------------
    # splitting, measuring, running

    def split(self, batch: int, problem: tuple[Any, ...] | None = None) -> list[Part]:
        """How ``batch`` items are shared: by ``weights``, else by the speeds measured for ``problem``,
        else evenly. Devices that get no item are left out."""
        if self.weights is not None:
            weights: Sequence[float] = self.weights
        elif problem is not None and problem in self.speeds:
            weights = [self.speeds[problem][d.id] for d in self.devices]
        else:
            weights = [1.0] * len(self.devices)
        parts, start = [], 0
        for dev, n in zip(self.devices, split_counts(batch, weights)):
            if n:
                parts.append(Part(dev, start, start + n))
            start += n
        return parts

    def _measure(self, problem: tuple[Any, ...], run: Callable[..., xgpu.Array]) -> None:
        """Items a second of each device on one batch item: a first run compiles and warms the caches,
        the best of two more is kept. The devices are measured one after another (they may share cores)."""
        speeds: dict[str, float] = {}
        for dev in self.devices:
            def upload(h: np.ndarray, dev: Device = dev) -> xgpu.Array:
                return xgpu.asarray(h, dev)

            run(dev, 0, 1, upload)
            dev.synchronize()
            best = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                run(dev, 0, 1, upload)
                dev.synchronize()
                best = min(best, time.perf_counter() - t0)
            speeds[dev.id] = 1.0 / max(best, 1e-9)
        self.speeds[problem] = speeds

    def _check_dtype(self, dtype: np.dtype) -> None:
        for dev in self.devices:
            if not dev.supports(dtype):
                raise UnsupportedDtypeError(
                    f"{dev.id} ({dev.name}) does not support {dtype}: leave it out of the group for {dtype} work, "
                    f"or convert the operands (astype)"
                )

    def _run(self, problem: tuple[Any, ...], batch: int, out_shape: tuple[int, ...] | None, dtype: np.dtype,
             run: Callable[..., xgpu.Array], host: bool, batched: bool, timeout: float | None) -> Any:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
            raise InvalidArgumentError(f"timeout must be a number of seconds >= 0 or None, not {timeout!r}")
        self._check_dtype(dtype)
        with self._lock:  # one split call at a time per group: it owns last_trace and the measuring
            if batch > 1 and self.weights is None and problem not in self.speeds and len(self.devices) > 1:
                self._measure(problem, run)
            # an empty batch is the first device's to answer (its shape, its argument checks)
            parts = self.split(batch, problem) if batch else [Part(self.devices[0], 0, 0)]
            t_start = time.perf_counter()
            trace: list[Span] = []
            trace_lock = threading.Lock()

            def note(dev: Device, step: str, t0: float, items: int) -> None:
                with trace_lock:
                    trace.append(Span(dev.id, step, t0 - t_start, time.perf_counter() - t_start, items))

            def work(part: Part) -> np.ndarray:
                dev = part.device
                last_upload = [time.perf_counter()]

                def upload(h: np.ndarray) -> xgpu.Array:
                    t0 = time.perf_counter()
                    arr = xgpu.asarray(h, dev)
                    note(dev, "upload", t0, part.items)
                    last_upload[0] = time.perf_counter()
                    return arr

                result = run(dev, part.start, part.stop, upload)
                # the host's side of the launches after the last upload (compiling, on a first call)
                note(dev, "launch", last_upload[0], part.items)
                t1 = time.perf_counter()
                # the driver's wait, here on the part's own thread: the caller is the one that waits in short
                # steps (for the parts), so no hand-over to a waiting thread is needed
                dev._impl.synchronize()
                note(dev, "compute", t1, part.items)
                t2 = time.perf_counter()
                out = result.get()
                note(dev, "download", t2, part.items)
                return out

            # the parts' threads, waited for here in short steps (Ctrl-C interrupts), at most ``timeout`` s;
            # a part still running then is left to end on its own thread (a kernel cannot be cancelled)
            # a thread of its own for every part, started at once (a pool would hand a second part to the
            # first part's thread if that one had already ended); daemon threads: a part still running after
            # a timeout or Ctrl-C does not hold up the interpreter's exit
            futures = [_start_thread(work, p, f"xgpu-group-{i}") for i, p in enumerate(parts)]
            _done, pending = wait(futures, timeout=timeout)
            self.last_trace = sorted(trace, key=lambda s: (s.start_s, s.device))
            if pending:
                late = ", ".join(f"{p.device.id} (items {p.start}:{p.stop})" for p, f in zip(parts, futures)
                                 if f in pending)
                raise KernelTimeoutError(
                    f"a DeviceGroup call did not finish within {timeout} s: {late} still running; the other parts "
                    "ended. A running kernel cannot be cancelled: it goes on until it ends, and work queued behind "
                    "it on its device waits for it"
                )
            failed = [(p, exc) for p, f in zip(parts, futures) if (exc := f.exception()) is not None]
            if failed:  # every part has ended (or failed) before anything is raised
                raise _named(failed)
            results = [f.result() for f in futures]
        gathered = np.concatenate(results, axis=0) if batched else results[0]
        if out_shape is not None and gathered.shape != out_shape:  # pragma: no cover - the parts' shapes add up
            raise ShapeError(f"the parts gathered to {gathered.shape}, not {out_shape}")
        return gathered if host else xgpu.asarray(gathered, self.devices[0])

    def trace_text(self, width: int = 50) -> str:
        """The last call as a timeline: a row for each device and step, ``#`` where it was busy, and the
        step's time in milliseconds from the call's start (first start to last end)."""
        if not self.last_trace:
            return "(no call yet)"
        end = max(s.end_s for s in self.last_trace) or 1e-9
        order = {d.id: i for i, d in enumerate(self.devices)}
        steps = ("upload", "launch", "compute", "download")
        rows: dict[tuple[str, str], list[Span]] = {}
        for s in sorted(self.last_trace, key=lambda s: (order.get(s.device, 0), steps.index(s.step), s.start_s)):
            rows.setdefault((s.device, s.step), []).append(s)
        label_w = max(len(f"{dev} {step}") for dev, step in rows)
        lines = []
        for (dev, step), spans in rows.items():
            bar = [" "] * width
            for s in spans:
                a = min(int(s.start_s / end * width), width - 1)
                b = max(a + 1, round(s.end_s / end * width))
                bar[a:b] = "#" * (b - a)
            first, last = spans[0].start_s * 1e3, max(s.end_s for s in spans) * 1e3
            lines.append(f"{f'{dev} {step}'.ljust(label_w)} |{''.join(bar)}| {first:6.1f} -{last:6.1f} ms"
                         f"  {spans[0].items} items")
        return "\n".join(lines)


def _named(failed: list[tuple[Part, BaseException]]) -> BaseException:
    """The first failed part's exception, with a note naming its device and batch items (Python 3.11+).
    Errors in the arguments are the same on every device and are raised as they are."""
    part, exc = failed[0]
    add_note = getattr(exc, "add_note", None)
    if add_note is None or not isinstance(exc, XgpuError) or isinstance(
            exc, (ShapeError, InvalidArgumentError, UnsupportedDtypeError)):
        return exc
    others = ", ".join(f"{p.device.id} (items {p.start}:{p.stop})" for p, _ in failed[1:])
    add_note(f"raised by {part.device.id} running batch items {part.start}:{part.stop} of a DeviceGroup call; "
             "the other devices' parts ended" + (f", and these failed too: {others}" if others else ""))
    return exc


def as_group(devices: DeviceGroup | Sequence[Device | str]) -> DeviceGroup:
    """``devices=`` of :func:`xgpu.matmul` and :func:`xgpu.conv2d`: a DeviceGroup, or a list for one."""
    return devices if isinstance(devices, DeviceGroup) else DeviceGroup(devices)


def _start_thread(fn: Any, arg: Any, name: str) -> Future:
    """``fn(arg)`` on a new daemon thread; its result or exception lands in the returned future."""
    future: Future = Future()
    future.set_running_or_notify_cancel()

    def target() -> None:
        try:
            future.set_result(fn(arg))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future
