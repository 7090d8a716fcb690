"""The kernel library's operations, exported at the package root (imported on first use)."""

from __future__ import annotations

from typing import Any


def gemm(a: Any, b: Any, c: Any = None, *, alpha: float = 1.0, beta: float = 0.0, trans_a: bool = False,
         trans_b: bool = False) -> Any:
    """``C = alpha * op(A) @ op(B) + beta * C`` on row-major xgpu arrays; see :func:`xgpu.kernels.gemm.gemm`."""
    from .kernels.gemm import gemm as impl

    return impl(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)


def matmul(a: Any, b: Any) -> Any:
    """numpy's ``matmul`` for 2-D and batched 3-D xgpu arrays; ``a @ b`` does the same."""
    from .kernels.gemm import matmul as impl

    return impl(a, b)
