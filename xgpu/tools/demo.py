"""``python -m xgpu.tools.demo``: one template kernel on the default device, checked against numpy."""

from __future__ import annotations

import sys
import time

import numpy as np

import xgpu
from xgpu.kernels.axpy import axpy


def main() -> int:
    device = xgpu.get_device()
    print(f"device: {device.id}  {device.name} ({device.platform})")
    rng = np.random.default_rng(0)
    n, alpha = 1_000_003, 2.5  # not a multiple of any work-group size
    x = rng.standard_normal(2 * n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    gx, gy = xgpu.asarray(x, device), xgpu.asarray(y, device)
    start = time.perf_counter()
    total = axpy(alpha, gx, gy, incx=2)
    seconds = time.perf_counter() - start
    expected = alpha * x[::2].astype(np.float64) + y
    err = np.abs(gy.get() - expected).max() / np.abs(expected).max()
    sum_err = abs(total - expected.sum()) / np.abs(expected).sum()
    print(f"axpy (incx=2) + local-memory sum over n={n}: {seconds * 1e3:.1f} ms including compilation")
    print(f"max relative error vs numpy float64: {err:.2e}; sum {total:.4f} vs {expected.sum():.4f} ({sum_err:.1e})")
    ok = err < 1e-6 and sum_err < 1e-5
    print("result matches numpy" if ok else "RESULT DIFFERS FROM NUMPY")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
