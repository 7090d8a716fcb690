"""The device-matrix pytest plugin, as a project that installs xgpu would use it."""

from __future__ import annotations

import numpy as np
import pytest

import xgpu

TEST_FILE = """
import numpy as np
import xgpu
from xgpu.testing import assert_close

def test_double(xgpu_device):
    x = np.arange(7, dtype=np.float32)
    y = xgpu.asarray(np.full(7, np.nan, np.float32), xgpu_device)
    program = xgpu.compile(
        "KERNEL void k(GLOBAL_MEM float* y, GLOBAL_MEM const float* x, const index_t n)"
        " { const index_t i = GLOBAL_ID(0); if (i < n) y[i] = 2.0f * x[i]; }",
        xgpu_device,
    )
    program.k(y, xgpu.asarray(x, xgpu_device), 7, global_size=7)
    assert_close(y.get(), 2 * x.astype(np.float64), dtype=np.float32)
"""


def ids_run(result):
    return sorted(r.nodeid.split("[")[1].rstrip("]") for r in result.getreports("pytest_runtest_logreport")
                  if r.when == "call")


@pytest.fixture(autouse=True)
def _drivers_loaded_outside_the_inner_runs():
    # pytester's in-process runs drop the modules they imported: a driver (pyopencl) first imported
    # inside one would be imported a second time by the next, which aborts the process
    xgpu.devices()


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_mine=TEST_FILE)
    return pytester


def test_every_device_by_default(suite):
    result = suite.inline_run()
    result.assertoutcome(passed=len(xgpu.devices()))
    assert ids_run(result) == sorted(d.id for d in xgpu.devices())


def test_select_by_spec_backend_and_exclude(suite):
    pocl = [d.id for d in xgpu._devices.match_devices("pocl")]
    if not pocl:
        pytest.skip("no PoCL device here")
    assert ids_run(suite.inline_run("--xgpu-device", "pocl")) == sorted(pocl)
    everything_but = sorted(d.id for d in xgpu.devices() if d.id not in pocl)
    assert ids_run(suite.inline_run("--xgpu-exclude", "pocl")) == everything_but
    assert ids_run(suite.inline_run("--xgpu-backend", "opencl")) == sorted(
        d.id for d in xgpu.devices() if d.backend == "opencl")


def test_env_selection(suite, monkeypatch):
    first = xgpu.devices()[0]
    monkeypatch.setenv("XGPU_TEST_DEVICES", first.id)
    assert ids_run(suite.inline_run()) == [first.id]


def test_header_lists_selected_devices(suite):
    result = suite.runpytest("--xgpu-device", xgpu.devices()[0].id)
    result.stdout.fnmatch_lines(["xgpu devices (1):", f"  {xgpu.devices()[0].id}: *"])


def test_failure_is_explained(pytester):
    pytester.makepyfile(test_bad="""
import numpy as np
from xgpu.testing import assert_close

def test_off():
    got = np.array([1.0, 2.0, np.nan, 4.5], np.float32)
    assert_close(got, np.array([1.0, 2.0, 3.0, 4.0]), dtype=np.float32)
""")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*2 of 4 elements differ beyond tolerance*worst at index*1 elements NaN*"])


DTYPE_TEST = """
import numpy as np
from xgpu.testing import assert_close

def test_roundtrip(xgpu_device, xgpu_dtype, xgpu_array):
    host, dev = xgpu_array.random((5, 3), xgpu_dtype)
    assert dev.device is xgpu_device and dev.dtype == xgpu_dtype and np.all(host != 0)
    out = xgpu_array.poisoned((5, 3), xgpu_dtype)
    assert np.isnan(out.get()).all()
    assert_close(dev.get(), host.astype(np.float64), dtype=xgpu_dtype)
"""


def test_dtype_axis_and_array_factory(pytester, monkeypatch):
    pytester.makepyfile(test_dt=DTYPE_TEST)
    dev = next(d for d in xgpu.devices() if not d.is_simulator)
    result = pytester.inline_run("--xgpu-device", dev.id)
    result.assertoutcome(passed=3)
    ids = sorted(r.nodeid.split("[")[1].rstrip("]") for r in result.getreports("pytest_runtest_logreport")
                 if r.when == "call")
    assert ids == sorted(f"{dev.id}-{t}" for t in ("float16", "float32", "float64"))
    result = pytester.runpytest("--xgpu-device", dev.id, "--xgpu-dtype", "float32")
    result.assert_outcomes(passed=1)


def test_dtype_the_device_lacks_is_skipped_with_reason(pytester, monkeypatch):
    pytester.makepyfile(test_dt=DTYPE_TEST)
    dev = next(d for d in xgpu.devices() if not d.is_simulator)
    monkeypatch.setattr(type(dev), "supports", lambda self, dtype, arithmetic=False: np.dtype(dtype) != np.float64)
    result = pytester.runpytest("--xgpu-device", dev.id, "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines([f"*float64 is not supported on {dev.id}*"])


@pytest.mark.parametrize("args,env,said", [
    (["--xgpu-device", "no-such-device-xyz"], "", "--xgpu-device 'no-such-device-xyz' names no device"),
    (["--xgpu-backend", "cdua"], "", "--xgpu-backend 'cdua' is not a registered backend"),
    (["--xgpu-exclude", "no-such-device-xyz"], "", "--xgpu-exclude 'no-such-device-xyz' names no device"),
    ([], "opencl,nosuch-xyz", "XGPU_TEST_DEVICES 'nosuch-xyz' names no device"),
    (["--xgpu-device", "pocl", "--xgpu-exclude", "pocl"], "", "the selection holds no device"),
])
def test_a_selection_that_tests_nothing_is_a_usage_error(suite, monkeypatch, args, env, said):
    # a misspelt device or backend must not turn into "0 passed, exit 0"
    if env:
        monkeypatch.setenv("XGPU_TEST_DEVICES", env)
    result = suite.runpytest(*args)
    assert result.ret != 0
    assert result.parseoutcomes().get("passed", 0) == 0
    text = result.stdout.str() + result.stderr.str()
    assert said in text and "Devices there are:" in text and "--xgpu-allow-empty" in text
    assert xgpu.devices()[0].id in text  # names what exists


def test_an_empty_matrix_only_when_asked(suite):
    result = suite.runpytest("--xgpu-device", "pocl", "--xgpu-exclude", "pocl", "--xgpu-allow-empty")
    assert result.ret == pytest.ExitCode.OK or result.ret == pytest.ExitCode.NO_TESTS_COLLECTED or \
        result.parseoutcomes().get("skipped") == 1
    assert result.parseoutcomes().get("passed", 0) == 0


def test_sessions_without_device_tests_are_left_alone(pytester):
    # the plugin loads in every pytest run: a bad selection only matters where xgpu_device is used
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest("--xgpu-device", "no-such-device-xyz")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*selection problem: --xgpu-device 'no-such-device-xyz' names no device*"])


TARGET_TEST = """
import numpy as np
import xgpu

KERNEL = ("KERNEL void scale(GLOBAL_MEM float* y, const float a, const index_t n)"
          " { const index_t i = GLOBAL_ID(0); if (i < n) y[i] = a * y[i]; }")

def test_compiles_everywhere(xgpu_target):
    build = xgpu.compile_offline(KERNEL, target=xgpu_target.name)
    assert build.binary and "scale" in build.resources
"""


def test_xgpu_target_compiles_a_users_kernel_for_each_vendor(pytester):
    # no GPU here: the tests compile for one available target per vendor by default
    pytester.makepyfile(test_targets=TARGET_TEST)
    result = pytester.inline_run()
    ran = ids_run(result)
    vendors = {t.split(":")[0] for t in ran}
    assert {"nvidia", "amd", "intel"} <= vendors and len(ran) == len(vendors), ran
    assert "nvidia:sm_80" in ran and "amd:gfx90a" in ran  # each backend's default target
    result.assertoutcome(passed=len(ran))
    chosen = ids_run(pytester.inline_run("--xgpu-target", "amd", "--xgpu-target", "sm_90"))
    assert "nvidia:sm_90" in chosen and all(t.startswith("amd:") or t == "nvidia:sm_90" for t in chosen)
    assert len([t for t in chosen if t.startswith("amd:")]) >= 3


def test_a_target_that_names_nothing_is_a_usage_error(pytester):
    pytester.makepyfile(test_targets=TARGET_TEST)
    result = pytester.runpytest("--xgpu-target", "gfx9000")
    assert result.ret != 0 and "--xgpu-target 'gfx9000' names no offline target" in (
        result.stdout.str() + result.stderr.str())
