"""Integer GEMM (issue 20): int8/uint8 operands, exact int32 results, on every device."""

from __future__ import annotations

import numpy as np
import pytest

import xgpu
from xgpu.errors import InvalidArgumentError, ShapeError, UnsupportedDtypeError
from xgpu.kernels.gemm.integer import TEMPLATE, IntGemmConfig, all_variants, render_defines

SENTINEL = np.int32(-0x5A5A5A5A)  # what an unwritten element of C would still hold


def ints(rng, shape, dtype):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


def exact(a, b, trans_a=False, trans_b=False):
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    return (a64.T if trans_a else a64) @ (b64.T if trans_b else b64)


def poisoned(shape, device):
    return xgpu.asarray(np.full(shape, SENTINEL, np.int32), device)


def test_quantized_linear_layout_on_every_device(xgpu_device, rng):
    """uint8 activations x int8 weights (N, K), as PyTorch's quantized linear: x @ W.T, odd shapes, whole
    and edge tiles, extreme values (every product at its largest)."""
    big = not xgpu_device.is_simulator
    shapes = [(1, 1, 1), (7, 127, 13)] + ([(127, 65, 1000), (97, 130, 300)] if big else [(9, 17, 33)])
    for m, n, k in shapes:
        x, w = ints(rng, (m, k), np.uint8), ints(rng, (n, k), np.int8)
        c = poisoned((m, n), xgpu_device)
        got = xgpu.gemm(xgpu.asarray(x, xgpu_device), xgpu.asarray(w, xgpu_device), c, trans_b=True)
        assert got is c and got.dtype == np.int32
        np.testing.assert_array_equal(c.get(), exact(x, w, trans_b=True), err_msg=f"{m}x{n}x{k}")
    k = 1000 if big else 40
    x, w = np.full((3, k), 255, np.uint8), np.full((5, k), -128, np.int8)
    got = xgpu.gemm(xgpu.asarray(x, xgpu_device), xgpu.asarray(w, xgpu_device), trans_b=True).get()
    np.testing.assert_array_equal(got, np.full((3, 5), -255 * 128 * k))


def quick_devices():
    """Intel's CPU runtime and Oclgrind (memory checks), where a new kernel compiles in seconds; PoCL takes
    minutes per variant, so it runs the uint8 x int8 case above only."""
    found = []
    for spec in ("intel", "oclgrind"):
        try:
            found.append(xgpu.get_device(spec))
        except xgpu.errors.DeviceNotFoundError:
            continue
    return found or [xgpu.get_device()]


@pytest.mark.parametrize("spec", ["intel", "oclgrind"])
def test_int8_matmul_batches(spec, rng):
    """int8 x int8 through matmul and ``@``: a batch against a broadcast matrix; the biased fast path
    (A + 128, minus 128 column sums) and the edges are exact."""
    try:
        device = xgpu.get_device(spec)
    except xgpu.errors.DeviceNotFoundError:
        pytest.skip(f"no {spec} device here")
    batch, m, k, n = (3, 100, 77, 70) if not device.is_simulator else (2, 10, 9, 18)
    a, b = ints(rng, (batch, m, k), np.int8), ints(rng, (k, n), np.int8)
    a[0, :, :] = -128
    b[:, 0] = -128
    got = xgpu.matmul(xgpu.asarray(a, device), xgpu.asarray(b, device))
    assert got.shape == (batch, m, n) and got.dtype == np.int32
    np.testing.assert_array_equal(got.get(), a.astype(np.int64) @ b.astype(np.int64))
    two = (xgpu.asarray(a[1], device) @ xgpu.asarray(b, device)).get()
    np.testing.assert_array_equal(two, exact(a[1], b))


@pytest.mark.parametrize("dtype_a,dtype_b", [(np.uint8, np.uint8), (np.int8, np.uint8), (np.int8, np.int8)])
def test_every_mix_transposes_alpha_beta(dtype_a, dtype_b, rng):
    """The other mixes and layouts, alpha and beta (integers, wrapping as numpy's int32), on one device."""
    dev = quick_devices()[0]
    m, n, k = 101, 67, 129
    a, b = ints(rng, (k, m), dtype_a), ints(rng, (n, k), dtype_b)
    c0 = ints(rng, (m, n), np.int32)
    c = xgpu.asarray(c0, dev)
    xgpu.gemm(xgpu.asarray(a, dev), xgpu.asarray(b, dev), c, alpha=3, beta=-2, trans_a=True, trans_b=True)
    want = (3 * exact(a, b, True, True) - 2 * c0.astype(np.int64)).astype(np.uint64).astype(np.uint32).view(np.int32)
    np.testing.assert_array_equal(c.get(), want)


def test_sums_past_int32_wrap_as_numpy(rng):
    """alpha large enough to pass 2**31: the int32 result wraps as numpy's int32 arithmetic does."""
    dev = quick_devices()[0]
    a, b = np.full((2, 64), 127, np.int8), np.full((64, 3), 127, np.int8)
    got = xgpu.gemm(xgpu.asarray(a, dev), xgpu.asarray(b, dev), alpha=2**20).get()
    want = np.full((2, 3), (127 * 127 * 64 * 2**20) % 2**32, np.uint64).astype(np.uint32).view(np.int32)
    np.testing.assert_array_equal(got, want)


def test_bad_input_says_what_to_do():
    dev = quick_devices()[0]
    a = xgpu.asarray(np.ones((4, 4), np.int8), dev)
    f = xgpu.asarray(np.ones((4, 4), np.float32), dev)
    with pytest.raises(UnsupportedDtypeError, match="int8 or uint8 operands"):
        xgpu.gemm(a, f)
    with pytest.raises(UnsupportedDtypeError, match="int32 c"):
        xgpu.gemm(a, a, xgpu.asarray(np.zeros((4, 4), np.float32), dev))
    with pytest.raises(InvalidArgumentError, match="whole alpha"):
        xgpu.gemm(a, a, alpha=0.5)
    with pytest.raises(ShapeError, match="inner dimensions"):
        xgpu.gemm(a, xgpu.asarray(np.ones((3, 4), np.int8), dev))
    with pytest.raises(UnsupportedDtypeError, match="int16"):
        xgpu.gemm(xgpu.asarray(np.ones((4, 4), np.int16), dev), xgpu.asarray(np.ones((4, 4), np.int16), dev))


def test_k_zero_and_empty():
    dev = quick_devices()[0]
    a, b = xgpu.asarray(np.ones((3, 0), np.int8), dev), xgpu.asarray(np.ones((0, 2), np.int8), dev)
    np.testing.assert_array_equal(xgpu.gemm(a, b).get(), np.zeros((3, 2), np.int32))
    np.testing.assert_array_equal(xgpu.matmul(a, b).get(), np.zeros((3, 2), np.int32))


@pytest.mark.parametrize("cfg", all_variants(), ids=lambda c: c.label)
def test_variants_compile_for_cuda(cfg: IntGemmConfig):
    """Every variant, in the int8 x int8 and uint8 x int8 mixes, compiles for CUDA with NVRTC (no GPU)."""
    for dtype_a in (np.int8, np.uint8):
        build = xgpu.compile_offline(TEMPLATE, "cuda", "compute_80",
                                     defines=render_defines(dtype_a, np.int8, False, cfg))
        assert b".entry gemm_int" in build.binary
    build = xgpu.compile_offline(TEMPLATE, "cuda", "compute_80",
                                 defines={**render_defines(np.int8, np.int8, False, cfg), "part": "transpose"})
    assert b".entry transpose" in build.binary


def test_quantized_kernels_compile_for_cuda():
    """The im2col, row-sum and epilogue kernels, for every output dtype, compile for CUDA with NVRTC."""
    from xgpu.kernels.quantized import OUT_DTYPES
    from xgpu.kernels.quantized import TEMPLATE as QUANTIZED

    for out_dtype in OUT_DTYPES:
        build = xgpu.compile_offline(QUANTIZED, "cuda", "compute_80",
                                     defines={"dtype": np.dtype(np.uint8), "out_dtype": out_dtype, "x_sums": True})
        assert b".entry epilogue" in build.binary and b".entry im2col" in build.binary
