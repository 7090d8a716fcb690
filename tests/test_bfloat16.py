"""bfloat16 storage: the conversion words against ml_dtypes bit for bit on every device, arrays, and the
GEMM and conv2d against float64 references."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import xgpu
from xgpu.errors import UnsupportedDtypeError
from xgpu.testing import assert_close

BF16 = np.dtype(ml_dtypes.bfloat16)

CONVERT = """
KERNEL void convert(GLOBAL_MEM float* RESTRICT wide, GLOBAL_MEM bfloat16_t* RESTRICT again,
                    GLOBAL_MEM bfloat16_t* RESTRICT narrowed, GLOBAL_MEM const bfloat16_t* RESTRICT h,
                    GLOBAL_MEM const float* RESTRICT f, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
        const float x = LOAD_BF16(h, i);
        wide[i] = x;
        STORE_BF16(again, i, x);
        STORE_BF16(narrowed, i, f[i]);
    }
}

KERNEL void convert_vectors(GLOBAL_MEM float* RESTRICT wide, GLOBAL_MEM bfloat16_t* RESTRICT again,
                            GLOBAL_MEM bfloat16_t* RESTRICT narrowed, GLOBAL_MEM const bfloat16_t* RESTRICT h,
                            GLOBAL_MEM const float* RESTRICT f, const index_t n)
{
    const index_t i = GLOBAL_ID(0) * 8;
    if (i < n) {
        const VEC(float, 8) x = VLOAD_BF16(8, h, i);
        VSTORE(8, x, wide, i);
        VSTORE_BF16(8, x, again, i);
        VSTORE_BF16(8, VLOAD(8, f, i), narrowed, i);
    }
}
"""


def _float32_cases() -> np.ndarray:
    """float32 bit patterns that exercise the rounding: ties to even and odd, carries into the exponent,
    overflow to infinity, denormals, signed zeros, infinities and NaNs with payloads, and random ones."""
    edges = [0x00000000, 0x80000000, 0x00000001, 0x00008000, 0x00018000, 0x00007FFF, 0x007FFFFF, 0x00800000,
             0x3F808000, 0x3F818000, 0x3F80FFFF, 0x3F7FFFFF, 0x3FFF8000, 0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF,
             0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7F800001, 0x7FC00000, 0x7FBFFFFF, 0xFF800001, 0xFFFFFFFF,
             0x7F810000, 0x3F800001, 0xBF808000, 0xBF818000]
    rng = np.random.default_rng(7)
    random = rng.integers(0, 2**32, 65536 - len(edges), dtype=np.uint64).astype(np.uint32)
    return np.concatenate([np.array(edges, np.uint32), random]).view(np.float32)


def _bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).view(np.uint16)


@pytest.mark.parametrize("vectors", [False, True], ids=["scalar", "vec8"])
def test_conversions_match_ml_dtypes_for_every_bit_pattern(xgpu_device, vectors):
    """All 65536 bfloat16 patterns widen exactly and narrow back to themselves (a NaN to the quiet NaN
    0x7fc0 with its sign, as ml_dtypes converts); float32 values narrow with round-to-nearest-even."""
    n = 65536
    h = np.arange(n, dtype=np.uint32).astype(np.uint16).view(BF16)
    f = _float32_cases()
    program = xgpu.compile(CONVERT, xgpu_device)
    wide = xgpu.asarray(np.full(n, np.nan, np.float32), xgpu_device)
    again = xgpu.asarray(np.full(n, 0xDEAD, np.uint16).view(BF16), xgpu_device)
    narrowed = xgpu.asarray(np.full(n, 0xDEAD, np.uint16).view(BF16), xgpu_device)
    args = (wide, again, narrowed, xgpu.asarray(h, xgpu_device), xgpu.asarray(f, xgpu_device), n)
    if vectors:
        program.convert_vectors(*args, global_size=n // 8)
    else:
        program.convert(*args, global_size=n)
    assert (wide.get().view(np.uint32) == np.arange(n, dtype=np.uint32) << 16).all()
    with np.errstate(invalid="ignore"):
        want_again = h.astype(np.float32).astype(BF16)
        want_narrowed = f.astype(BF16)
    got, want = _bits(again.get()), _bits(want_again)
    assert (got == want).all(), f"{int((got != want).sum())} patterns differ, first at {int(np.argmax(got != want)):#06x}"
    # the NaNs are the canonical quiet ones, with their sign
    nan = np.isnan(h.astype(np.float32))
    assert set(got[nan].tolist()) == {0x7FC0, 0xFFC0}
    got, want = _bits(narrowed.get()), _bits(want_narrowed)
    bad = np.flatnonzero(got != want)
    assert not bad.size, (f"{bad.size} float32 values round differently, first {f.view(np.uint32)[bad[0]]:#010x}: "
                          f"got {got[bad[0]]:#06x}, ml_dtypes {want[bad[0]]:#06x}")


def test_words_compile_for_cuda_and_gpus(xgpu_target):
    """The same kernels build for every vendor's GPUs (CUDA's words are integer operations too)."""
    build = xgpu.compile_offline(CONVERT, target=xgpu_target.name)
    assert build.binary


def test_arrays_asarray_get_astype(xgpu_device, rng):
    host = rng.uniform(-3, 3, (7, 127)).astype(xgpu.bfloat16)
    assert xgpu.bfloat16 is ml_dtypes.bfloat16
    assert xgpu.ctype(xgpu.bfloat16) == "bfloat16_t"
    assert xgpu_device.supports(xgpu.bfloat16) and not xgpu_device.supports("bfloat16", arithmetic=True)
    x = xgpu.asarray(host, xgpu_device)
    assert x.dtype == BF16 and x.nbytes == 7 * 127 * 2
    assert (_bits(x.get()) == _bits(host)).all()
    # conversions on the device as numpy/ml_dtypes convert on the host
    f32 = x.astype(np.float32).get()
    assert (f32 == host.astype(np.float32)).all()
    wide = rng.uniform(-1e4, 1e4, 1000).astype(np.float32)
    assert (_bits(xgpu.asarray(wide, xgpu_device).astype(xgpu.bfloat16).get()) == _bits(wide.astype(BF16))).all()
    half = xgpu.asarray(wide, xgpu_device, dtype=np.float16).astype(xgpu.bfloat16).get()
    assert (_bits(half) == _bits(wide.astype(np.float16).astype(np.float32).astype(BF16))).all()
    # views, fills and a reduction (summed in float32)
    assert (_bits(x[2:5, ::3].get()) == _bits(host[2:5, ::3])).all()
    assert (xgpu.zeros((5,), xgpu.bfloat16, xgpu_device).get().astype(np.float32) == 0).all()
    total = float(xgpu.sum(xgpu.asarray(np.abs(host), xgpu_device)).get().astype(np.float32))
    assert total == pytest.approx(float(np.abs(host).astype(np.float64).sum()), rel=1e-2)


@pytest.mark.parametrize("m", [1, 3, 8])
def test_skinny_gemm_x_times_w_transposed(xgpu_device, m, rng):
    """``x @ W.T`` with bfloat16 weights (the memory-bound shape of inference): float32 sums, one rounding."""
    k, n = (200, 65) if xgpu_device.is_simulator else (1000, 517)
    x = rng.uniform(-1, 1, (m, k)).astype(BF16)
    w = rng.uniform(-1, 1, (n, k)).astype(BF16)
    out = xgpu.asarray(x, xgpu_device) @ xgpu.asarray(w, xgpu_device).T
    assert out.dtype == BF16 and out.shape == (m, n)
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    # a float32 sum rounded once to bfloat16: within 2**-8 of each element (plus the float32 sum's error)
    got = out.get().astype(np.float64)
    assert (np.abs(got - ref) <= 2.0**-8 * np.abs(ref) + k * 2.0**-24 * np.abs(x.astype(np.float64)).max()).all()
    assert_close(got, ref, dtype=BF16, terms=k)


def test_conv2d_bfloat16_with_bias(xgpu_device, rng):
    c, k = (3, 4) if xgpu_device.is_simulator else (16, 24)
    x = rng.uniform(-1, 1, (2, c, 11, 9)).astype(BF16)
    w = rng.uniform(-1, 1, (k, c, 3, 3)).astype(BF16)
    b = rng.uniform(-1, 1, (k,)).astype(BF16)
    y = xgpu.conv2d(xgpu.asarray(x, xgpu_device), xgpu.asarray(w, xgpu_device), xgpu.asarray(b, xgpu_device),
                    padding=1, stride=(1, 2))
    from xgpu.reference import conv2d_reference

    assert y.dtype == BF16
    assert_close(y.get(), conv2d_reference(x, w, b, (1, 2), (1, 1, 1, 1)), dtype=BF16, terms=c * 9)


def test_mixed_dtypes_are_refused(xgpu_device):
    a = xgpu.zeros((3, 4), xgpu.bfloat16, xgpu_device)
    with pytest.raises(UnsupportedDtypeError, match="different dtypes"):
        xgpu.gemm(a, xgpu.zeros((4, 2), np.float32, xgpu_device))
