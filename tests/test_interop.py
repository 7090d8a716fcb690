"""Exchange with other libraries, against real consumers (numpy, PyTorch CPU, pyopencl) and, for CUDA, the
driver stand-in (tests/cuda_standin) at the pointer level. docs/interop.md has the table these check.

The CPU runtimes with fine-grain SVM (Intel's, PoCL) share memory both ways; Oclgrind has no SVM and
exchanges copies. Every test names the devices it needs and fails (never skips) when one is missing.
"""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pytest
import torch

import xgpu
from xgpu import _dlpack, errors

from .test_cuda_runtime import drv  # noqa: F401  (the CUDA stand-in fixture)

SHARING = ["intel", "pocl"]  # the CPU runtimes with fine-grain SVM


def _device(spec: str) -> xgpu.Device:
    return xgpu.get_device(spec)  # DeviceNotFoundError (a failure) when the runtime is missing


def _capsule_name(capsule) -> str:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    return get_name(capsule).decode()


# -- export to numpy and PyTorch ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", SHARING)
def test_torch_sees_and_changes_the_same_memory(spec):
    dev = _device(spec)
    a = xgpu.asarray(np.arange(7, dtype=np.float32), dev)
    t = torch.from_dlpack(a)
    assert a.__dlpack_device__() == (1, 0) and t.device.type == "cpu"
    assert t.data_ptr() == dev._impl.buffer_pointer(a._buffer)  # the very same bytes
    t += 1
    np.testing.assert_array_equal(a.get(), np.arange(1, 8, dtype=np.float32))
    a *= 3  # a kernel on the device
    dev.synchronize()
    np.testing.assert_array_equal(t.numpy(), 3 * np.arange(1, 8, dtype=np.float32))
    n = np.from_dlpack(a)
    n[6] = -5
    assert a.get()[6] == -5 and t[6] == -5


@pytest.mark.parametrize("spec", SHARING)
def test_capsules_are_versioned_with_the_old_name_for_old_consumers(spec):
    a = xgpu.asarray(np.arange(3, dtype=np.int32), _device(spec))
    assert _capsule_name(a.__dlpack__(max_version=(1, 0))) == "dltensor_versioned"
    assert _capsule_name(a.__dlpack__(max_version=(1, 3))) == "dltensor_versioned"
    old = a.__dlpack__()  # a consumer that does not pass max_version
    assert _capsule_name(old) == "dltensor"
    t = torch.utils.dlpack.from_dlpack(old)  # PyTorch still reads the old capsule
    t[0] = 9
    assert a.get().tolist() == [9, 1, 2]


@pytest.mark.parametrize("spec", SHARING)
@pytest.mark.parametrize("dtype", ["float16", "bool", "int8", "uint8", "int64", "float64", "complex64"])
def test_dtypes_round_trip(spec, dtype):
    dev = _device(spec)
    host = (np.arange(10) % 3 == 1) if dtype == "bool" else (np.arange(10) * 3 - 7).astype(dtype)
    if dtype == "uint8":
        host = np.arange(250, 260, dtype=np.int64).astype(np.uint8)
    a = xgpu.asarray(host, dev)
    t = torch.from_dlpack(a)
    assert str(t.dtype) == f"torch.{ {'bool': 'bool'}.get(dtype, dtype)}"
    np.testing.assert_array_equal(t.numpy(), host)
    t[1] = True if dtype == "bool" else 4
    expected = host.copy()
    expected[1] = True if dtype == "bool" else 4
    np.testing.assert_array_equal(a.get(), expected)
    back = xgpu.from_dlpack(t, dev)  # and into xgpu again: the same memory, not a copy
    assert back.dtype == host.dtype and dev._impl.buffer_pointer(back._buffer) == t.data_ptr()


@pytest.mark.parametrize("spec", SHARING)
def test_views_export_with_their_offset_and_strides(spec):
    dev = _device(spec)
    a = xgpu.asarray(np.arange(24, dtype=np.float32).reshape(4, 6), dev)
    view = a[1:, ::2]  # an offset and a stride
    t = torch.from_dlpack(view)
    assert t.shape == (3, 3) and t.stride() == (6, 2)
    assert t.data_ptr() == dev._impl.buffer_pointer(a._buffer) + view.offset
    np.testing.assert_array_equal(t.numpy(), np.arange(24, dtype=np.float32).reshape(4, 6)[1:, ::2])
    t.fill_(-1)
    expected = np.arange(24, dtype=np.float32).reshape(4, 6)
    expected[1:, ::2] = -1
    np.testing.assert_array_equal(a.get(), expected)
    tt = torch.from_dlpack(a.T)
    assert tt.stride() == (1, 6) and tt[5, 0] == 5
    flipped = np.from_dlpack(a[::-1, 1])  # negative strides reach numpy as they are
    np.testing.assert_array_equal(flipped, expected[::-1, 1])
    assert flipped.strides == (-24,)


@pytest.mark.parametrize("spec", SHARING)
def test_the_consumer_outlives_the_array(spec):
    dev = _device(spec)
    gc.collect()  # exports of earlier tests that only wait for the collector: released before counting
    before = _dlpack.live_exports()
    a = xgpu.asarray(np.full(1000, 7, np.float32), dev)
    t = torch.from_dlpack(a)
    del a
    gc.collect()
    # the pool cannot hand the memory to these while PyTorch holds it
    others = [xgpu.full(1000, -3, np.float32, dev) for _ in range(3)]
    dev.synchronize()
    assert (t == 7).all()
    assert _dlpack.live_exports() == before + 1
    del t
    gc.collect()
    assert _dlpack.live_exports() == before  # PyTorch called the deleter
    assert all((o.get() == -3).all() for o in others)


@pytest.mark.parametrize("spec", SHARING)
def test_an_unconsumed_capsule_frees_its_tensor(spec):
    gc.collect()  # as above: count from a collected heap
    before = _dlpack.live_exports()
    a = xgpu.asarray(np.ones(4, np.float32), _device(spec))
    capsule = a.__dlpack__(max_version=(1, 0))
    assert _dlpack.live_exports() == before + 1
    del capsule
    gc.collect()
    assert _dlpack.live_exports() == before


def test_stream_and_copy_follow_the_standard():
    dev = _device("intel")
    a = xgpu.asarray(np.ones(4, np.float32), dev)
    with pytest.raises(BufferError, match="takes no stream"):
        a.__dlpack__(stream=1)
    with pytest.raises(errors.InvalidArgumentError, match="cannot export to DLPack device"):
        a.__dlpack__(dl_device=(2, 0))
    view = np.asarray(a, copy=False)  # numpy's own way to ask for no copy
    view[1] = 3
    assert a.get()[1] == 3
    with pytest.raises(ValueError, match="a copy is needed"):
        np.asarray(xgpu.asarray(np.ones(2, np.float32), _device("oclgrind")), copy=False)
    copied = np.from_dlpack(a, copy=True)
    copied[0] = 5
    assert a.get()[0] == 1
    shared = np.from_dlpack(a, copy=False)
    shared[0] = 5
    assert a.get()[0] == 5


# -- import from numpy and PyTorch --------------------------------------------------------------------


@pytest.mark.parametrize("spec", SHARING)
def test_a_torch_tensor_becomes_an_array_without_a_copy(spec):
    dev = _device(spec)
    t = torch.arange(10, dtype=torch.float32)
    a = xgpu.from_dlpack(t, dev, copy=False)
    assert a.device is dev and dev._impl.buffer_pointer(a._buffer) == t.data_ptr()
    a += 1  # a kernel writes the tensor's memory
    dev.synchronize()
    assert t.tolist() == list(range(1, 11))
    t[0] = 100
    assert a.get()[0] == 100
    # kernels of the library run on it: gemm on two imported operands
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    y = torch.arange(20, dtype=torch.float32).reshape(4, 5) / 3
    out = xgpu.matmul(xgpu.from_dlpack(x, dev), xgpu.from_dlpack(y, dev))
    np.testing.assert_allclose(out.get(), (x.double() @ y.double()).numpy(), rtol=1e-5)


@pytest.mark.parametrize("spec", SHARING)
def test_imported_views_keep_their_strides_and_offset(spec):
    dev = _device(spec)
    t = torch.arange(30, dtype=torch.int32).reshape(5, 6)
    view = t[1:, 1::2]
    a = xgpu.from_dlpack(view, dev)
    assert a.shape == (4, 3) and a.strides == (24, 8)
    np.testing.assert_array_equal(a.get(), view.numpy())
    a.fill(-1)
    dev.synchronize()
    expected = np.arange(30, dtype=np.int32).reshape(5, 6)
    expected[1:, 1::2] = -1
    np.testing.assert_array_equal(t.numpy(), expected)
    at = xgpu.from_dlpack(t.T, dev)
    np.testing.assert_array_equal(at.get(), expected.T)
    n = np.arange(10, dtype=np.float64)
    an = xgpu.from_dlpack(n[3:], dev)  # numpy, with an offset
    an += 1
    dev.synchronize()
    np.testing.assert_array_equal(n, np.r_[0:3, 4:11].astype(np.float64))


@pytest.mark.parametrize("spec", SHARING)
def test_the_array_outlives_the_tensor(spec):
    dev = _device(spec)
    t = torch.full((1000,), 5, dtype=torch.float32)
    a = xgpu.from_dlpack(t, dev)
    del t
    gc.collect()
    junk = [torch.full((1000,), -9, dtype=torch.float32) for _ in range(5)]  # noqa: F841  (reuses freed memory)
    b = a + 1
    assert (b.get() == 6).all() and (a.get() == 5).all()


def test_read_only_and_unsharable_memory_is_copied_or_refused():
    dev = _device("pocl")
    host = np.arange(4, dtype=np.float32)
    host.flags.writeable = False
    with pytest.raises(BufferError, match="read-only"):
        xgpu.from_dlpack(host, dev, copy=False)
    a = xgpu.from_dlpack(host, dev)  # a copy
    a += 1
    assert host.tolist() == [0, 1, 2, 3]
    t = torch.arange(4, dtype=torch.float32)
    copied = xgpu.from_dlpack(t, dev, copy=True)
    copied += 1
    assert t.tolist() == [0, 1, 2, 3]
    with pytest.raises(errors.UnsupportedDtypeError):
        xgpu.from_dlpack(torch.ones(3, dtype=torch.bfloat16), dev)
    with pytest.raises(errors.InvalidArgumentError, match="__dlpack__"):
        xgpu.from_dlpack([1, 2, 3], dev)


# -- Oclgrind: no SVM, so every exchange is a copy; its checker sees any stray access -----------------


def test_oclgrind_exchanges_copies_and_checks_them(checker):
    assert checker._impl.dlpack_device() is None
    a = xgpu.asarray(np.arange(8, dtype=np.float32), checker)
    assert a.__dlpack_device__() == (1, 0)
    t = torch.from_dlpack(a)  # a copy
    t += 1
    assert a.get().tolist() == list(range(8))
    with pytest.raises(BufferError, match="a copy is needed"):
        a.__dlpack__(max_version=(1, 0), copy=False)
    del a
    gc.collect()
    b = xgpu.asarray(np.zeros(8, np.float32), checker) + 2  # kernels on memory the copy does not hold
    assert t.tolist() == list(range(1, 9)) and b.get().tolist() == [2] * 8
    src = torch.arange(6, dtype=torch.float32)
    with pytest.raises(BufferError, match="cannot use host memory in place"):
        xgpu.from_dlpack(src, checker, copy=False)
    c = xgpu.from_dlpack(src, checker)
    del src
    gc.collect()
    c += 1  # checked by Oclgrind: a read of freed memory would raise MemoryCheckError
    assert c.get().tolist() == list(range(1, 7))


# -- pyopencl --------------------------------------------------------------------------------------


# pyopencl warns when a runtime's compiler prints anything (Intel's always does): its warning, not ours
PYOPENCL_WARNINGS = pytest.mark.filterwarnings("ignore::pyopencl.CompilerWarning")


@PYOPENCL_WARNINGS
@pytest.mark.parametrize("spec", ["intel", "pocl", "oclgrind"])
def test_pyopencl_arrays_share_memory_both_ways(spec):
    dev = _device(spec)
    a = xgpu.asarray(np.arange(12, dtype=np.float32).reshape(3, 4), dev)
    p = a.to_pyopencl()
    assert isinstance(p, cl_array.Array) and p.data.int_ptr == a._buffer.mem.int_ptr
    p += 1  # pyopencl's kernel, on xgpu's queue
    np.testing.assert_array_equal(a.get(), np.arange(1, 13, dtype=np.float32).reshape(3, 4))
    rows = a[1:].to_pyopencl()  # an offset view
    assert rows.offset == 16 and rows.base_data.int_ptr == a._buffer.mem.int_ptr
    rows += 100
    np.testing.assert_array_equal(a.get()[1:], np.arange(5, 13, dtype=np.float32).reshape(2, 4) + 100)
    pv = a[1:, ::2].to_pyopencl()  # pyopencl keeps the strides (its get() wants contiguous arrays)
    assert pv.offset == 16 and pv.strides == (16, 8) and pv.shape == (2, 2)
    q = cl_array.to_device(p.queue, np.arange(5, dtype=np.int32))  # pyopencl's own, in xgpu's context
    b = xgpu.asarray(q)
    assert b.device is dev and b._buffer.mem.int_ptr == q.data.int_ptr
    b *= 2
    assert q.get().tolist() == [0, 2, 4, 6, 8]
    with pytest.raises(errors.InvalidArgumentError, match="negative strides"):
        a[::-1].to_pyopencl()
    # pyopencl's array outlives xgpu's: the memory stays its own, never handed to another xgpu array
    keep = xgpu.asarray(np.full(5, 3, np.int32), dev).to_pyopencl()[1:]
    gc.collect()
    others = [xgpu.full(5, -1, np.int32, dev) for _ in range(3)]
    assert keep.get().tolist() == [3, 3, 3, 3] and all(o.get().tolist() == [-1] * 5 for o in others)


@PYOPENCL_WARNINGS
def test_a_pyopencl_queue_handed_to_xgpu():
    platform_dev = _device("pocl")._impl.dev
    ctx = cl.Context([platform_dev])
    queue = cl.CommandQueue(ctx)
    dev = xgpu.Device.from_pyopencl(queue)
    assert xgpu.Device.from_pyopencl(queue) is dev and dev.name == _device("pocl").name
    x = cl_array.to_device(queue, np.arange(6, dtype=np.float32))
    a = xgpu.asarray(x)  # the same buffer, on the device that queues on `queue`
    assert a.device is dev
    x += 1  # pyopencl, then xgpu, then pyopencl, all on one queue: in order, no waits between
    a *= 10
    x -= 2
    assert x.get().tolist() == [8, 18, 28, 38, 48, 58]
    y = (a + 1).to_pyopencl()
    assert y.context == ctx and y.get().tolist() == [9, 19, 29, 39, 49, 59]
    # a pyopencl array of a context xgpu does not use is copied
    other = cl.Context([platform_dev])
    z = cl_array.to_device(cl.CommandQueue(other), np.ones(3, np.float32))
    c = xgpu.asarray(z, _device("pocl"))
    c += 1
    assert z.get().tolist() == [1, 1, 1] and c.get().tolist() == [2, 2, 2]
    with pytest.raises(errors.InvalidArgumentError, match="in-order"):
        xgpu.Device.from_pyopencl(cl.CommandQueue(ctx, properties=cl.command_queue_properties.
                                                  OUT_OF_ORDER_EXEC_MODE_ENABLE))


def test_driver_arrays_of_the_wrong_backend_are_refused():
    a = xgpu.asarray(np.ones(3, np.float32), _device("pocl"))
    with pytest.raises(errors.InvalidArgumentError, match="to_pycuda"):
        a.to_pycuda()
    assert not hasattr(a, "__cuda_array_interface__")


# -- CUDA, at the pointer level against the driver stand-in -----------------------------------------


def _pointer(a: xgpu.Array) -> int:
    return a.device._impl.buffer_pointer(a._buffer)


def test_cuda_arrays_export_their_device_pointer(drv):  # noqa: F811
    dev = xgpu.get_device("cuda:1")
    a = xgpu.asarray(np.arange(24, dtype=np.float32).reshape(4, 6), dev)
    assert a.__dlpack_device__() == (2, 1)
    view = a[1:, ::2]
    before = _dlpack.live_exports()
    taken = _dlpack.take_capsule(view.__dlpack__(stream=a.device._impl.stream.handle, max_version=(1, 0)))
    assert taken.pointer == int(a._buffer.allocation) + 24 and taken.device == (2, 1)
    assert (taken.shape, taken.strides, taken.dtype) == ((3, 3), (6, 2), np.float32)
    taken.release()
    assert _dlpack.live_exports() == before
    assert _capsule_name(a.__dlpack__(stream=1)) == "dltensor"
    with pytest.raises(BufferError, match="stream=0"):
        a.__dlpack__(stream=0)
    cai = view.__cuda_array_interface__
    assert cai["version"] == 3 and cai["data"] == (int(a._buffer.allocation) + 24, False)
    assert cai["strides"] == (24, 8) and cai["typestr"] == "<f4"
    assert cai["stream"] == a.device._impl.stream.handle


class _CudaProducer:
    """A CUDA tensor as CuPy or PyTorch hands it over: __dlpack_device__ and a versioned capsule of its
    device pointer; records the stream it was asked to make the data ready for."""

    def __init__(self, allocation, shape, dtype, strides, ordinal):
        self.allocation, self.shape, self.dtype, self.strides, self.ordinal = allocation, shape, dtype, strides, ordinal
        self.asked: list[dict] = []

    def __dlpack_device__(self):
        return (2, self.ordinal)

    def __dlpack__(self, stream=None, max_version=None):
        self.asked.append({"stream": stream, "max_version": max_version})
        return _dlpack.make_capsule(int(self.allocation), (2, self.ordinal), self.shape, np.dtype(self.dtype),
                                    self.strides, 0, self, max_version is not None)


def test_a_cuda_tensor_is_wrapped_at_its_pointer(drv):  # noqa: F811
    dev = xgpu.get_device("cuda:0")
    dev._impl.context.push()
    try:
        memory = drv.mem_alloc(4 * 12)
        drv.memcpy_htod(memory, np.arange(12, dtype=np.float32))
    finally:
        drv.Context.pop()
    producer = _CudaProducer(memory, (3, 4), np.float32, (4, 1), 0)
    gc.collect()  # count from a collected heap: the gc.collect() below must release only this import
    before = _dlpack.live_exports()
    a = xgpu.from_dlpack(producer)
    assert a.device is dev and _pointer(a) == int(memory)
    assert producer.asked == [{"stream": dev._impl.stream.handle, "max_version": (1, 0)}]
    np.testing.assert_array_equal(a.get(), np.arange(12, dtype=np.float32).reshape(3, 4))
    a.set(np.full((3, 4), 7, np.float32))  # writes reach the producer's memory
    assert bytes(memory.data) == np.full(12, 7, np.float32).tobytes()
    del a
    gc.collect()
    assert _dlpack.live_exports() == before  # the producer's deleter ran
    b = xgpu.from_dlpack(_CudaProducer(memory, (2, 2), np.float32, (4, 2), 0))  # a strided tensor
    assert b.strides == (16, 8) and _pointer(b) == int(memory)
    with pytest.raises(errors.DeviceNotFoundError, match=r"DLPack device \(2, 5\)"):
        xgpu.from_dlpack(_CudaProducer(memory, (2,), np.float32, (1,), 5))
    with pytest.raises(BufferError, match="cannot use that memory"):
        xgpu.from_dlpack(producer, _device("pocl"))


class _Forward:
    """Another library's object that hands over an xgpu array's capsule."""

    def __init__(self, inner):
        self.inner = inner

    def __dlpack__(self, **kwargs):
        return self.inner.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.inner.__dlpack_device__()


def test_cuda_launches_pass_the_wrapped_pointer(drv):  # noqa: F811
    dev = xgpu.get_device("cuda:0")
    a = xgpu.asarray(np.arange(8, dtype=np.float32), dev)
    b = xgpu.from_dlpack(_Forward(a[2:]))  # xgpu's own export, read back: the same pointer, 8 bytes on
    assert _pointer(b) == _pointer(a) + 8
    program = xgpu.compile("""
KERNEL void twice(GLOBAL_MEM float* x, const index_t n) { const index_t i = GLOBAL_ID(0); if (i < n) x[i] *= 2; }
""", dev)
    drv.LAUNCHES.clear()
    program.twice(b, 6, global_size=6)
    (launch,) = drv.LAUNCHES
    assert launch["args"][0] == ("uint64", _pointer(a) + 8)


def test_pycuda_gpuarrays_share_the_pointer(drv):  # noqa: F811
    dev = xgpu.get_device("cuda:0")
    a = xgpu.asarray(np.arange(12, dtype=np.float32).reshape(3, 4), dev)
    from pycuda import gpuarray

    g = a.to_pycuda()
    assert isinstance(g, gpuarray.GPUArray) and int(g.gpudata) == _pointer(a)
    gv = a[1:, 1:].to_pycuda()
    assert int(gv.gpudata) == _pointer(a) + 20 and gv.strides == (16, 4)
    back = xgpu.asarray(g)
    assert back.device is dev and _pointer(back) == _pointer(a) and back.shape == (3, 4)
    back.set(np.ones((3, 4), np.float32))
    np.testing.assert_array_equal(a.get(), np.ones((3, 4), np.float32))
    with pytest.raises(errors.InvalidArgumentError, match="to_pyopencl"):
        a.to_pyopencl()


def test_svm_can_be_turned_off(monkeypatch):
    from xgpu import _devices

    saved = _devices._state
    monkeypatch.setenv("XGPU_SVM", "0")
    _devices.reset()
    try:
        dev = _device("pocl")
        assert dev._impl.dlpack_device() is None
        a = xgpu.asarray(np.arange(3, dtype=np.float32), dev)
        t = torch.from_dlpack(a)  # a copy now
        t += 1
        assert a.get().tolist() == [0, 1, 2]
    finally:
        with _devices._state_lock:
            _devices._state = saved
