"""float16 arithmetic: hfloat_t is half precision where the device computes in it and float elsewhere,
chosen when rendering; gemm and conv2d with accumulate="float16" on such devices, a clear error elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

import xgpu
from xgpu.errors import InvalidArgumentError, TemplateError, UnsupportedDtypeError
from xgpu.reference import conv2d_reference, gemm_reference
from xgpu.testing import assert_close

# a running sum of products, as a GEMM's inner loop does it, in hfloat_t
DOT = """
KERNEL void dots(GLOBAL_MEM half_t* RESTRICT out, GLOBAL_MEM float* RESTRICT wide,
                 GLOBAL_MEM const half_t* RESTRICT a, GLOBAL_MEM const half_t* RESTRICT b,
                 const index_t k, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
        hfloat_t acc = (hfloat_t)0;
        for (index_t j = 0; j < k; ++j)
            acc = FMA((hfloat_t)LOAD_HALF(a, i * k + j), (hfloat_t)LOAD_HALF(b, i * k + j), acc);
        const hfloat_t twice = acc + acc;
        const hfloat_t scaled = (twice * (hfloat_t)0.5f - acc) / (hfloat_t)2.0f;  // 0, through - and /
        wide[i] = (float)(acc + scaled);
        STORE_HALF(out, i, (float)(acc + scaled));
#if defined(XGPU_HALF_ARITHMETIC)
        wide[n + i] = 1.0f;
#else
        wide[n + i] = 0.0f;
#endif
    }
}
"""


def _half_fma_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The sequence of fused multiply-adds, each rounded once to float16 (float64 holds each exactly here)."""
    acc = np.zeros(a.shape[0], np.float16)
    for j in range(a.shape[1]):
        acc = (a[:, j].astype(np.float64) * b[:, j].astype(np.float64) + acc.astype(np.float64)).astype(np.float16)
    return acc


def _float_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    acc = np.zeros(a.shape[0], np.float32)
    for j in range(a.shape[1]):
        acc = (a[:, j].astype(np.float64) * b[:, j].astype(np.float64) + acc.astype(np.float64)).astype(np.float32)
    return acc


def _run_dots(device, half_arithmetic, rng, n=257, k=64):
    a = rng.uniform(-1, 1, (n, k)).astype(np.float16)
    b = rng.uniform(-1, 1, (n, k)).astype(np.float16)
    out = xgpu.asarray(np.full(n, np.nan, np.float16), device)
    wide = xgpu.asarray(np.full(2 * n, np.nan, np.float32), device)
    program = xgpu.compile(DOT, device, defines={"half_arithmetic": half_arithmetic})
    program.dots(out, wide, xgpu.asarray(a, device), xgpu.asarray(b, device), k, n, global_size=n)
    w = wide.get()
    return a, b, out.get(), w[:n], w[n:]


def test_hfloat_is_half_where_the_device_computes_in_it(xgpu_device, rng):
    native = bool(xgpu_device.supports("float16", arithmetic=True))
    a, b, out, wide, flag = _run_dots(xgpu_device, "auto", rng)
    assert (flag == (1.0 if native else 0.0)).all()
    if native:  # every operation rounded to float16, as the device's half FMA does it
        assert (wide == _half_fma_reference(a, b).astype(np.float32)).all()
    else:  # the fallback: float arithmetic
        assert (wide == _float_reference(a, b)).all()
    assert (out == wide.astype(np.float16)).all()


def test_emulated_is_float_everywhere_and_native_is_refused_without_it(xgpu_device, rng):
    a, b, _, wide, flag = _run_dots(xgpu_device, "emulated", rng)
    assert (flag == 0).all() and (wide == _float_reference(a, b)).all()
    if not xgpu_device.supports("float16", arithmetic=True):
        with pytest.raises(TemplateError, match=r"float16 arithmetic.*half_arithmetic='auto'"):
            xgpu.compile(DOT, xgpu_device, defines={"half_arithmetic": "native"})
    with pytest.raises(TemplateError, match="half_arithmetic must be"):
        xgpu.compile(DOT, xgpu_device, defines={"half_arithmetic": "yes"})


def test_words_compile_for_gpus(xgpu_target):
    """On NVIDIA targets (sm_75 and later) hfloat_t is PTX f16 arithmetic; elsewhere the compiler's cl_khr_fp16."""
    assert xgpu.compile_offline(DOT, target=xgpu_target.name).binary


@pytest.mark.parametrize("m,n,k,trans_a,trans_b", [(1, 7, 127, False, True), (127, 65, 300, False, False),
                                                   (33, 17, 9, True, False), (64, 64, 64, True, True)])
def test_gemm_float16_sums(xgpu_device, m, n, k, trans_a, trans_b, rng):
    a = rng.uniform(-1, 1, (k, m) if trans_a else (m, k)).astype(np.float16)
    b = rng.uniform(-1, 1, (n, k) if trans_b else (k, n)).astype(np.float16)
    c0 = rng.uniform(-1, 1, (m, n)).astype(np.float16)
    ga, gb, c = xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), xgpu.asarray(c0, xgpu_device)
    if not xgpu_device.supports("float16", arithmetic=True):
        with pytest.raises(UnsupportedDtypeError, match=r"no float16 arithmetic.*accumulate='float32'"):
            xgpu.gemm(ga, gb, c, accumulate="float16", trans_a=trans_a, trans_b=trans_b)
        return
    xgpu.gemm(ga, gb, c, alpha=-0.5, beta=2.0, trans_a=trans_a, trans_b=trans_b, accumulate="float16")
    ref = gemm_reference(a, b, alpha=-0.5, beta=2.0, c=c0, trans_a=trans_a, trans_b=trans_b)
    # half-precision sums: about sqrt(K) roundings of 2**-11 each, against float32's one rounding at the store
    assert_close(c.get(), ref, rtol=2.0**-11 * 4 * np.sqrt(k))
    exact32 = xgpu.gemm(ga, gb, trans_a=trans_a, trans_b=trans_b).get()
    assert_close(exact32, gemm_reference(a, b, trans_a=trans_a, trans_b=trans_b), dtype=np.float16, terms=k)


def test_conv2d_float16_sums(xgpu_device, rng):
    x = rng.uniform(-1, 1, (2, 6, 9, 8)).astype(np.float16)
    w = rng.uniform(-1, 1, (5, 6, 3, 3)).astype(np.float16)
    bias = rng.uniform(-1, 1, 5).astype(np.float16)
    gx, gw = xgpu.asarray(x, xgpu_device), xgpu.asarray(w, xgpu_device)
    if not xgpu_device.supports("float16", arithmetic=True):
        with pytest.raises(UnsupportedDtypeError, match="no float16 arithmetic"):
            xgpu.conv2d(gx, gw, padding=1, accumulate="float16")
        return
    y = xgpu.conv2d(gx, gw, xgpu.asarray(bias, xgpu_device), padding=1, stride=(2, 1), accumulate="float16")
    assert y.dtype == np.float16
    assert_close(y.get(), conv2d_reference(x, w, bias, (2, 1), (1, 1, 1, 1)), rtol=2.0**-11 * 4 * np.sqrt(6 * 9))


def test_accumulate_is_checked(xgpu_device):
    f32 = xgpu.zeros((3, 4), np.float32, xgpu_device)
    with pytest.raises(InvalidArgumentError, match="accumulate must be 'float32'"):
        xgpu.gemm(f32, f32.T, accumulate="half")
    with pytest.raises(UnsupportedDtypeError, match="takes float16 operands"):
        xgpu.gemm(f32, f32.T, accumulate="float16")
    i8 = xgpu.zeros((3, 4), np.int8, xgpu_device)
    with pytest.raises(InvalidArgumentError, match="exactly in int32"):
        xgpu.gemm(i8, i8.T, accumulate="float16")
    if xgpu_device.supports("float16", arithmetic=True):
        x = xgpu.zeros((1, 4, 5, 5), np.float16, xgpu_device)
        with pytest.raises(InvalidArgumentError, match="NCHW layers with groups=1"):
            xgpu.conv2d(x, xgpu.zeros((4, 2, 3, 3), np.float16, xgpu_device), groups=2, accumulate="float16")


# the same running sum of products, eight rows at once in a VEC(hfloat, 8): row r, step j is a[j * rows + r]
VDOT = """
KERNEL void vdots(GLOBAL_MEM half_t* RESTRICT out, GLOBAL_MEM float* RESTRICT wide,
                  GLOBAL_MEM const half_t* RESTRICT a, GLOBAL_MEM const half_t* RESTRICT b,
                  const index_t k, const index_t rows)
{
    const index_t r = GLOBAL_ID(0) * 8;
    if (r < rows) {
        VEC(hfloat, 8) acc = VSPLAT(hfloat, 8, 0);
        for (index_t j = 0; j < k; ++j)
            acc = VFMA(VLOAD_HFLOAT(8, a, j * rows + r), VLOAD_HFLOAT(8, b, j * rows + r), acc);
        const VEC(hfloat, 8) twice = VADD(acc, acc);
        VEC(hfloat, 8) zero = VSUB(VMUL(twice, VSPLAT(hfloat, 8, 0.5f)), acc);  // 0, through + - * and splat
        VSET(zero, 3, VGET(zero, 3) * (hfloat_t)2.0f);
        const VEC(hfloat, 8) result = VADD(acc, VDIV(zero, VSPLAT(hfloat, 8, 4)));
        for (int e = 0; e < 8; ++e)
            wide[r + e] = (float)VGET(result, e);
        VSTORE_HFLOAT(8, result, out, r);
#if defined(XGPU_HALF_ARITHMETIC)
        wide[rows + r / 8] = 1.0f;
#else
        wide[rows + r / 8] = 0.0f;
#endif
    }
}
"""


def _run_vdots(device, half_arithmetic, rng, rows=8 * 33, k=61):
    a = rng.uniform(-1, 1, (rows, k)).astype(np.float16)
    b = rng.uniform(-1, 1, (rows, k)).astype(np.float16)
    out = xgpu.asarray(np.full(rows, np.nan, np.float16), device)
    wide = xgpu.asarray(np.full(rows + rows // 8, np.nan, np.float32), device)
    program = xgpu.compile(VDOT, device, defines={"half_arithmetic": half_arithmetic})
    program.vdots(out, wide, xgpu.asarray(np.ascontiguousarray(a.T), device),
                  xgpu.asarray(np.ascontiguousarray(b.T), device), k, rows, global_size=rows // 8)
    w = wide.get()
    return a, b, out.get(), w[:rows], w[rows:]


@pytest.mark.parametrize("half_arithmetic", ["auto", "emulated"])
def test_half_vectors_follow_hfloat(xgpu_device, half_arithmetic, rng):
    """VEC(hfloat, 8) is halfN where hfloat_t is half (each lane's FMA rounded to float16), floatN elsewhere."""
    native = half_arithmetic == "auto" and bool(xgpu_device.supports("float16", arithmetic=True))
    a, b, out, wide, flag = _run_vdots(xgpu_device, half_arithmetic, rng)
    assert (flag == (1.0 if native else 0.0)).all()
    if native:
        assert (wide == _half_fma_reference(a, b).astype(np.float32)).all()
    else:  # float arithmetic, rounded to float16 once at the store
        assert (wide == _float_reference(a, b)).all()
    assert (out == wide.astype(np.float16)).all()


def test_half_vector_words_compile_for_gpus(xgpu_target):
    """NVIDIA targets: a struct of PTX f16 lanes (auto) or VEC(float, 8) (emulated); others: halfN or floatN.
    The two renderings compile to different code: the choice reaches the compiler."""
    half, single = (xgpu.compile_offline(VDOT, target=xgpu_target.name, defines={"half_arithmetic": h}).binary
                    for h in ("auto", "emulated"))
    assert half and single and half != single
