"""GEMM and matmul: parity with a float64 numpy reference on every device, every variant, odd shapes."""

from __future__ import annotations

import numpy as np
import pytest

import xgpu
from xgpu.errors import DeviceMismatchError, InvalidArgumentError, ShapeError, UnsupportedDtypeError
from xgpu.kernels.gemm import all_variants, gemm
from xgpu.testing import assert_close

DTYPES = [np.float32, np.float64, np.float16]


def need(device, dtype):
    if not device.supports(dtype):
        pytest.skip(f"{np.dtype(dtype)} unsupported on {device.id} ({device.name})")


def operands(rng, m, n, k, dtype, trans_a=False, trans_b=False):
    a = rng.uniform(-1, 1, (k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def reference(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out = alpha * ((a64.T if trans_a else a64) @ (b64.T if trans_b else b64))
    if c is not None and beta:
        out += beta * c.astype(np.float64)
    return out


SHAPES = [(1, 1, 1), (7, 7, 7), (1, 127, 3), (127, 1, 129), (127, 127, 127), (33, 65, 17), (1000, 7, 1),
          (7, 1000, 1000), (1023, 129, 31), (300, 200, 700)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_shapes(xgpu_device, m, n, k, dtype, rng):
    need(xgpu_device, dtype)
    if xgpu_device.is_simulator and m * n * k > 70_000:
        pytest.skip("Oclgrind simulates a few MFLOP/s: shapes this large are run on the other devices")
    a, b = operands(rng, m, n, k, dtype)
    c = xgpu.asarray(np.full((m, n), np.nan, dtype), xgpu_device)  # poisoned: beta = 0 must not read it
    out = gemm(xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), c)
    assert out is c
    assert_close(c.get(), reference(a, b), dtype=dtype, terms=k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, True), (True, False), (True, True)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.5, 2.0), (0.0, 1.0)])
def test_gemm_transposes_alpha_beta(xgpu_device, dtype, trans_a, trans_b, alpha, beta, rng):
    need(xgpu_device, dtype)
    m, n, k = (23, 37, 19) if xgpu_device.is_simulator else (131, 67, 301)
    a, b = operands(rng, m, n, k, dtype, trans_a, trans_b)
    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
    c = xgpu.asarray(c0, xgpu_device)
    xgpu.gemm(xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), c, alpha=alpha, beta=beta,
              trans_a=trans_a, trans_b=trans_b)
    assert_close(c.get(), reference(a, b, trans_a, trans_b, alpha, beta, c0), dtype=dtype, terms=k)


VARIANTS = all_variants()


@pytest.mark.parametrize("dtype,trans_a,trans_b,config", VARIANTS,
                         ids=[f"{np.dtype(d)}-{'T' if ta else 'N'}{'T' if tb else 'N'}-{c.label}"
                              for d, ta, tb, c in VARIANTS])
def test_every_variant_on_every_device(xgpu_device, dtype, trans_a, trans_b, config, rng):
    """Each variant the library can pick, on a shape with a whole tile, edge tiles and (off the simulator)
    more K than one cache block: every code path of the template runs."""
    need(xgpu_device, dtype)
    tx, ty = config.local_size
    if tx * ty > xgpu_device.max_work_group_size:
        pytest.skip(f"work-group of {tx * ty} exceeds {xgpu_device.id}'s maximum")
    k = 19 if xgpu_device.is_simulator else max(2 * config.kc, 64) + 3
    m, n = config.tm + 3, config.tn + 5
    a, b = operands(rng, m, n, k, dtype, trans_a, trans_b)
    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
    c = xgpu.asarray(c0, xgpu_device)
    try:
        gemm(xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), c, alpha=0.75, beta=-1.5,
             trans_a=trans_a, trans_b=trans_b, config=config)
    except xgpu.errors.LaunchError as exc:
        if "the compiled kernel" not in str(exc):
            raise
        # rusticl allows 32 work-items per compiled kernel, whatever the device's maximum
        pytest.skip(str(exc))
    assert_close(c.get(), reference(a, b, trans_a, trans_b, 0.75, -1.5, c0), dtype=dtype, terms=k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_k_zero_gives_beta_c(xgpu_device, dtype, rng):
    need(xgpu_device, dtype)
    c0 = rng.uniform(-1, 1, (5, 6)).astype(dtype)
    c = xgpu.asarray(c0, xgpu_device)
    empty_a = xgpu.empty((5, 0), dtype, xgpu_device)
    empty_b = xgpu.empty((0, 6), dtype, xgpu_device)
    xgpu.gemm(empty_a, empty_b, c, beta=3.0)
    assert_close(c.get(), 3.0 * c0.astype(np.float64), dtype=dtype)
    fresh = xgpu.gemm(empty_a, empty_b)
    assert fresh.shape == (5, 6) and not fresh.get().any()


@pytest.mark.parametrize("shape_a,shape_b", [((3, 7, 5), (3, 5, 9)), ((1, 7, 5), (4, 5, 9)), ((4, 7, 5), (1, 5, 9)),
                                             ((4, 7, 5), (5, 9)), ((7, 5), (2, 5, 9)), ((33, 17), (17, 65))])
def test_matmul_batches_and_broadcast(xgpu_device, shape_a, shape_b, rng):
    a = rng.uniform(-1, 1, shape_a).astype(np.float32)
    b = rng.uniform(-1, 1, shape_b).astype(np.float32)
    ga, gb = xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    for result in (xgpu.matmul(ga, gb), ga @ gb, a @ gb, ga @ b):
        assert result.shape == expected.shape and result.device is xgpu_device
        assert_close(result.get(), expected, dtype=np.float32, terms=shape_a[-1])


def test_matmul_empty_and_k_zero(xgpu_device):
    a = xgpu.zeros((0, 3), np.float32, xgpu_device)
    assert xgpu.matmul(a, xgpu.zeros((3, 4), np.float32, xgpu_device)).shape == (0, 4)
    out = xgpu.matmul(xgpu.zeros((2, 3, 0), np.float32, xgpu_device), xgpu.zeros((2, 0, 4), np.float32, xgpu_device))
    assert out.shape == (2, 3, 4) and not out.get().any()


def test_gemm_errors(xgpu_device):
    f32 = lambda *s: xgpu.zeros(s, np.float32, xgpu_device)  # noqa: E731
    with pytest.raises(ShapeError, match="inner dimensions differ"):
        xgpu.gemm(f32(3, 4), f32(5, 6))
    with pytest.raises(ShapeError, match=r"c has shape \(2, 2\)"):
        xgpu.gemm(f32(3, 4), f32(4, 6), f32(2, 2))
    with pytest.raises(ShapeError, match="2-D"):
        xgpu.gemm(f32(2, 3, 4), f32(4, 6))
    with pytest.raises(UnsupportedDtypeError, match="different dtypes"):
        xgpu.gemm(f32(3, 4), xgpu.zeros((4, 2), np.int32, xgpu_device))
    with pytest.raises(UnsupportedDtypeError, match="float32, float64 or float16"):
        xgpu.gemm(xgpu.zeros((3, 4), np.int32, xgpu_device), xgpu.zeros((4, 2), np.int32, xgpu_device))
    with pytest.raises(InvalidArgumentError, match="not an xgpu array"):
        xgpu.gemm(np.zeros((3, 4), np.float32), f32(4, 2))
    with pytest.raises(ShapeError, match="do not fit"):
        xgpu.matmul(f32(3, 4), f32(5, 2))
    with pytest.raises(ShapeError, match="do not broadcast"):
        xgpu.matmul(f32(2, 3, 4), f32(3, 4, 2))
    with pytest.raises(ShapeError, match="2-D or 3-D"):
        xgpu.matmul(f32(4), f32(4, 2))


def test_gemm_mixed_devices():
    devs = xgpu.devices()
    if len(devs) < 2:
        pytest.skip("one device only")
    a = xgpu.zeros((2, 2), np.float32, devs[0])
    b = xgpu.zeros((2, 2), np.float32, devs[1])
    with pytest.raises(DeviceMismatchError):
        xgpu.gemm(a, b)
