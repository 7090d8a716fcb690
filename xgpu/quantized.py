"""Quantized layers with PyTorch's quantized arithmetic, on 8-bit xgpu arrays (see docs/precision.md).

``xgpu.quantized.linear(x, w, bias, x_scale=..., x_zero_point=..., w_scale=..., ...)`` and
``xgpu.quantized.conv2d(...)``: the kernel library's ``xgpu.kernels.quantized``, imported on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["conv2d", "linear"]


def linear(x: Any, w: Any, bias: Any = None, **quantization: Any) -> Any:
    """``torch.ao.nn.quantized.Linear`` on xgpu arrays; see :func:`xgpu.kernels.quantized.linear`."""
    from .kernels.quantized import linear as impl

    return impl(x, w, bias, **quantization)


def conv2d(x: Any, w: Any, bias: Any = None, **options: Any) -> Any:
    """``torch.ao.nn.quantized.Conv2d`` (NCHW) on xgpu arrays; see :func:`xgpu.kernels.quantized.conv2d`."""
    from .kernels.quantized import conv2d as impl

    return impl(x, w, bias, **options)
