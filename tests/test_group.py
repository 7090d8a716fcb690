"""Several devices in one process (issue 18): a batched matmul or conv2d split over a DeviceGroup.

Run on the CPU OpenCL runtimes together (PoCL, Intel's CPU runtime, rusticl; Oclgrind for a tiny case)
and on two stand-in CUDA GPUs. Every part is the library's one-device call on those batch items, so each
part must be, bit for bit, what its device gives alone for those items; the whole must equal each device's
own result within float32's rounding, and the float64 reference within float32's tolerance. Both CPU runtimes share the same cores here: no speed-up is asserted.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

import xgpu
from xgpu import errors
from xgpu._group import split_counts
from xgpu.reference import conv2d_reference, gemm_reference

from .test_cuda_runtime import drv  # noqa: F401  (the stand-in CUDA driver's fixture)

RTOL = ATOL = 1e-4  # float32 sums of at most 27 products


def need(spec: str) -> xgpu.Device:
    """The device a spec names; a skip saying what is missing, or a failure where `make test` requires it."""
    try:
        return xgpu.get_device(spec)
    except errors.DeviceNotFoundError:
        if spec in os.environ.get("XGPU_REQUIRE_DEVICES", ""):
            pytest.fail(f"{spec} is required here but no device matches it")
        pytest.skip(f"no {spec} device here")


def assert_equals_each_device_alone(got: np.ndarray, alone: dict[str, np.ndarray], parts) -> None:
    """Each part is bit for bit what its device gives alone for those items, and the whole equals every
    device's own whole result within float32's rounding (two compilers may sum in another order)."""
    assert sum(p.items for p in parts) == len(got)
    for p in parts:
        np.testing.assert_array_equal(got[p.start:p.stop], alone[p.device.id][p.start:p.stop])
    for one in alone.values():
        np.testing.assert_allclose(got, one, rtol=1e-5, atol=1e-5)


def test_split_counts_share_in_proportion_and_add_up():
    assert split_counts(7, [2, 2, 1]) == [3, 3, 1]
    assert split_counts(10, [1, 0, 1]) == [5, 0, 5]
    assert split_counts(2, [1, 1, 1]) == [1, 1, 0]  # fewer items than devices: the last goes without
    assert split_counts(0, [3, 1]) == [0, 0]
    for total in (1, 5, 13, 100):
        assert sum(split_counts(total, [0.3, 1.7, 2.9])) == total


def test_batched_matmul_over_three_runtimes_equals_each_device_alone(rng):
    devs = [need("pocl"), need("intel"), need("rusticl")]
    a = rng.standard_normal((7, 13, 9)).astype(np.float32)
    b = rng.standard_normal((7, 9, 11)).astype(np.float32)
    group = xgpu.DeviceGroup(devs, weights=[2, 2, 1])
    assert [(p.device.id, p.start, p.stop) for p in group.split(7)] == [
        (devs[0].id, 0, 3), (devs[1].id, 3, 6), (devs[2].id, 6, 7)]
    got = group.matmul(xgpu.asarray(a, devs[1]), b)
    assert isinstance(got, xgpu.Array) and got.device is devs[0] and got.shape == (7, 13, 11)
    got = got.get()
    np.testing.assert_allclose(got, gemm_reference(a, b), rtol=RTOL, atol=ATOL)
    alone = {d.id: xgpu.matmul(xgpu.asarray(a, d), xgpu.asarray(b, d)).get() for d in devs}
    assert_equals_each_device_alone(got, alone, group.split(7))
    # every device did its part: an upload, a compute and a download each
    steps = {(s.device, s.step) for s in group.last_trace}
    assert {(d.id, step) for d in devs for step in ("upload", "compute", "download")} <= steps
    # a 2-D right operand broadcasts: it goes whole to every device
    w = rng.standard_normal((9, 5)).astype(np.float32)
    got = xgpu.matmul(a, w, devices=group).get()
    np.testing.assert_allclose(got, gemm_reference(a, w), rtol=RTOL, atol=ATOL)
    assert got.shape == (7, 13, 5)


def test_two_device_batched_conv2d_equals_the_one_device_result(rng):
    """The issue's must-show: a batched conv2d over PoCL and Intel's runtime, split by measured speed."""
    pocl, intel = need("pocl"), need("intel")
    x = rng.standard_normal((5, 3, 11, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    group = xgpu.DeviceGroup([pocl, intel])
    got = xgpu.conv2d(x, w, bias, stride=(2, 1), padding=1, devices=group).get()
    assert got.shape == (5, 4, 6, 9)
    (speeds,) = group.speeds.values()  # measured on one item each, on this first call
    assert set(speeds) == {pocl.id, intel.id} and all(s > 0 for s in speeds.values())
    parts = group.split(5, next(iter(group.speeds)))
    ref = conv2d_reference(x, w, bias, stride=(2, 1), pads=(1, 1, 1, 1))
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)
    alone = {d.id: xgpu.conv2d(xgpu.asarray(x, d), xgpu.asarray(w, d), xgpu.asarray(bias, d), stride=(2, 1),
                               padding=1).get() for d in (pocl, intel)}
    assert_equals_each_device_alone(got, alone, parts)


def test_nhwc_conv2d_over_pocl_and_rusticl_to_the_host(rng):
    devs = [need("pocl"), need("rusticl")]
    x = rng.standard_normal((3, 7, 6, 2)).astype(np.float32)  # N H W C
    w = rng.standard_normal((3, 3, 2, 5)).astype(np.float32)  # kH kW C K
    got = xgpu.DeviceGroup(devs, weights=[1, 1]).conv2d(x, w, padding="same", layout="NHWC", host=True)
    assert isinstance(got, np.ndarray) and got.shape == (3, 7, 6, 5)
    ref = conv2d_reference(x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), pads=(1, 1, 1, 1)).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


def test_a_tiny_split_with_the_memory_checker(rng, checker):
    pocl = need("pocl")
    a = rng.standard_normal((3, 5, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4, 6)).astype(np.float32)
    got = xgpu.DeviceGroup([checker, pocl], weights=[2, 1]).matmul(a, b, host=True)
    np.testing.assert_allclose(got, gemm_reference(a, b), rtol=RTOL, atol=ATOL)


def test_one_device_failing_raises_its_error_once_the_others_are_done(rng, monkeypatch):
    pocl, intel = need("pocl"), need("intel")
    a = rng.standard_normal((6, 5, 7)).astype(np.float32)
    b = rng.standard_normal((6, 7, 3)).astype(np.float32)
    group = xgpu.DeviceGroup([pocl, intel], weights=[1, 1])
    group.matmul(a, b)  # compiled on both: the failure below is the launch's own

    def broken(*args, **kwargs):
        raise errors.LaunchError(f"{intel.id}: launching gemm failed: planted failure")

    monkeypatch.setattr(intel._opened_impl, "launch", broken)
    outcome: list[BaseException | None] = []

    def call():
        try:
            group.matmul(a, b)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(120)
    assert not caller.is_alive(), "a DeviceGroup call with a failing device did not return"
    (exc,) = outcome
    assert isinstance(exc, errors.LaunchError) and "planted failure" in str(exc)
    if sys.version_info >= (3, 11):  # exceptions take notes from 3.11 on
        assert any(f"raised by {intel.id} running batch items 3:6" in n for n in exc.__notes__)
    # PoCL's part ran to its end before the error was raised
    assert (pocl.id, "download") in {(s.device, s.step) for s in group.last_trace}
    monkeypatch.undo()
    np.testing.assert_allclose(group.matmul(a, b).get(), gemm_reference(a, b), rtol=RTOL, atol=ATOL)


def test_a_device_that_does_not_finish_times_out_and_the_others_end(rng, monkeypatch):
    pocl, intel = need("pocl"), need("intel")
    a = rng.standard_normal((4, 6, 5)).astype(np.float32)
    b = rng.standard_normal((4, 5, 3)).astype(np.float32)
    group = xgpu.DeviceGroup([pocl, intel], weights=[1, 1])
    group.matmul(a, b)  # compiled on both
    release = threading.Event()
    real = intel._opened_impl.synchronize

    def stuck():  # a kernel that runs for as long as the test says
        release.wait(60)
        real()

    monkeypatch.setattr(intel._opened_impl, "synchronize", stuck)
    try:
        with pytest.raises(errors.KernelTimeoutError, match=rf"within 0.5 s: {intel.id} \(items 2:4\) still running"):
            group.matmul(a, b, timeout=0.5)
        assert (pocl.id, "download") in {(s.device, s.step) for s in group.last_trace}
    finally:
        release.set()
    monkeypatch.undo()
    np.testing.assert_allclose(group.matmul(a, b, timeout=60).get(), gemm_reference(a, b), rtol=RTOL, atol=ATOL)
    with pytest.raises(errors.InvalidArgumentError, match="timeout must be a number of seconds"):
        group.matmul(a, b, timeout="soon")


def test_a_wait_on_one_device_does_not_queue_behind_a_stuck_one(rng, monkeypatch):
    pocl, intel = need("pocl"), need("intel")
    release = threading.Event()
    real = intel._opened_impl.synchronize

    def stuck():
        release.wait(60)
        real()

    monkeypatch.setattr(intel._opened_impl, "synchronize", stuck)
    try:
        with pytest.raises(errors.KernelTimeoutError):
            intel.synchronize(timeout=0.2)  # its wait goes on, on a waiting thread
        c = xgpu.matmul(xgpu.asarray(rng.standard_normal((5, 4)).astype(np.float32), pocl),
                        xgpu.asarray(rng.standard_normal((4, 3)).astype(np.float32), pocl))
        pocl.synchronize(timeout=30)  # another waiting thread: no wait for the stuck one
        assert c.shape == (5, 3)
    finally:
        release.set()


def test_bad_groups_and_inputs_say_what_to_do(rng):
    pocl, intel = need("pocl"), need("intel")
    with pytest.raises(errors.InvalidArgumentError, match="at least one device"):
        xgpu.DeviceGroup([])
    with pytest.raises(errors.InvalidArgumentError, match="a list of devices"):
        xgpu.DeviceGroup("pocl")
    with pytest.raises(errors.InvalidArgumentError, match=f"lists {pocl.id} more than once"):
        xgpu.DeviceGroup([pocl, pocl.id])
    with pytest.raises(errors.InvalidArgumentError, match="weights must be 2 numbers"):
        xgpu.DeviceGroup([pocl, intel], weights=[1, -1])
    with pytest.raises(errors.InvalidArgumentError, match="weights must be 2 numbers"):
        xgpu.DeviceGroup([pocl, intel], weights=[1])
    with pytest.raises(errors.DeviceNotFoundError):
        xgpu.DeviceGroup([pocl, "no-such-device"])
    group = xgpu.DeviceGroup([pocl, intel], weights=[1, 1])
    a = np.ones((4, 3, 2), np.float32)
    with pytest.raises(errors.ShapeError, match="batch sizes 4 and 3 do not broadcast"):
        group.matmul(a, np.ones((3, 2, 5), np.float32))
    with pytest.raises(errors.ShapeError, match="do not fit"):
        group.matmul(a, np.ones((4, 3, 5), np.float32))
    with pytest.raises(errors.ShapeError, match="4-D x"):
        group.conv2d(np.ones((2, 3, 4), np.float32), np.ones((1, 3, 1, 1), np.float32))
    with pytest.raises(errors.ShapeError):  # the part's own check, raised once, with no device note
        group.conv2d(np.ones((2, 3, 4, 4), np.float32), np.ones((1, 2, 1, 1), np.float32))


def test_empty_batches_and_a_group_of_one(rng):
    pocl, intel = need("pocl"), need("intel")
    empty = xgpu.matmul(np.ones((0, 3, 2), np.float32), np.ones((0, 2, 4), np.float32), devices=[pocl, intel])
    assert empty.shape == (0, 3, 4) and empty.device is pocl
    out = xgpu.conv2d(np.ones((0, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32), devices=[intel, pocl])
    assert out.shape == (0, 3, 3, 3) and out.device is intel
    a = rng.standard_normal((3, 4, 5)).astype(np.float32)
    b = rng.standard_normal((5, 2)).astype(np.float32)
    np.testing.assert_allclose(xgpu.matmul(a, b, devices=[intel]).get(), gemm_reference(a, b), rtol=RTOL, atol=ATOL)


def test_float64_refused_up_front_where_a_device_lacks_it():
    pocl, rusticl = need("pocl"), need("rusticl")
    if rusticl.fp64:
        pytest.skip(f"{rusticl.id} has float64 here")
    a = np.ones((2, 3, 3))
    with pytest.raises(errors.UnsupportedDtypeError, match=f"{rusticl.id} .* does not support float64: leave it out"):
        xgpu.matmul(a, a, devices=[pocl, rusticl])


def test_copies_between_devices_follow_the_producing_work(rng):
    """The documented ordering: each device runs its work in submission order, and a copy to another device
    reads the source on its own queue (blocking), so it sees every kernel queued before it."""
    pocl, intel = need("pocl"), need("intel")
    a = rng.standard_normal((64, 48)).astype(np.float32)
    b = rng.standard_normal((48, 40)).astype(np.float32)
    c = xgpu.matmul(xgpu.asarray(a, pocl), xgpu.asarray(b, pocl))  # queued, not waited for
    moved = xgpu.asarray(c, intel)
    assert moved.device is intel
    np.testing.assert_allclose(moved.get(), gemm_reference(a, b), rtol=RTOL, atol=ATOL)


def test_two_cuda_gpus_each_launch_their_part_on_their_own_stream(drv):  # noqa: F811 - the fixture above
    gpus = [xgpu.get_device("cuda:0"), xgpu.get_device("cuda:1")]
    a = np.ones((5, 40, 30), np.float32)
    b = np.ones((5, 30, 20), np.float32)
    drv.LAUNCHES.clear()
    got = xgpu.DeviceGroup(gpus, weights=[3, 2]).matmul(a, b)
    assert got.shape == (5, 40, 20) and got.device is gpus[0]  # kernels do not run here: only the plan is checked
    gemms = [launch for launch in drv.LAUNCHES if launch["kernel"] == "gemm"]
    assert sorted(launch["device"] for launch in gemms) == [0, 1]
    for launch in gemms:
        assert launch["stream"] is gpus[launch["device"]]._impl.stream
        assert launch["grid"][2] == (3 if launch["device"] == 0 else 2)  # the part's batch items
    assert gemms[0]["thread"] is not gemms[1]["thread"]  # launched from the group's two threads (the objects: an ident is reused once its thread ends)
