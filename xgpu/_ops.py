"""The kernel library's operations, exported at the package root (imported on first use)."""

from __future__ import annotations

from typing import Any


def gemm(a: Any, b: Any, c: Any = None, *, alpha: float = 1.0, beta: float = 0.0, trans_a: bool = False,
         trans_b: bool = False, accumulate: str = "float32") -> Any:
    """``C = alpha * op(A) @ op(B) + beta * C`` on row-major xgpu arrays; see :func:`xgpu.kernels.gemm.gemm`."""
    from .kernels.gemm import gemm as impl

    return impl(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b, accumulate=accumulate)


def matmul(a: Any, b: Any, *, devices: Any = None) -> Any:
    """numpy's ``matmul`` for 2-D and batched 3-D xgpu arrays; ``a @ b`` does the same.

    ``devices``: a list of devices (or a :class:`xgpu.DeviceGroup`) that share the batch; see docs/multidevice.md."""
    if devices is not None:
        from ._group import as_group

        return as_group(devices).matmul(a, b)
    from .kernels.gemm import matmul as impl

    return impl(a, b)


def conv2d(x: Any, w: Any, bias: Any = None, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, layout: str = "NCHW", devices: Any = None, accumulate: str = "float32") -> Any:
    """``torch.nn.functional.conv2d`` on xgpu arrays; see :func:`xgpu.kernels.conv2d.conv2d`.

    ``devices``: a list of devices (or a :class:`xgpu.DeviceGroup`) that share the batch; see docs/multidevice.md."""
    if devices is not None:
        from ._group import as_group

        if accumulate != "float32":
            from .errors import InvalidArgumentError

            raise InvalidArgumentError("accumulate='float16' runs on one device: leave devices=None")
        return as_group(devices).conv2d(x, w, bias, stride=stride, padding=padding, dilation=dilation,
                                        groups=groups, layout=layout)
    from .kernels.conv2d import conv2d as impl

    return impl(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout,
                accumulate=accumulate)
