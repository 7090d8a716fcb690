"""The kernel library's operations, exported at the package root (imported on first use)."""

from __future__ import annotations

import contextlib
from typing import Any

from ._queue import pick
from .errors import InvalidArgumentError


def _on_queue(queue: Any, *operands: Any) -> Any:
    """The ``with queue:`` block an operation runs in (nothing when no queue is named), after checking that
    the queue belongs to the operands' device."""
    if queue is None:
        return contextlib.nullcontext()
    # (not xgpu._array.same_device: that module imports this one) the operation itself refuses mixed devices
    device = next((x.device for x in operands if hasattr(x, "_block")), None)
    if device is None:
        raise InvalidArgumentError("queue= needs xgpu arrays as operands (a queue belongs to their device)")
    pick(device, queue, "queue=")
    return queue


def gemm(a: Any, b: Any, c: Any = None, *, alpha: float = 1.0, beta: float = 0.0, trans_a: bool = False,
         trans_b: bool = False, accumulate: str = "float32", queue: Any = None) -> Any:
    """``C = alpha * op(A) @ op(B) + beta * C`` on row-major xgpu arrays; see :func:`xgpu.kernels.gemm.gemm`.

    ``queue``: the :class:`xgpu.Queue` its kernels and copies go to (by default the device's)."""
    from .kernels.gemm import gemm as impl

    with _on_queue(queue, a, b, c):
        return impl(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate)


def matmul(a: Any, b: Any, *, devices: Any = None, queue: Any = None) -> Any:
    """numpy's ``matmul`` for 2-D and batched 3-D xgpu arrays; ``a @ b`` does the same.

    ``devices``: a list of devices (or a :class:`xgpu.DeviceGroup`) that share the batch; see docs/multidevice.md.
    ``queue``: the :class:`xgpu.Queue` its kernels and copies go to (one device only)."""
    if devices is not None:
        if queue is not None:
            raise InvalidArgumentError("matmul takes devices= or queue=, not both: a DeviceGroup uses each device's "
                                       "default queue")
        from ._group import as_group

        return as_group(devices).matmul(a, b)
    from .kernels.gemm import matmul as impl

    with _on_queue(queue, a, b):
        return impl(a, b)


def conv2d(x: Any, w: Any, bias: Any = None, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, layout: str = "NCHW", devices: Any = None, accumulate: str = "float32",
           queue: Any = None) -> Any:
    """``torch.nn.functional.conv2d`` on xgpu arrays; see :func:`xgpu.kernels.conv2d.conv2d`.

    ``devices``: a list of devices (or a :class:`xgpu.DeviceGroup`) that share the batch; see docs/multidevice.md.
    ``queue``: the :class:`xgpu.Queue` its kernels and copies go to (one device only)."""
    if devices is not None and queue is not None:
        raise InvalidArgumentError("conv2d takes devices= or queue=, not both: a DeviceGroup uses each device's "
                                   "default queue")
    if devices is not None:
        from ._group import as_group

        if accumulate != "float32":
            raise InvalidArgumentError("accumulate='float16' runs on one device: leave devices=None")
        return as_group(devices).conv2d(x, w, bias, stride=stride, padding=padding, dilation=dilation,
                                        groups=groups, layout=layout)
    from .kernels.conv2d import conv2d as impl

    with _on_queue(queue, x, w, bias):
        return impl(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout,
                    accumulate=accumulate)
