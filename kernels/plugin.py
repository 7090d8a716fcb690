"""The kernel library's plugin: it registers its parity cases and its tunable kernels through the same
hooks a third-party kernel package would use (entry point ``kernels`` in the ``xgpu`` group)."""

from __future__ import annotations

from typing import Any

from xgpu.plugin import hookimpl


@hookimpl
def xgpu_register_parity_cases(register) -> None:
    from .parity import register_cases

    register_cases(register)


def _gemm_tunable(device: Any, dtype: str, size: int | None) -> Any:
    from .gemm.autotune import tunable

    return tunable(device, dtype, size or 2048)


def _conv2d_tunable(device: Any, dtype: str, size: int | None) -> Any:
    from .conv2d.autotune import tunable

    return tunable(device, dtype, size)


@hookimpl
def xgpu_register_tunables(register) -> None:
    register.add("gemm", _gemm_tunable)
    register.add("conv2d", _conv2d_tunable)
