"""Queues (streams) and events: several queues per device, wait_for across queues and devices, non-blocking
copies through pinned memory, the buffer pool across queues, and clear errors. On PoCL, Intel's CPU runtime
and rusticl in one process (both CPU runtimes share the machine's cores: nothing here is timed for speed)."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import xgpu
from xgpu import errors

# y[i] depends on every x through a long loop that reads x all along: a consumer that starts early, or an x
# overwritten while it runs, gives other values (0.5 * acc is exact, so every compiler gets the same bits)
SLOW = """
KERNEL void slow(GLOBAL_MEM float* RESTRICT y, GLOBAL_MEM const float* RESTRICT x, const index_t n, const int iters)
{
    const index_t i = GLOBAL_ID(0);
    if (i >= n) return;
    float acc = 0.0f;
    for (int k = 0; k < iters; ++k)
        acc = acc * 0.5f + x[(i + k) % n];
    y[i] = acc;
}
KERNEL void twice(GLOBAL_MEM float* RESTRICT z, GLOBAL_MEM const float* RESTRICT y, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n) z[i] = 2.0f * y[i];
}
"""

RUNTIMES = ("Portable Computing Language", "Intel(R) OpenCL", "rusticl")


def _find(platform: str):
    found = [d for d in xgpu.devices() if d.backend == "opencl" and platform.lower() in d.platform.lower()]
    if not found:
        pytest.skip(f"no {platform} device here")
    return found[0]


@pytest.fixture(params=RUNTIMES, ids=("pocl", "intel", "rusticl"))
def dev(request):
    return _find(request.param)


def _slow_reference(x: np.ndarray, iters: int) -> np.ndarray:
    n = len(x)
    acc = np.zeros(n, np.float32)
    idx = np.arange(n)
    for k in range(iters):
        acc = acc * np.float32(0.5) + x[(idx + k) % n]
    return acc


def _iters(d) -> int:
    return 3000 if d.is_simulator else 20000  # rusticl (llvmpipe) is a few times slower


def test_consumer_on_another_queue_waits_for_the_producer(dev):
    n, iters = 1000, _iters(dev)
    rng = np.random.default_rng(1)
    xh = rng.standard_normal(n).astype(np.float32)
    program = xgpu.compile(SLOW, dev)
    x = xgpu.asarray(xh, dev)
    y = xgpu.asarray(np.full(n, np.nan, np.float32), dev)  # poison: a consumer that runs early doubles NaN
    z = xgpu.asarray(np.full(n, -7, np.float32), dev)
    q1, q2 = dev.queue(), dev.queue()
    produced = program.slow(y, x, n, np.int32(iters), global_size=n, queue=q1)
    consumed = program.twice(z, y, n, global_size=n, queue=q2, wait_for=[produced])
    assert consumed.queue is q2 and produced.queue is q1
    out = z.get(queue=q2, wait_for=[consumed])
    np.testing.assert_array_equal(out, 2 * _slow_reference(xh, iters))
    if dev.platform != "rusticl":  # rusticl 22.3 keeps no real profiling times
        assert consumed.profile[0] >= produced.profile[1]  # on the device: after the producer ended
    q1.finish()
    q2.finish()
    assert produced.done and consumed.done


def test_library_ops_on_a_queue_equal_the_default_queue(dev):
    rng = np.random.default_rng(2)
    a = xgpu.asarray(rng.standard_normal((3, 17, 9)).astype(np.float32), dev)
    b = xgpu.asarray(rng.standard_normal((3, 9, 7)).astype(np.float32), dev)
    x = xgpu.asarray(rng.standard_normal((2, 3, 11, 7)).astype(np.float32), dev)
    w = xgpu.asarray(rng.standard_normal((5, 3, 3, 3)).astype(np.float32), dev)
    q = dev.queue()
    on_q = xgpu.matmul(a, b, queue=q).get(queue=q)
    np.testing.assert_array_equal(on_q, xgpu.matmul(a, b).get())
    np.testing.assert_array_equal(xgpu.gemm(a[1], b[1], queue=q).get(queue=q), xgpu.gemm(a[1], b[1]).get())
    with q:  # every call in the block goes to q
        conv = xgpu.conv2d(x, w, padding=1)
        doubled = conv * 2
        host = doubled.get()
    np.testing.assert_array_equal(host, (xgpu.conv2d(x, w, padding=1) * 2).get())


def test_non_blocking_copies_through_pinned_memory(dev):
    n = 127
    program = xgpu.compile(SLOW, dev)
    q = dev.queue()
    pinned_in = xgpu.pinned_empty(n, np.float32, dev)
    pinned_in[:] = np.arange(n, dtype=np.float32)
    x = xgpu.asarray(pinned_in, dev, queue=q, blocking=False)
    z = xgpu.empty(n, np.float32, dev)
    program.twice(z, x, n, global_size=n, queue=q)  # the same queue: after the upload
    pinned_out = xgpu.pinned_empty(n, np.float32, dev)
    pinned_out[:] = -1
    event = z.get(out=pinned_out, queue=q, blocking=False)
    assert isinstance(event, xgpu.Event)
    event.wait()
    np.testing.assert_array_equal(pinned_out, 2 * np.arange(n, dtype=np.float32))

    # the host data of a non-blocking upload is kept alive by xgpu until the copy ends
    y = xgpu.empty(1000, np.float32, dev)
    host = np.arange(1000, dtype=np.float32)
    up = y.set(host * 3, queue=q, blocking=False)  # a temporary nobody else holds
    gc.collect()
    up.wait()
    np.testing.assert_array_equal(y.get(), np.arange(1000, dtype=np.float32) * 3)


def test_copy_on_one_queue_overlaps_nothing_it_should_not(dev):
    # a copy queued on q2 after a marker of q1 sees what q1 wrote
    n, iters = 1000, _iters(dev) // 4
    xh = np.random.default_rng(3).standard_normal(n).astype(np.float32)
    program = xgpu.compile(SLOW, dev)
    q1, q2 = dev.queue(), dev.queue()
    x = xgpu.asarray(xh, dev)
    y = xgpu.asarray(np.full(n, np.nan, np.float32), dev)
    program.slow(y, x, n, np.int32(iters), global_size=n, queue=q1)
    copied = xgpu.empty(n, np.float32, dev)
    xgpu.copyto(copied, y, queue=q2, wait_for=[q1.marker()])
    np.testing.assert_array_equal(copied.get(queue=q2), _slow_reference(xh, iters))


def test_the_pool_reuses_a_buffer_only_after_the_other_queues_work(dev):
    n, iters = 1000, _iters(dev)
    dev._pool.clear()
    xh = np.random.default_rng(4).standard_normal(n).astype(np.float32)
    program = xgpu.compile(SLOW, dev)
    q1 = dev.queue()
    x = xgpu.asarray(xh, dev)
    y = xgpu.empty(n, np.float32, dev)
    program.slow(y, x, n, np.int32(iters), global_size=n, queue=q1)  # reads x all along
    buf = x._buffer
    del x  # freed while the kernel runs: no wait here
    gc.collect()
    poison = xgpu.asarray(np.full(n, 1e30, np.float32), dev)  # the default queue gets the same memory...
    assert poison._buffer is buf
    # ...but writes it only after q1's kernel ended: the kernel read the old values throughout
    np.testing.assert_array_equal(y.get(queue=q1), _slow_reference(xh, iters))
    np.testing.assert_array_equal(poison.get(), np.full(n, 1e30, np.float32))
    dev._pool.clear()


def test_a_reused_buffer_takes_the_plain_copy_once_nothing_is_left_to_wait_for(dev):
    """A pooled buffer carries what queues did with it; what the default queue did (a device copy) and
    another queue's ended work leave its later plain copies on the short path, with the right data."""
    from xgpu import _queue

    dev._pool.clear()
    n = 4096
    src = xgpu.asarray(np.arange(n, dtype=np.float32), dev)
    dst = src.copy()  # a device copy on the default queue: recorded on both blocks
    buf = dst._buffer
    del dst
    gc.collect()
    again = xgpu.empty(n, np.float32, dev)
    assert again._buffer is buf and again._block.pending, "the copy's event did not travel with the buffer"
    assert not _queue.needs_queue_path(dev, again._block)
    again.set(np.full(n, 3.0, np.float32))
    np.testing.assert_array_equal(again.get(), np.full(n, 3.0, np.float32))
    # another queue's work on it, ended before the buffer is handed out again: nothing to wait for either
    q1 = dev.queue()
    other = xgpu.asarray(np.ones(n, np.float32), dev)
    program = xgpu.compile(SLOW, dev)
    program.twice(other, src, n, global_size=n, queue=q1)
    q1.finish()
    buf = other._buffer
    del other
    gc.collect()
    last = xgpu.empty(n, np.float32, dev)
    assert last._buffer is buf and not _queue.needs_queue_path(dev, last._block)
    np.testing.assert_array_equal(last.get(), 2 * np.arange(n, dtype=np.float32))  # pooled memory: q1's result
    dev._pool.clear()


def test_wait_for_an_event_of_another_device_waits_on_the_host():
    pocl, intel = _find(RUNTIMES[0]), _find(RUNTIMES[1])
    n, iters = 1000, 20000
    xh = np.random.default_rng(5).standard_normal(n).astype(np.float32)
    program = xgpu.compile(SLOW, pocl)
    x = xgpu.asarray(xh, pocl)
    y = xgpu.asarray(np.full(n, np.nan, np.float32), pocl)
    qp, qi = pocl.queue(), intel.queue()
    program.slow(y, x, n, np.int32(iters), global_size=n, queue=qp)
    host = xgpu.pinned_empty(n, np.float32, pocl)
    read = y.get(out=host, queue=qp, blocking=False)
    moved = xgpu.asarray(host, intel, queue=qi, wait_for=[read])  # PoCL's event: waited for on the host
    np.testing.assert_array_equal(moved.get(queue=qi), _slow_reference(xh, iters))


def test_one_device_failing_leaves_the_other_running():
    pocl, intel = _find(RUNTIMES[0]), _find(RUNTIMES[1])
    n, iters = 1000, 20000
    xh = np.random.default_rng(6).standard_normal(n).astype(np.float32)
    results: dict[str, object] = {}
    good_program, bad_program = xgpu.compile(SLOW, pocl), xgpu.compile(SLOW, intel)

    def good():
        x = xgpu.asarray(xh, pocl)
        y = xgpu.empty(n, np.float32, pocl)
        q = pocl.queue()
        good_program.slow(y, x, n, np.int32(iters), global_size=n, queue=q)
        results["good"] = y.get(queue=q)

    def bad():
        z = xgpu.empty(n, np.float32, intel)
        q = intel.queue()
        try:
            bad_program.twice(z, z, n, global_size=n, local_size=100_000, queue=q)
        except Exception as exc:  # handed to the test below
            results["bad"] = exc

    threads = [threading.Thread(target=good), threading.Thread(target=bad)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)  # a deadlock fails here instead of hanging the suite
    assert not any(t.is_alive() for t in threads), "a device's work did not end"
    assert isinstance(results.get("bad"), errors.LaunchError), results.get("bad")
    np.testing.assert_array_equal(results["good"], _slow_reference(xh, iters))


def test_with_queue_is_per_thread(dev):
    from xgpu import _queue

    q = dev.queue()
    seen: list[bool] = []
    entered = threading.Barrier(2)

    def work():
        with q:
            entered.wait(timeout=30)  # both threads inside the block at once
            seen.append(_queue.pick(dev, None, "test") is q)
        seen.append(_queue.pick(dev, None, "test") is None)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert seen == [True] * 4 or sorted(seen) == [True] * 4
    assert _queue.pick(dev, None, "test") is None  # this thread never entered it


def test_clear_errors():
    pocl, intel = _find(RUNTIMES[0]), _find(RUNTIMES[1])
    program = xgpu.compile(SLOW, pocl)
    a = xgpu.asarray(np.ones(8, np.float32), pocl)
    qi = intel.queue()
    with pytest.raises(errors.DeviceMismatchError, match=r"queue is one of opencl:\d:0, but the work is on"):
        program.twice(a, a, 8, global_size=8, queue=qi)
    with pytest.raises(errors.DeviceMismatchError, match="queue is one of"):
        a.get(queue=qi)
    with pytest.raises(errors.DeviceMismatchError, match="queue is one of"):
        xgpu.asarray(np.ones(3), pocl, queue=qi)
    with pytest.raises(errors.DeviceMismatchError, match="queue is one of"):
        xgpu.matmul(a.reshape(2, 4), a.reshape(4, 2), queue=qi)
    with pytest.raises(errors.InvalidArgumentError, match="queue= takes an xgpu.Queue"):
        a.get(queue="pocl")
    with pytest.raises(errors.InvalidArgumentError, match="wait_for= holds a builtins.str"):
        program.twice(a, a, 8, global_size=8, wait_for=["event"])
    import pyopencl

    raw = pyopencl.enqueue_marker(pocl._impl.queue)
    with pytest.raises(errors.InvalidArgumentError, match=r"wait_for= holds a pyopencl.*not a driver's own events"):
        a.get(wait_for=[raw])
    with pytest.raises(errors.InvalidArgumentError, match="C-contiguous out"):
        xgpu.asarray(np.ones((4, 4), np.float32), pocl).get(out=np.empty((4, 8), np.float32)[:, ::2], blocking=False)
    with pytest.raises(errors.InvalidArgumentError, match="pass out=xgpu.pinned_empty"):
        a.get(blocking=False)
    with pytest.raises(errors.InvalidArgumentError, match="devices= or queue="):
        xgpu.matmul(a.reshape(1, 2, 4), a.reshape(1, 4, 2), devices=[pocl], queue=pocl.queue())
    with pytest.raises(errors.InvalidArgumentError, match="no device timestamps"):
        _ = xgpu.Event(None, "nothing").profile
