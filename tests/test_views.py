"""Views (basic indexing, transposes, reshapes), assignment into them, what a kernel receives for one,
and the everyday array operations (astype, fill, copy, ones/full/arange/*_like, to, get(out=), pickling)."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

import xgpu
from xgpu.errors import DeviceNotFoundError, InvalidIndexError, ShapeError, UnsupportedDtypeError
from xgpu.testing import poison

KEYS = [
    (0,), (-1,), (slice(None, None, -1),), (slice(1, None, 2),), (Ellipsis, 3), (None, 1, slice(2, None, 3)),
    (slice(None), None, slice(None, None, -2), 0), (2, -3, Ellipsis, None), (slice(5, 0, -2), slice(None, 1)),
    (slice(None, None, 7), 1, 4),
]


@pytest.mark.parametrize("key", KEYS, ids=[str(k) for k in KEYS])
def test_basic_indexing_matches_numpy_and_shares_memory(xgpu_device, key):
    host = np.arange(7 * 5 * 6, dtype=np.float32).reshape(7, 5, 6)
    a = xgpu.asarray(host, xgpu_device)
    view = a[key]
    assert view.shape == host[key].shape and view.strides == host[key].strides
    assert xgpu.shares_memory(view, a)
    np.testing.assert_array_equal(view.get(), host[key])
    # a write through the view lands in the base, nowhere else
    view.fill(-1)
    expected = host.copy()
    expected[key] = -1
    np.testing.assert_array_equal(a.get(), expected)


def test_views_of_views_transpose_swapaxes(xgpu_device):
    host = np.arange(127 * 3 * 2, dtype=np.int32).reshape(127, 3, 2)
    a = xgpu.asarray(host, xgpu_device)
    cases = [
        (a.T, host.T),
        (a.transpose(1, 0, 2), host.transpose(1, 0, 2)),
        (a.transpose((2, 0, 1)), host.transpose((2, 0, 1))),
        (a.swapaxes(0, 2)[::-3], host.swapaxes(0, 2)[::-3]),
        (a[::-1].T[1:, 1], host[::-1].T[1:, 1]),
        (a[5].T, host[5].T),
    ]
    for got, want in cases:
        assert got.strides == want.strides
        np.testing.assert_array_equal(got.get(), want)  # integers: exact
    with pytest.raises(ShapeError, match="transpose"):
        a.transpose(0, 1)
    with pytest.raises(ShapeError, match="swapaxes"):
        a.swapaxes(0, 3)


def test_reshape_is_a_view_where_numpy_makes_one(xgpu_device):
    host = np.arange(1000, dtype=np.float32).reshape(10, 100)
    a = xgpu.asarray(host, xgpu_device)
    v = a[2:4].reshape(-1, 25)  # contiguous rows: a view
    assert xgpu.shares_memory(v, a) and v.offset == 200 * 4
    np.testing.assert_array_equal(v.get(), host[2:4].reshape(-1, 25))
    c = a.T.reshape(1000)  # the transpose cannot be flattened in place: a copy, as in numpy
    assert not xgpu.shares_memory(c, a)
    np.testing.assert_array_equal(c.get(), host.T.reshape(1000))
    s = a[:, ::2].reshape(10, 5, 10)  # a step inside a row: still a view
    assert xgpu.shares_memory(s, a)
    np.testing.assert_array_equal(s.get(), host[:, ::2].reshape(10, 5, 10))
    np.testing.assert_array_equal(a[3].ravel().get(), host[3])


def test_setitem_from_scalars_arrays_and_host(xgpu_device):
    host = np.arange(7 * 127, dtype=np.float32).reshape(7, 127)
    a = xgpu.asarray(host, xgpu_device)
    a[1:6:2, ::-3] = 2.5
    host[1:6:2, ::-3] = 2.5
    a[0] = xgpu.asarray(np.full(127, 9, np.float32), xgpu_device)
    host[0] = 9
    a[..., 4] = xgpu.asarray(np.arange(7, dtype=np.float32), xgpu_device)  # a strided column
    host[..., 4] = np.arange(7)
    a[2:4] = xgpu.asarray(np.arange(127, dtype=np.float32), xgpu_device)  # broadcast over rows
    host[2:4] = np.arange(127)
    a[6, :5] = [1, 2, 3, 4, 5]  # host data
    host[6, :5] = [1, 2, 3, 4, 5]
    a[1:, 1:] = a[:-1, :-1]  # overlapping source and destination: read before written
    host[1:, 1:] = host[:-1, :-1].copy()
    a[...] = a.astype(np.int32).astype(np.float32)
    host[...] = host.astype(np.int32)
    np.testing.assert_array_equal(a.get(), host)
    b = xgpu.zeros((3, 4), np.float32, xgpu_device)
    with pytest.raises(ShapeError, match="shape"):
        b[0] = xgpu.zeros(5, np.float32, xgpu_device)
    with pytest.raises(ShapeError, match="shape"):
        b[...] = np.zeros(5)


def test_bad_indices_are_clear_errors(xgpu_device):
    a = xgpu.zeros((3, 4), np.float32, xgpu_device)
    with pytest.raises(InvalidIndexError, match="out of bounds"):
        a[3]
    with pytest.raises(IndexError):  # InvalidIndexError is an IndexError, as Python expects
        a[0, 9]
    with pytest.raises(InvalidIndexError, match="basic index"):
        a[[0, 2]]
    with pytest.raises(InvalidIndexError, match="basic index"):
        a[np.array([True, False, True])]
    assert [row.get().tolist() for row in a[:2]] == [[0.0] * 4] * 2  # iteration ends at the IndexError


RAW_KERNEL = """
KERNEL void twice(GLOBAL_MEM float* RESTRICT y, GLOBAL_MEM const float* RESTRICT x, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n)
        y[i] = 2.0f * x[i];
}
"""


def test_a_kernel_gets_a_views_first_element(xgpu_device):
    """A contiguous view from the start of its memory is passed as it is; any other view as a contiguous
    copy, written back after the kernel when the pointer is not const."""
    program = xgpu.compile(RAW_KERNEL, xgpu_device)
    host = np.arange(7 * 10, dtype=np.float32).reshape(7, 10)
    x = xgpu.asarray(host, xgpu_device)
    y = xgpu.asarray(np.full((7, 10), poison(np.float32), np.float32), xgpu_device)
    program.twice(y[:, ::-2], x[1:6, 3], 5, global_size=5)  # a reversed strided output, an offset column input
    # the kernel's y[i] is the view's i-th element in C order: row 0 of y, from its end, every other one
    expected = np.full((7, 10), np.nan, np.float32)
    expected[0, ::-2] = 2 * host[1:6, 3]
    np.testing.assert_array_equal(y.get(), expected)
    program.twice(y[:1].reshape(10), x[0], 10, global_size=10)  # contiguous from the start: no copy
    np.testing.assert_array_equal(y.get()[0], 2 * host[0])
    assert x.get().tolist() == host.tolist()  # the const input was not written back


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool", "float16", "float64", "int64"])
def test_astype(xgpu_device, dtype):
    src_host = (np.linspace(-3, 300, 127 * 7) * 1.37).astype(np.float32).reshape(127, 7)
    if not xgpu_device.supports(dtype):
        with pytest.raises(UnsupportedDtypeError, match=dtype):
            xgpu.asarray(src_host, xgpu_device).astype(dtype)
        return
    src = xgpu.asarray(src_host, xgpu_device)
    if dtype in ("uint8",):
        src_host, src = np.abs(src_host) % 200, xgpu.asarray(np.abs(src_host) % 200, xgpu_device)
    got = src[::2, 1:].astype(dtype)  # from a view, too
    want = src_host[::2, 1:].astype(dtype)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.get(), want)
    back = got.astype(np.float32).get()
    np.testing.assert_array_equal(back, want.astype(np.float32))
    assert src.astype(np.float32, copy=False) is src and src.astype(np.float32) is not src


def test_constructors_and_fill(xgpu_device):
    dev = xgpu_device
    np.testing.assert_array_equal(xgpu.ones((7, 1), np.int32, dev).get(), np.ones((7, 1), np.int32))
    f = xgpu.full(1000, 2.5, np.float32, dev)
    assert f.dtype == np.float32 and (f.get() == 2.5).all()
    assert xgpu.full(3, 7, device=dev).dtype == np.asarray(7).dtype
    for args in [(7,), (1, 1000, 7), (5, -4, -3), (0.5, 3.0, 0.25)]:
        want = np.arange(*args).astype(np.float32 if isinstance(args[0], float) else np.int64)
        got = xgpu.arange(*args, dtype=want.dtype if want.dtype != np.int64 else np.int32, device=dev)
        np.testing.assert_allclose(got.get(), want, rtol=0, atol=1e-6)
    base = xgpu.asarray(np.zeros((3, 127), np.float16), dev)
    for like, value in [(xgpu.empty_like(base), None), (xgpu.zeros_like(base), 0), (xgpu.ones_like(base), 1),
                        (xgpu.full_like(base, 3), 3)]:
        assert like.shape == base.shape and like.dtype == base.dtype and like.device is dev
        if value is not None:
            assert (like.get() == value).all()
    assert xgpu.zeros_like(np.zeros(4, np.int8), device=dev).dtype == np.int8
    assert xgpu.ones_like(base, dtype=np.int32, shape=(2,)).get().tolist() == [1, 1]
    assert base.fill(1.5) is base and (base.get() == 1.5).all()
    b = xgpu.zeros(5, np.bool_, dev)
    b[1::2] = True
    assert b.get().tolist() == [False, True, False, True, False]


def test_get_out_to_and_pickle(xgpu_device):
    host = np.arange(127 * 3, dtype=np.float32).reshape(127, 3)
    a = xgpu.asarray(host, xgpu_device)
    out = np.full((3, 127), np.nan, np.float32)
    assert a.T.get(out=out) is out
    np.testing.assert_array_equal(out, host.T)
    strided_out = np.full((127, 6), np.nan, np.float32)[:, ::2]  # a non-contiguous out is filled too
    a.get(out=strided_out)
    np.testing.assert_array_equal(strided_out, host)
    with pytest.raises(ShapeError, match="out must be"):
        a.get(out=np.empty((127, 3), np.float64))
    assert a.to(xgpu_device) is a
    other = next((d for d in xgpu.devices() if d is not xgpu_device and not d.is_simulator), None)
    if other is not None:
        moved = a[::-1].to(other.id)
        assert moved.device.id == other.id  # the device lists may be re-read between tests
        np.testing.assert_array_equal(moved.get(), host[::-1])
    loaded = pickle.loads(pickle.dumps(a[1:, ::2]))
    assert loaded.device.id == xgpu_device.id and not xgpu.shares_memory(loaded, a)
    np.testing.assert_array_equal(loaded.get(), host[1:, ::2])


def test_unpickling_where_the_device_is_missing_says_so():
    a = xgpu.asarray(np.ones(3, np.float32))
    missing = a.device.id[:-1] + "9"  # an id of the same length: the pickle's framing stays whole
    assert missing not in {d.id for d in xgpu.devices()}
    blob = pickle.dumps(a).replace(a.device.id.encode(), missing.encode())
    with pytest.raises(DeviceNotFoundError, match=rf"pickled on {re.escape(missing)}.*a\.get\(\)"):
        pickle.loads(blob)


def test_gemm_and_matmul_take_views(monkeypatch):
    """a.T @ b maps onto the kernel's trans flag (no copy of a); other layouts are copied once; an output
    view is written through."""
    dev = xgpu.get_device()
    rng = np.random.default_rng(3)
    ha, hb = rng.standard_normal((37, 23)).astype(np.float32), rng.standard_normal((37, 29)).astype(np.float32)
    a, b = xgpu.asarray(ha, dev), xgpu.asarray(hb, dev)
    tol = {"rtol": 1e-4, "atol": 1e-4 * 37}
    copies = []
    real_copy = xgpu.Array.copy
    monkeypatch.setattr(xgpu.Array, "copy", lambda self: copies.append(self.shape) or real_copy(self))
    np.testing.assert_allclose((a.T @ b).get(), ha.T @ hb, **tol)
    np.testing.assert_allclose(xgpu.gemm(b.T, a, trans_b=False).get(), hb.T @ ha, **tol)
    np.testing.assert_allclose(xgpu.gemm(a.T, b.T, trans_b=True).get(), ha.T @ hb, **tol)
    assert copies == []
    np.testing.assert_allclose((a[1:, ::2].T @ b[1:]).get(), ha[1:, ::2].T @ hb[1:], **tol)
    assert len(copies) == 2  # the strided a and the offset b, once each
    out = xgpu.asarray(np.full((46, 29), np.nan, np.float32), dev)
    xgpu.gemm(a.T, b, out[::2])
    want = np.full((46, 29), np.nan, np.float32)
    want[::2] = ha.T @ hb
    np.testing.assert_allclose(out.get(), want, **tol)
