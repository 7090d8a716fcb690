"""The CUDA backend's run-time half, against a stand-in for pycuda's driver module (tests/cuda_standin).

Everything above the driver boundary is xgpu's real code: NVRTC really compiles each kernel to a
cubin for the stand-in GPU's architecture, and the stand-in loads that cubin as the driver would
(checking its architecture and reading its kernel names). Kernels cannot run without a GPU: the
stand-in records each launch, and the tests check what xgpu asked the driver for.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import xgpu
from xgpu import _devices, errors

from .conftest import run_xgpu

STANDIN = Path(__file__).with_name("cuda_standin")
A100 = {"name": "NVIDIA A100-SXM4-40GB", "cc": (8, 0), "memory": 40 * 2**30, "sms": 108, "clock_khz": 1410000,
        "pci": "0000:07:00.0"}
H100 = {"name": "NVIDIA H100 80GB HBM3", "cc": (9, 0), "memory": 80 * 2**30, "sms": 132, "clock_khz": 1980000,
        "pci": "0000:8a:00.0"}


def _forget_pycuda():
    for name in [m for m in sys.modules if m == "pycuda" or m.startswith("pycuda.")]:
        del sys.modules[name]


@pytest.fixture
def drv(monkeypatch):
    """pycuda's driver module replaced by the stand-in, with two GPUs; the device list rebuilt, and the
    one from before put back afterwards (other tests hold its Device objects)."""
    saved = _devices._state
    _forget_pycuda()
    monkeypatch.syspath_prepend(str(STANDIN))
    import pycuda.driver as standin

    standin.configure(gpus=[A100, H100])
    monkeypatch.setattr("xgpu.backends.cuda._runtime.device_uuid",
                        lambda i: f"GPU-0000000{i}-1111-2222-3333-444444444444")
    _devices.reset()
    yield standin
    _forget_pycuda()
    with _devices._state_lock:
        _devices._state = saved


SAXPY = """
KERNEL void saxpy(GLOBAL_MEM float* RESTRICT y, GLOBAL_MEM const float* RESTRICT x, const float a, const index_t n) {
    const index_t i = GLOBAL_ID(0);
    if (i < n) y[i] = a * x[i] + y[i];
}
"""


def test_devices_have_the_attributes_of_opencl_devices(drv):
    gpus = [d for d in xgpu.devices() if d.backend == "cuda"]
    assert [d.id for d in gpus] == ["cuda:0", "cuda:1"]
    a100, h100 = gpus
    assert (a100.name, a100.vendor, a100.type, a100.platform, a100.driver_version) == (
        "NVIDIA A100-SXM4-40GB", "NVIDIA", "gpu", "CUDA 12.4", "12.4")
    assert (a100.compute_units, a100.clock_mhz, a100.global_mem_bytes) == (108, 1410, 40 * 2**30)
    assert (a100.max_work_group_size, a100.max_work_item_sizes, a100.local_mem_bytes) == (1024, (1024, 1024, 64), 49152)
    assert a100.fp64 and a100.fp16_arithmetic and a100.supports(np.float64)
    assert a100.extra["compute_capability"] == "8.0" and h100.extra["arch"] == "sm_90"
    assert a100.extra["uuid"] == "GPU-00000000-1111-2222-3333-444444444444"
    assert a100.extra["pci_bus_id"] == "0000:07:00.0"
    assert xgpu.get_device() is h100  # a GPU is the default over the CPU OpenCL devices (the larger one)
    assert xgpu.get_device("H100") is h100
    assert xgpu.list_backends()["cuda"].available


def test_compile_with_nvrtc_and_launch(drv):
    dev = xgpu.get_device("cuda:0")
    program = xgpu.compile(SAXPY, dev)
    assert program.saxpy.max_work_group_size == 1024
    y = xgpu.asarray(np.arange(1000, dtype=np.float32), dev)
    x = xgpu.asarray(np.ones(1000, np.float32), dev)
    drv.LAUNCHES.clear()
    event = program.saxpy(y, x, np.float32(2.0), 1000, global_size=1000)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(drv.Event, "time_since", lambda self, start: 2.5)  # the driver answers in milliseconds
        assert event.wait().elapsed_s == pytest.approx(0.0025)
    (launch,) = drv.LAUNCHES
    # 1000 work-items in blocks of 256: the grid is rounded up and the kernel checks i < n
    assert launch["kernel"] == "saxpy" and launch["block"] == (256, 1, 1) and launch["grid"] == (4, 1, 1)
    assert [kind for kind, _ in launch["args"]] == ["ptr", "ptr", "float32", "int32"]
    assert launch["args"][2:] == [("float32", 2.0), ("int32", 1000)]
    assert launch["stream"] is dev._impl.stream
    np.testing.assert_array_equal(y.get(), np.arange(1000, dtype=np.float32))  # memory round-trips


def test_local_mem_dynamic_becomes_the_launchs_shared_memory(drv):
    dev = xgpu.get_device("cuda:0")
    program = xgpu.compile(Path(__file__).with_name("templates") / "lang_local.mako", dev)
    out = xgpu.asarray(np.zeros(64, np.int32), dev)
    drv.LAUNCHES.clear()
    program.bytes_then_doubles(out, global_size=64, local_size=64, local_mem={"flags": 63, "wide": 8 * 64})
    (launch,) = drv.LAUNCHES
    # one extern buffer: flags at 0, wide at the next multiple of 16, the launch asks for both
    assert launch["args"] == [("ptr", launch["args"][0][1]), ("uint32", 0), ("uint32", 64)]
    assert launch["shared"] == 64 + 512
    with pytest.raises(errors.LaunchError, match=r"needs 49168 bytes of local .*more than the 49152 that cuda:0"):
        program.bytes_then_doubles(out, global_size=64, local_size=64, local_mem={"flags": 16, "wide": 49152})
    assert len(drv.LAUNCHES) == 1  # refused before the driver was asked


def test_emulated_subgroups_get_their_scratch_from_shared_memory(drv):
    dev = xgpu.get_device("cuda:0")
    program = xgpu.compile(Path(__file__).with_name("templates") / "lang_subgroup.mako", dev,
                           defines={"T": "int", "wg": 64, "subgroups": "emulated"})
    x = xgpu.asarray(np.ones(64, np.int32), dev)
    drv.LAUNCHES.clear()
    program.two_level_sum(x, x, 64, global_size=64)
    (launch,) = drv.LAUNCHES
    assert launch["args"][-1] == ("uint32", 0) and launch["shared"] == 8 * 64


def test_each_device_gets_a_cubin_for_its_own_architecture(drv):
    a100, h100 = xgpu.get_device("cuda:0"), xgpu.get_device("cuda:1")
    pa, ph = xgpu.compile(SAXPY, a100), xgpu.compile(SAXPY, h100)
    for program, sm in ((pa, 0x50), (ph, 0x5A)):
        binary = program._impl.binary
        assert binary[:4] == b"\x7fELF" and (int.from_bytes(binary[0x30:0x34], "little") >> 8) & 0xFF == sm
    with pytest.raises(errors.DeviceError, match="no kernel image is available") as info:
        a100._impl.load_binary(ph._impl.binary, ())  # an sm_90 cubin on an sm_80 GPU, as the driver refuses it
    assert isinstance(info.value.__cause__, drv.Error)


def test_context_stack_is_left_as_found_across_devices_and_threads(drv):
    devs = [xgpu.get_device("cuda:0"), xgpu.get_device("cuda:1")]
    failures = []

    def work(dev):
        try:
            program = xgpu.compile(SAXPY, dev)
            for _ in range(20):
                y = xgpu.asarray(np.ones(300, np.float32), dev)
                program.saxpy(y, y, np.float32(1.0), 300, global_size=300)
                y.get()
            assert drv.Context.get_current() is None  # nothing left pushed on this thread
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(devs[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert drv.Context.get_current() is None
    assert {launch["device"] for launch in drv.LAUNCHES} == {0, 1}


def test_library_gemm_and_conv2d_compile_and_launch(drv):
    dev = xgpu.get_device("cuda:0")
    a = xgpu.asarray(np.ones((300, 200), np.float32), dev)
    b = xgpu.asarray(np.ones((200, 100), np.float32), dev)
    drv.LAUNCHES.clear()
    c = xgpu.gemm(a, b)
    assert c.shape == (300, 100) and c.device is dev
    assert [launch["kernel"] for launch in drv.LAUNCHES] == ["gemm"]
    block = drv.LAUNCHES[0]["block"]
    assert block[0] * block[1] * block[2] <= 1024
    x = xgpu.asarray(np.ones((1, 16, 9, 9), np.float32), dev)
    w = xgpu.asarray(np.ones((8, 16, 3, 3), np.float32), dev)
    assert xgpu.conv2d(x, w, padding=1).shape == (1, 8, 9, 9)
    assert any(launch["kernel"].startswith("conv2d") for launch in drv.LAUNCHES)


def test_compile_errors_name_the_template_line(drv, tmp_path):
    path = tmp_path / "bad.mako"
    path.write_text("KERNEL void k(GLOBAL_MEM float* y)\n{\n    y[0] = nope;\n}\n")
    with pytest.raises(errors.CompileError) as info:
        xgpu.compile(path, "cuda:0")
    assert (info.value.filename, info.value.lineno) == (str(path), 3)
    assert info.value.backend == "cuda" and "nope" in info.value.log


def test_missing_kernel_and_driver_errors_are_xgpu_errors(drv):
    dev = xgpu.get_device("cuda:0")
    program = xgpu.compile(SAXPY, dev)
    with pytest.raises(errors.InvalidArgumentError, match="no kernel named 'nope'"):
        program.kernel("nope")
    y = xgpu.asarray(np.ones(10, np.float32), dev)
    with pytest.raises(errors.LaunchError, match="at most 1024"):
        program.saxpy(y, y, np.float32(1), 10, global_size=4096, local_size=2048)
    with pytest.raises(errors.LaunchError, match="more than the 65535 CUDA allows"):
        program.saxpy(y, y, np.float32(1), 10, global_size=(1, 70000), local_size=(1, 1))


def test_out_of_memory_names_device_and_size(drv):
    drv.configure(gpus=[{**A100, "memory": 64 * 2**20}])  # a 64 MiB GPU
    _devices.reset()
    dev = xgpu.get_device("cuda:0")
    keep = xgpu.empty(10 * 2**20, np.float32, dev)  # 40 MiB
    with pytest.raises(errors.OutOfMemoryError, match=r"cuda:0: out of memory .* of 41943040 bytes \(40.0 MiB\)"):
        xgpu.empty(10 * 2**20, np.float32, dev)
    assert keep.size == 10 * 2**20


def test_nvcc_when_nvrtc_is_missing(drv, monkeypatch):
    from xgpu.backends.cuda import _runtime

    nvcc = _runtime._nvcc()
    if nvcc is None:
        pytest.skip("no nvcc: neither PyPI's nvidia-cuda-nvcc (pip install 'xgpu[nvrtc]') nor an nvcc on PATH")
    cicc = Path(nvcc).parent.parent / "nvvm" / "bin" / "cicc"
    if not cicc.is_file():
        pytest.skip(f"the CUDA toolkit of {nvcc} lacks cicc ({cicc}; PyPI: nvidia-nvvm)")
    if shutil.which("gcc") is None:
        pytest.skip("nvcc needs the host compiler gcc on PATH to preprocess (apt-get install gcc)")

    def no_nvrtc(*args, **kwargs):
        raise errors.BackendUnavailableError("NVRTC is not installed (No module named 'cuda'): pip install ...")

    monkeypatch.setattr(_runtime, "compile_cuda", no_nvrtc)
    monkeypatch.setattr(_runtime, "supported_archs", lambda: (_ for _ in ()).throw(
        errors.BackendUnavailableError("NVRTC is not installed")))
    monkeypatch.setenv("XGPU_CACHE", "0")
    program = xgpu.compile(SAXPY, "cuda:1")
    binary = program._impl.binary
    assert binary[:4] == b"\x7fELF" and (int.from_bytes(binary[0x30:0x34], "little") >> 8) & 0xFF == 0x5A  # sm_90
    assert program.saxpy.name == "saxpy"


def test_cubins_are_cached_on_disk(drv, monkeypatch, tmp_path):
    from xgpu.backends.cuda import _runtime

    monkeypatch.setenv("XGPU_CACHE_DIR", str(tmp_path))
    source = SAXPY + "// cache test\n"
    xgpu.compile(source, "cuda:0")
    _devices.reset()  # a new device list: nothing in memory

    def no_compiler(*args, **kwargs):
        raise AssertionError("compiled again instead of loading the cached cubin")

    monkeypatch.setattr(_runtime, "compile_cuda", no_compiler)
    program = xgpu.compile(source, "cuda:0")
    assert program.saxpy.name == "saxpy"


def test_unavailable_with_a_reason(drv):
    drv.configure(gpus=[])
    _devices.reset()
    status = xgpu.list_backends()["cuda"]
    assert not status.available and status.reason == "the NVIDIA driver sees no GPU"
    drv.configure(init_error="no CUDA-capable device is detected")
    _devices.reset()
    assert "no usable NVIDIA GPU: cuInit failed: no CUDA-capable device is detected" in xgpu.list_backends()["cuda"].reason
    assert all(d.backend == "opencl" for d in xgpu.devices())


def test_devices_json_with_the_standin_gpu():
    env = {"PYTHONPATH": os.pathsep.join([str(STANDIN), os.environ.get("PYTHONPATH", "")])}
    listed = json.loads(run_xgpu("devices", "--json", env=env).stdout)
    cuda = [d for d in listed["devices"] if d["backend"] == "cuda"]
    assert [d["id"] for d in cuda] == ["cuda:0"] and cuda[0]["extra"]["compute_capability"] == "8.0"
    assert listed["default"]["id"] == "cuda:0"


@pytest.mark.parametrize("error,reason", [
    ("ModuleNotFoundError(\"No module named 'pycuda._driver'\")", "pycuda is not installed"),
    ("ImportError('libcuda.so.1: cannot open shared object file: No such file or directory')", "no NVIDIA driver"),
])
def test_devices_json_when_pycuda_cannot_load(tmp_path, error, reason):
    """What a machine without pycuda, or with pycuda but no driver, lists (a pycuda whose import fails the
    same way stands in, so this runs whether or not the real one is installed)."""
    (tmp_path / "pycuda").mkdir()
    (tmp_path / "pycuda" / "__init__.py").write_text("")
    (tmp_path / "pycuda" / "driver.py").write_text(f"raise {error}\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    cuda = json.loads(run_xgpu("devices", "--json", env=env).stdout)["backends"]["cuda"]
    assert not cuda["available"] and cuda["reason"].startswith(reason) and not cuda["device_ids"]


def test_streams_events_and_non_blocking_copies(drv):
    dev = xgpu.get_device("cuda:0")
    program = xgpu.compile(SAXPY, dev)
    x = xgpu.asarray(np.arange(300, dtype=np.float32), dev)
    y = xgpu.asarray(np.ones(300, np.float32), dev)
    q1, q2 = dev.queue(), dev.queue()
    s1, s2 = q1._impl.stream, q2._impl.stream
    assert s1 is not s2 and dev._impl.stream not in (s1, s2)
    drv.LAUNCHES.clear()
    drv.STREAM_LOG.clear()
    first = program.saxpy(y, x, np.float32(2), 300, global_size=300, queue=q1)
    second = program.saxpy(x, y, np.float32(1), 300, global_size=300, queue=q2, wait_for=[first])
    assert [launch["stream"] for launch in drv.LAUNCHES] == [s1, s2]
    # the second stream waits on the device (cuStreamWaitEvent) for the first launch's end, before its launch
    waits = [entry for entry in drv.STREAM_LOG if entry[0] == "wait"]
    assert waits == [("wait", s2, first._impl.end)]
    assert drv.STREAM_LOG.index(waits[0]) < drv.STREAM_LOG.index(("record", s2, second._impl.start))
    host = xgpu.pinned_empty(300, np.float32, dev)
    assert isinstance(host.base, np.ndarray) or host.base is not None  # page-locked memory kept by the array
    read = x.get(out=host, queue=q2, blocking=False)
    assert ("dtoh", s2) in drv.STREAM_LOG and isinstance(read, xgpu.Event)
    read.wait()
    np.testing.assert_array_equal(host, np.arange(300, dtype=np.float32))  # kernels do not run in the stand-in
    start, end = second.profile
    assert 0 <= start <= end and first.done
    drv.LAUNCHES.clear()
    xgpu.gemm(x.reshape(20, 15), y.reshape(15, 20), queue=q1)  # the library's kernels go to the queue too
    assert drv.LAUNCHES and {launch["stream"] for launch in drv.LAUNCHES} == {s1}
    q1.finish()
    dev.synchronize()
    # a queue of one GPU refused for work on the other, before the driver is asked
    with pytest.raises(errors.DeviceMismatchError, match="queue is one of cuda:0, but the work is on cuda:1"):
        xgpu.asarray(np.ones(4, np.float32), "cuda:1", queue=q1)


def test_driver_objects_dropped_on_any_thread_are_freed(drv):
    """pycuda frees an allocation, event, stream or module only where its context is current (or on the thread
    that opened the context) and leaks it with a warning anywhere else. Python drops the last reference on
    whichever thread held it last: xgpu hands each back under its device's context, so none leaks."""
    import gc

    dev = xgpu.get_device("cuda:0")
    drv.LEAKED.clear()
    made = []

    def make():
        program = xgpu.compile(SAXPY + "\n// compiled on a thread of its own\n", dev)
        y = xgpu.asarray(np.ones(300, np.float32), dev)
        queue = dev.queue()
        with queue:
            event = program.saxpy(y, y, np.float32(1.0), 300, global_size=300)
        made.append((program, y, queue, event))

    def drop():
        event = made[0][3]
        event.wait(timeout=5)  # waits on a helper thread of its own
        made.clear()
        dev._programs.clear()  # the compiled module goes too
        dev._pool.clear()  # and the memory pool's spare allocations
        gc.collect()

    for work in (make, drop):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    gc.collect()
    assert drv.LEAKED == []
    assert drv.Context.get_current() is None


def test_memory_collected_in_a_reference_cycle_is_never_handed_out_again(drv):
    """The garbage collector finalizes a cycle's objects in any order: a buffer's finalizer can free its
    allocation before its pool block's finalizer offers it to the pool. Such a buffer (or one whose last
    events are gone) must not come back for a later array (seen on an H200: a test's exception held
    arrays in a cycle, and the next arrays of that size had no memory)."""
    import gc

    dev = xgpu.get_device("cuda:0")
    dev._pool.clear()
    gc.collect()
    for _ in range(3):
        a = xgpu.asarray(np.ones(1000, np.float32), dev)
        a.fill(2.0)  # a launch: an event on the block
        cycle: list = [a]
        cycle.append(cycle)
        del a, cycle
        gc.collect()
    b = xgpu.asarray(np.arange(1000, dtype=np.float32), dev)  # the stand-in runs no kernel: copies only
    np.testing.assert_array_equal(b.get(), np.arange(1000, dtype=np.float32))
    assert drv.Context.get_current() is None


@pytest.mark.parametrize("finalized", ["buffer", "event"])
def test_memory_finalized_after_it_was_pooled_is_never_handed_out_again(drv, finalized):
    """The other order of the same collection: the block's finalizer pools the buffer (with the events of
    its last uses), and then the buffer's or an event's own finalizer runs. The pool checks again when it
    hands the buffer out, and allocates anew instead."""
    import gc

    dev = xgpu.get_device("cuda:0")
    dev._pool.clear()
    a = xgpu.asarray(np.ones(1000, np.float32), dev)
    a.fill(2.0)  # a launch: an event on the block
    impl, events = a._block.impl, list(a._block.uses.values())
    assert events
    del a
    gc.collect()  # the block's finalizer: the buffer is pooled
    assert dev._pool.held_bytes == impl.nbytes
    for obj in [impl] if finalized == "buffer" else events:
        obj.__del__()  # what the collector runs on each object of a collected cycle, the pooled ones too
    b = xgpu.asarray(np.arange(1000, dtype=np.float32), dev)
    assert b._block.impl is not impl
    np.testing.assert_array_equal(b.get(), np.arange(1000, dtype=np.float32))
    assert dev._pool.held_bytes == 0
