"""The demo kernel (strided axpy with a local-memory reduction) on every device."""

from __future__ import annotations

import numpy as np
import pytest

import xgpu
from xgpu.errors import InvalidArgumentError, ShapeError, UnsupportedDtypeError
from xgpu.kernels.axpy import axpy
from xgpu.testing import assert_close

from .conftest import small

SIZES = [1, 7, 127, 1000, 100_003]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("incx,incy", [(1, 1), (3, 2)])
def test_axpy_matches_numpy(xgpu_device, n, dtype, incx, incy, rng):
    if not xgpu_device.supports(dtype):
        pytest.skip(f"{np.dtype(dtype)} unsupported on {xgpu_device.id} ({xgpu_device.name})")
    if xgpu_device.is_simulator and n > 1000:
        pytest.skip("Oclgrind simulates a few MFLOP/s: sizes above 1000 take minutes")
    n = small(xgpu_device, n, 1000)
    x = rng.standard_normal(n * incx).astype(dtype)
    y = rng.standard_normal(n * incy).astype(dtype)
    gx, gy = xgpu.asarray(x, xgpu_device), xgpu.asarray(y, xgpu_device)
    total = axpy(-1.25, gx, gy, incx=incx, incy=incy)
    expected = y.astype(np.float64)
    expected[::incy] = -1.25 * x[::incx].astype(np.float64) + y[::incy]
    assert_close(gy.get(), expected, dtype=dtype, what="y")
    # the elements between strides are left alone, exactly
    mask = np.ones(n * incy, bool)
    mask[::incy] = False
    np.testing.assert_array_equal(gy.get()[mask], y[mask])
    new = gy.get()[::incy].astype(np.float64)
    assert_close(np.array([total]), np.array([new.sum()]), dtype=np.float32 if dtype != np.float64 else dtype,
                 terms=n, what="sum")


def test_axpy_input_errors(xgpu_device):
    a = xgpu.zeros(4, np.float32, xgpu_device)
    with pytest.raises(UnsupportedDtypeError, match="same dtype"):
        axpy(1.0, a, xgpu.zeros(4, np.int32, xgpu_device))
    with pytest.raises(UnsupportedDtypeError, match="float16, float32 or float64"):
        axpy(1.0, xgpu.zeros(4, np.int32, xgpu_device), xgpu.zeros(4, np.int32, xgpu_device))
    with pytest.raises(ShapeError, match="1-D"):
        axpy(1.0, xgpu.zeros((2, 2), np.float32, xgpu_device), xgpu.zeros((2, 2), np.float32, xgpu_device))
    with pytest.raises(InvalidArgumentError, match="incx"):
        axpy(1.0, a, a, incx=0)
    assert axpy(1.0, xgpu.zeros(0, np.float32, xgpu_device), xgpu.zeros(0, np.float32, xgpu_device)) == 0.0
