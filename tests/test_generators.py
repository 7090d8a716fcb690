"""xgpu.elementwise and xgpu.reduction on every device against numpy (float64 references), and the
array arithmetic built on them (numpy's semantics and type promotion)."""

from __future__ import annotations

import numpy as np
import pytest

import xgpu
from xgpu.errors import InvalidArgumentError, ShapeError, UnsupportedDtypeError
from xgpu.testing import poison

from .conftest import small

AXPBY = xgpu.elementwise("float32 *y, const float32 *x, const float32 *w, float32 a, float32 b",
                         "y = a * x + b * w", name="axpby")
SUMSQ = xgpu.reduction("const float32 *x, const float32 *w", "(x - w) * (x - w)", "a + b", "0", "float32",
                       name="sumsq")


@pytest.mark.parametrize("n", [1, 7, 127, 1000])
def test_elementwise_on_views_and_broadcasts(xgpu_device, n, rng):
    x_host = rng.standard_normal((3, n)).astype(np.float32)
    w_host = rng.standard_normal((1, n)).astype(np.float32)  # broadcast over the rows
    x, w = xgpu.asarray(x_host, xgpu_device), xgpu.asarray(w_host, xgpu_device)
    y = xgpu.asarray(np.full((3, n), poison(np.float32), np.float32), xgpu_device)
    AXPBY(y, x, w, 2.0, np.float32(-0.5))
    want = 2.0 * x_host.astype(np.float64) - 0.5 * w_host
    np.testing.assert_allclose(y.get(), want, rtol=1e-6, atol=1e-6)
    # a reversed, strided output and a transposed input: read and written in place
    big = xgpu.asarray(np.full((n, 6), poison(np.float32), np.float32), xgpu_device)
    AXPBY(big[::-1, 1::2].T, x, w, 1.0, 0.0)
    got = big.get()
    np.testing.assert_array_equal(got[::-1, 1::2].T, x_host)
    assert np.isnan(got[:, ::2]).all()


def test_elementwise_dtypes_and_index(xgpu_device):
    k = xgpu.elementwise("int64 *out, const float16 *h, uint8 s", "out = (int64_t)(h * 2.0f) + s + i", name="mixed_types")
    if not xgpu_device.supports("int64"):
        pytest.skip(f"int64 is not supported on {xgpu_device.id}")
    h_host = np.linspace(-4, 4, 127).astype(np.float16)
    out = xgpu.empty(127, np.int64, xgpu_device)
    k(out, xgpu.asarray(h_host, xgpu_device), 3)
    np.testing.assert_array_equal(out.get(), (h_host.astype(np.float32) * 2).astype(np.int64) + 3 + np.arange(127))
    half = xgpu.elementwise("float16 *y", "y = y * 0.5f + 1.0f", name="halfwrite")
    y = xgpu.asarray(h_host, xgpu_device)
    half(y)
    np.testing.assert_array_equal(y.get(), (h_host.astype(np.float32) * 0.5 + 1).astype(np.float16))


def test_generator_errors(xgpu_device):
    with pytest.raises(InvalidArgumentError, match="taken"):
        xgpu.elementwise("float32 *i", "i = 0")
    with pytest.raises(UnsupportedDtypeError, match="unknown type"):
        xgpu.elementwise("floot *y", "y = 0")
    with pytest.raises(InvalidArgumentError, match="declare w const"):
        xgpu.reduction("const float32 *x, float32 *w", "x", "a + b", "0", "float32")
    y = xgpu.zeros(4, np.float32, xgpu_device)
    with pytest.raises(UnsupportedDtypeError, match="astype"):
        AXPBY(y, xgpu.zeros(4, np.int32, xgpu_device), y, 1.0, 1.0)
    with pytest.raises(ShapeError, match="broadcast"):
        AXPBY(y, xgpu.zeros(5, np.float32, xgpu_device), y, 1.0, 1.0)
    with pytest.raises(ShapeError, match="full shape"):
        AXPBY(xgpu.zeros(1, np.float32, xgpu_device), y, y, 1.0, 1.0)
    with pytest.raises(InvalidArgumentError, match="whole number"):
        xgpu.elementwise("int32 *y, int32 s", "y = s", name="sets")(xgpu.zeros(2, np.int32, xgpu_device), 2.5)


@pytest.mark.parametrize("shape,axis", [((1,), None), ((1000,), None), ((7, 127), 0), ((7, 127), 1),
                                        ((3, 5, 127), -2)])
def test_reduction_against_numpy(xgpu_device, shape, axis, rng):
    x_host = rng.standard_normal(shape).astype(np.float32)
    w_host = rng.standard_normal(shape[-1:]).astype(np.float32)
    got = SUMSQ(xgpu.asarray(x_host, xgpu_device), xgpu.asarray(w_host, xgpu_device), axis=axis)
    want = ((x_host.astype(np.float64) - w_host) ** 2).sum(axis=axis)
    assert got.shape == np.shape(want) and got.dtype == np.float32
    length = x_host.size if axis is None else shape[axis]
    np.testing.assert_allclose(got.get(), want, rtol=1e-6 * length + 1e-6)


def test_reduction_large_takes_two_passes(xgpu_device, rng):
    n = small(xgpu_device, 300_001, 5_000)
    x_host = rng.uniform(-1, 1, n).astype(np.float32)
    x = xgpu.asarray(x_host, xgpu_device)
    want = x_host.astype(np.float64).sum()
    assert abs(float(xgpu.sum(x)) - want) <= 1e-6 * np.abs(x_host).sum()
    ints = xgpu.asarray((x_host * 1000).astype(np.int32), xgpu_device)
    total = xgpu.sum(ints)
    assert total.dtype == np.int64 and int(total) == int((x_host * 1000).astype(np.int32).astype(np.int64).sum())
    assert float(xgpu.max(x)) == x_host.max() and float(xgpu.min(x[::-3])) == x_host[::-3].min()


def test_arithmetic_matches_numpy(xgpu_device, rng):
    h = rng.standard_normal((7, 127)).astype(np.float32)
    hi = np.arange(7 * 127, dtype=np.int32).reshape(7, 127) - 300
    a, ai = xgpu.asarray(h, xgpu_device), xgpu.asarray(hi, xgpu_device)
    cases = [
        (a + 1, h + 1), (2.5 * a, 2.5 * h), (a - a[::-1], h - h[::-1]), (a / 3, h / 3), (a ** 2, h ** 2), (-a, -h),
        (1 - a.T, 1 - h.T), (a[:, :1] * a, h[:, :1] * h), (a < 0.1, h < 0.1), (a == a[0], h == h[0]),
        (abs(ai), abs(hi)), (ai * 2, hi * 2), (ai - 7, hi - 7), (ai >= 5, hi >= 5),
        (xgpu.exp(a), np.exp(h)), (xgpu.sqrt(xgpu.abs(a)), np.sqrt(np.abs(h))), (xgpu.log(abs(a) + 1), np.log(abs(h) + 1)),
        (xgpu.sum(a, axis=0), h.sum(0)), (xgpu.max(a, axis=1), h.max(1)), (xgpu.min(ai), hi.min()),
        (np.sum(a), h.sum()), (np.add(a, h), h + h), (h * a, h * h), (np.maximum(a, 0), np.maximum(h, 0)),
        (xgpu.where(a > 0, a, 0.0), np.where(h > 0, h, 0.0)), (xgpu.dot(a[0], a[1]), np.dot(h[0], h[1])),
        (a.mean(axis=1), h.mean(1)), (np.add.reduce(a, axis=1), h.sum(1)), (a.T @ a, h.T @ h),
    ]
    for i, (got, want) in enumerate(cases):
        want = np.asarray(want)
        host = got.get()
        assert host.dtype == want.dtype and host.shape == want.shape, (i, host.dtype, want.dtype, host.shape)
        if want.dtype.kind in "biu":
            np.testing.assert_array_equal(host, want, err_msg=str(i))  # integers and booleans: exact
        else:
            np.testing.assert_allclose(host, want, rtol=2e-5, atol=1e-5 * max(1, h.shape[0]), err_msg=str(i))
    b = a.copy()
    b += 1
    b *= a
    np.testing.assert_allclose(b.get(), (h + 1) * h, rtol=1e-6)
    b[1:] -= b[:-1]  # in place over a shifted view of itself: numpy's result
    want = (h + 1) * h
    want[1:] -= want[:-1].copy()
    np.testing.assert_allclose(b.get(), want, rtol=1e-5, atol=1e-6)


def test_promotion_and_clear_errors(xgpu_device):
    a = xgpu.asarray(np.arange(5, dtype=np.int32), xgpu_device)
    assert (a + np.int8(1)).dtype == np.int32 and (a + 1).dtype == np.int32
    if xgpu_device.fp64:
        assert (a * 0.5).dtype == np.float64 and (a / 2).get().tolist() == [0, 0.5, 1, 1.5, 2]
    if not xgpu_device.fp64:
        with pytest.raises(UnsupportedDtypeError, match="float64"):
            a / 2  # numpy gives float64 here, which this device lacks
    f = xgpu.asarray(np.ones(5, np.float32), xgpu_device)
    assert (f * 2.5).dtype == np.float32 and (f < 2).dtype == np.bool_ and (f + f.astype(np.float16)).dtype == np.float32
    with pytest.raises(InvalidArgumentError, match="no xgpu kernel"):
        np.arctan2(f, f)
    with pytest.raises(InvalidArgumentError, match="no xgpu kernel"):
        np.multiply.accumulate(f)
    # np.add.accumulate and np.cumsum run xgpu.cumsum on the device
    for got in (np.add.accumulate(f), np.cumsum(f), f.cumsum()):
        assert isinstance(got, xgpu.Array) and got.get().tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(ShapeError, match="broadcast"):
        f + xgpu.ones(4, np.float32, xgpu_device)
    # integer powers are exact, as numpy's (repeated squaring, wrapping on overflow)
    np.testing.assert_array_equal((a ** 3).get(), np.arange(5, dtype=np.int32) ** 3)
    assert (a ** 3).dtype == np.int32
    if xgpu_device.supports("int64"):
        powers = 2 ** xgpu.asarray(np.arange(40, dtype=np.int64), xgpu_device)
        np.testing.assert_array_equal(powers.get(), 2 ** np.arange(40))


@pytest.mark.parametrize("shape,axis", [((6, 1000), 0), ((1000, 6), 0), ((3, 1000, 5), 1), ((4000, 3), 1),
                                        ((2, 3, 70), None), ((5, 700), -1)])
def test_reduction_layouts(xgpu_device, shape, axis, rng):
    """Every kernel of reduction.mako: columns down a strided leading axis, short rows, a middle axis, long
    rows split over work-groups; sums, max, min and mean beside numpy, into a poisoned out= too."""
    if xgpu_device.is_simulator and np.prod(shape) > 6000:
        shape = tuple(min(s, 40) for s in shape)
    h = rng.standard_normal(shape).astype(np.float32)
    a = xgpu.asarray(h, xgpu_device)
    h64 = h.astype(np.float64)
    length = h.size if axis is None else shape[axis]
    for got, want in ((xgpu.sum(a, axis=axis), h64.sum(axis=axis)), (xgpu.mean(a, axis=axis), h64.mean(axis=axis))):
        assert got.shape == np.shape(want) and got.dtype == np.float32
        np.testing.assert_allclose(got.get(), want, rtol=1e-5, atol=1e-6 * length)
    np.testing.assert_array_equal(xgpu.max(a, axis=axis).get(), h.max(axis=axis))
    np.testing.assert_array_equal(xgpu.min(a, axis=axis).get(), h.min(axis=axis))
    ints = (h * 100).astype(np.int32)
    np.testing.assert_array_equal(xgpu.sum(xgpu.asarray(ints, xgpu_device), axis=axis).get(),
                                  ints.sum(axis=axis, dtype=np.int64))
    out_shape = np.shape(h64.sum(axis=axis))
    out = xgpu.asarray(np.full(out_shape, poison(np.float32), np.float32), xgpu_device)
    assert SUMSQ(a, xgpu.zeros(shape[-1:], np.float32, xgpu_device), axis=axis, out=out) is out
    np.testing.assert_allclose(out.get(), (h64 ** 2).sum(axis=axis), rtol=1e-5, atol=1e-6 * length)


CUMSUM_F = xgpu.scan("const float32 *x", "x", "a + b", "0", "float32", name="scan_f32")
EXCLUSIVE_I = xgpu.scan("const int32 *x", "x", "a + b", "0", "int32", inclusive=False, name="exscan_i32")
RUNNING_MAX = xgpu.scan("const float32 *x, float32 s", "x * s", "a > b ? a : b", "-INFINITY", "float32",
                        name="running_max")


@pytest.mark.parametrize("n", [1, 7, 127, 1000, 10**6])
def test_scan_against_numpy(xgpu_device, n, rng):
    if xgpu_device.is_simulator and n > 1000:
        pytest.skip(f"{xgpu_device.id} is a simulator: 10**6 elements take minutes there (sizes up to 1000 run)")
    h = rng.uniform(-1, 1, n).astype(np.float32)
    x = xgpu.asarray(h, xgpu_device)
    out = xgpu.asarray(np.full(n, poison(np.float32), np.float32), xgpu_device)
    assert CUMSUM_F(x, out=out) is out
    want = np.cumsum(h.astype(np.float64))
    # float32 running sums: the error grows with the sum of magnitudes so far
    np.testing.assert_allclose(out.get(), want, rtol=0, atol=1e-6 * np.cumsum(np.abs(h)).max() + 1e-6)
    hi = rng.integers(-1000, 1000, n).astype(np.int32)
    got = EXCLUSIVE_I(xgpu.asarray(hi, xgpu_device))
    np.testing.assert_array_equal(got.get(), np.concatenate([[0], np.cumsum(hi)[:-1]]).astype(np.int32))
    np.testing.assert_array_equal(RUNNING_MAX(x, 2.0).get(), np.maximum.accumulate(h * 2))
    total = xgpu.cumsum(xgpu.asarray(hi, xgpu_device))
    assert total.dtype == np.cumsum(hi).dtype
    np.testing.assert_array_equal(total.get(), np.cumsum(hi))


@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1])
def test_cumsum_axes(xgpu_device, axis, rng):
    h = rng.standard_normal((3, small(xgpu_device, 301, 31), 5)).astype(np.float32)
    x = xgpu.asarray(h, xgpu_device)
    want = np.cumsum(h.astype(np.float64), axis=axis)
    got = xgpu.cumsum(x, axis=axis)
    assert got.shape == want.shape and got.dtype == np.float32 and got.is_contiguous
    atol = 1e-6 * np.abs(h).sum()  # float32 running sums round as numpy's own cumsum does
    np.testing.assert_allclose(got.get(), want, rtol=1e-5, atol=atol)
    view = x[:, ::-2]  # a strided view: copied once to rows
    np.testing.assert_allclose(xgpu.cumsum(view, axis=axis).get(), np.cumsum(h[:, ::-2].astype(np.float64),
                                                                              axis=axis), rtol=1e-5, atol=atol)
    if xgpu_device.fp64:
        np.testing.assert_allclose(xgpu.cumsum(x, axis=axis, dtype=np.float64).get(), want, rtol=1e-12)


def test_scan_errors(xgpu_device):
    with pytest.raises(InvalidArgumentError, match="declare y const"):
        xgpu.scan("float32 *y", "y", "a + b", "0", "float32")
    with pytest.raises(InvalidArgumentError, match="scan_expr"):
        xgpu.scan("const float32 *y", "y", "", "0", "float32")
    x = xgpu.zeros((2, 3), np.float32, xgpu_device)
    with pytest.raises(ShapeError, match="axis"):
        CUMSUM_F(x, axis=2)
    with pytest.raises(ShapeError, match="out must be"):
        CUMSUM_F(x, axis=1, out=xgpu.zeros(6, np.float32, xgpu_device))
    with pytest.raises(UnsupportedDtypeError, match="astype"):
        CUMSUM_F(xgpu.zeros(3, np.int32, xgpu_device))
    with pytest.raises(InvalidArgumentError, match="xgpu array"):
        xgpu.cumsum(np.ones(3))
    assert xgpu.cumsum(xgpu.zeros((0, 4), np.float32, xgpu_device), axis=1).shape == (0, 4)


@pytest.mark.parametrize("interleave", [True, False])
def test_gpu_forms_on_every_device(xgpu_device, interleave, monkeypatch, rng):
    """The GPU forms of the reduction and scan kernels (split rows with interleaved reads, columns one per
    work-item, tiled scans with a local-memory scan per tile) run on every device here, whatever its type."""
    from xgpu import _elementwise

    plain = _elementwise._Plan.__init__

    def as_gpu(self, device):
        plain(self, device)
        self.cpu, self.interleave, self.wg, self.cols, self.busy, self.groups = False, interleave, 64, 64, 4096, 16

    monkeypatch.setattr(_elementwise._Plan, "__init__", as_gpu)
    kernels = (xgpu.reduction("const float32 *x", "x", "a + b", "0", "float32", name=f"gsum{int(interleave)}"),
               xgpu.scan("const float32 *x", "x", "a + b", "0", "float32", name=f"gscan{int(interleave)}"))
    for shape, axis in (((small(xgpu_device, 5000, 600),), None), ((7, 130), 0), ((3, 70, 5), 1), ((5, 301), 1)):
        h = rng.standard_normal(shape).astype(np.float32)
        x = xgpu.asarray(h, xgpu_device)
        h64 = h.astype(np.float64)
        np.testing.assert_allclose(kernels[0](x, axis=axis).get(), h64.sum(axis=axis), rtol=1e-5,
                                   atol=1e-5 * np.abs(h).sum())
        np.testing.assert_allclose(kernels[1](x, axis=axis).get(), np.cumsum(h64, axis=axis), rtol=1e-5,
                                   atol=1e-6 * np.abs(h).sum())


def test_bench_reduce_runs_small(capsys):
    """The benchmark command (docs/generators.md, Performance) on a tiny input: every case, checked
    against numpy inside, and its table."""
    from xgpu.tools import bench_reduce

    assert bench_reduce.main(["--n", "3000", "--repeats", "1", xgpu.get_device().id]) == 0
    out = capsys.readouterr().out
    assert all(case in out for case in bench_reduce.DEFAULT_CASES) and "of copy" in out
    with pytest.raises(SystemExit):
        bench_reduce.main(["--n", "1500"])


def test_sources_render_for_reading():
    """k.source(backend) of each generator renders every kernel of its template, for any backend."""
    assert "sumsq_rowwise" in SUMSQ.source("opencl")
    for backend in ("opencl", "cuda"):
        text = CUMSUM_F.source(backend)
        assert all(k in text for k in ("scan_f32_totals", "scan_f32_offsets", "scan_f32_seq"))
        assert "sumsq_cols" in SUMSQ.source(backend) and "axpby" in AXPBY.source(backend)


@pytest.mark.parametrize("dtype", [np.float16, xgpu.bfloat16])
@pytest.mark.parametrize("shape,axis", [((1000,), None), ((40, 25), 0), ((40, 25), 1), ((7,), None)])
def test_reductions_and_scans_of_16_bit_floats(xgpu_device, dtype, shape, axis, rng):
    """float16 and bfloat16 sum in float32 and round once at the end: sums, means, cumsums, max, min and
    elementwise functions of them return their own dtype, within a few units of its last place."""
    host = rng.uniform(0.5, 1.5, shape).astype(dtype)
    a = xgpu.asarray(host, xgpu_device)
    exact = host.astype(np.float64)
    tol = 8e-3 if np.dtype(dtype) == np.dtype(xgpu.bfloat16) else 2e-3
    for got, ref in ((xgpu.sum(a, axis=axis), exact.sum(axis=axis)), (xgpu.mean(a, axis=axis), exact.mean(axis=axis)),
                     (xgpu.cumsum(a, axis=axis), np.cumsum(exact, axis=axis)),
                     (xgpu.max(a, axis=axis), exact.max(axis=axis)), (xgpu.min(a, axis=axis), exact.min(axis=axis)),
                     (xgpu.sqrt(a), np.sqrt(exact)), (xgpu.abs(-a), exact)):
        value = got.get()
        assert value.dtype == np.dtype(dtype)
        np.testing.assert_allclose(value.astype(np.float64), ref, rtol=tol)
