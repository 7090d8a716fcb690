from __future__ import annotations

import numpy as np
import pytest

import xgpu
from xgpu.errors import DeviceMismatchError, InvalidArgumentError, ShapeError, UnsupportedDtypeError


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.uint8, np.complex64])
@pytest.mark.parametrize("shape", [(), (1,), (7,), (127, 3), (2, 3, 5)])
def test_roundtrip(xgpu_device, dtype, shape, rng):
    host = (rng.standard_normal(shape) * 100).astype(dtype)
    arr = xgpu.asarray(host, xgpu_device)
    assert arr.shape == host.shape and arr.dtype == host.dtype and arr.device is xgpu_device
    assert arr.nbytes == host.nbytes and arr.size == host.size and arr.ndim == host.ndim
    assert arr.strides == host.strides
    np.testing.assert_array_equal(arr.get(), host)
    np.testing.assert_array_equal(np.asarray(arr), host)
    np.testing.assert_array_equal(arr.copy().get(), host)


def test_empty_zeros_and_set(xgpu_device):
    z = xgpu.zeros((3, 4), np.float64 if xgpu_device.fp64 else np.float32, device=xgpu_device)
    assert not z.get().any()
    e = xgpu.empty(5, np.int32, xgpu_device)
    e.set(np.arange(5))
    np.testing.assert_array_equal(e.get(), np.arange(5, dtype=np.int32))
    with pytest.raises(ShapeError, match="shape"):
        e.set(np.arange(6))
    out = np.empty(5, np.int32)
    assert e.get(out=out) is out
    with pytest.raises(ShapeError):
        e.get(out=np.empty(5, np.float32))


def test_zero_size(xgpu_device):
    arr = xgpu.asarray(np.empty((0, 3), np.float32), xgpu_device)
    assert arr.size == 0 and arr.nbytes == 0 and arr.get().shape == (0, 3)


def test_non_contiguous_input_is_copied(xgpu_device):
    host = np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2]
    np.testing.assert_array_equal(xgpu.asarray(host, xgpu_device).get(), host)


def test_reshape_is_a_view(xgpu_device):
    arr = xgpu.asarray(np.arange(12, dtype=np.float32), xgpu_device)
    view = arr.reshape(3, -1)
    assert view.shape == (3, 4)
    np.testing.assert_array_equal(view.get(), np.arange(12).reshape(3, 4))
    with pytest.raises(ShapeError):
        arr.reshape(5, 3)


def test_asarray_same_device_is_identity(xgpu_device):
    arr = xgpu.asarray(np.ones(3, np.float32), xgpu_device)
    assert xgpu.asarray(arr) is arr and xgpu.asarray(arr, xgpu_device) is arr
    converted = xgpu.asarray(arr, dtype=np.int32)
    assert converted.dtype == np.int32 and converted.get().tolist() == [1, 1, 1]


@pytest.mark.parametrize("bad", [np.array(["a", "b"]), np.array([object()]), np.array(["2020-01-01"], "M8[D]")])
def test_bad_dtypes(bad):
    with pytest.raises(UnsupportedDtypeError, match="numeric dtype"):
        xgpu.asarray(bad)


def test_bad_shapes():
    with pytest.raises(ShapeError, match="negative"):
        xgpu.empty((3, -1))
    with pytest.raises(ShapeError):
        xgpu.empty("big")


def test_arrays_on_two_devices_are_refused():
    devs = xgpu.devices()
    if len(devs) < 2:
        pytest.skip("one device only")
    a = xgpu.asarray(np.ones(4, np.float32), devs[0])
    b = xgpu.asarray(np.ones(4, np.float32), devs[1])
    with pytest.raises(DeviceMismatchError, match="different devices"):
        xgpu._array.same_device(a, b)
    program = xgpu.compile("KERNEL void k(GLOBAL_MEM float* y) { y[GLOBAL_ID(0)] = 1.0f; }", devs[0])
    with pytest.raises(DeviceMismatchError, match=f"lives on {devs[1].id}"):
        program.k(b, global_size=4)
    moved = xgpu.asarray(b, devs[0])
    assert moved.device is devs[0] and moved.get().tolist() == [1, 1, 1, 1]


def test_kernel_argument_errors(xgpu_device):
    program = xgpu.compile(
        "KERNEL void k(GLOBAL_MEM float* y, const float a, const index_t n) { if (GLOBAL_ID(0) < n) y[GLOBAL_ID(0)] = a; }",
        xgpu_device,
    )
    y = xgpu.zeros(10, np.float32, xgpu_device)
    with pytest.raises(InvalidArgumentError, match="cannot be passed as float .float32. without changing its value"):
        program.k(y, 0.1, 10, global_size=10)  # not exact in float32
    with pytest.raises(InvalidArgumentError, match="does not fit index_t"):
        program.k(y, np.float32(2), 2**40, global_size=10)
    with pytest.raises(InvalidArgumentError, match="pass an xgpu Array, not a ndarray"):
        program.k(np.zeros(10, np.float32), np.float32(2), 10, global_size=10)
    with pytest.raises(InvalidArgumentError, match="no kernel named 'nope'"):
        program.kernel("nope")
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        program.k(y, np.float32(2), 10, global_size=0)
    with pytest.raises(xgpu.errors.LaunchError, match="larger than kernel 'k' allows"):
        program.k(y, np.float32(2), 10, global_size=10, local_size=10**6)
    program.k(y, np.float32(2), 10, global_size=10, local_size=4).wait()  # 10 is not a multiple of 4
    assert y.get().tolist() == [2.0] * 10
