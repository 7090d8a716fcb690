from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import xgpu

ROOT = Path(__file__).resolve().parents[1]
# the suite's compiled binaries go to a private folder of their own, not the user's cache
os.environ.setdefault("XGPU_CACHE_DIR", tempfile.mkdtemp(prefix="xgpu-test-cache-"))


def run_xgpu(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the installed ``xgpu`` command in a fresh process."""
    # tests read the tables' cells: a wide terminal keeps each on one line (tests/test_cli_width.py checks 80)
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "xgpu.tools.cli", *args], capture_output=True, text=True, env=full_env, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"xgpu {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def small(device: xgpu.Device, size: int, small_size: int = 64) -> int:
    """Sizes for a simulator stay small: Oclgrind runs a few MFLOP/s."""
    return min(size, small_size) if device.is_simulator else size


@pytest.fixture(autouse=True)
def _no_remembered_layers():
    """Each test starts with no remembered conv2d calls or bound launches: a test that swaps the library's
    internals (monkeypatch) reaches them, not how an earlier test's layer of the same shape ran."""
    import xgpu.kernels.conv2d as conv_module

    conv_module._seen_calls.clear()
    conv_module._BOUND.clear()


@pytest.fixture
def rng():
    return __import__("numpy").random.default_rng(1234)


pytest_plugins = ["pytester"]


@pytest.fixture
def checker():
    """The device that checks every memory access (Oclgrind)."""
    found = [d for d in xgpu.devices() if d.checks_memory]
    if not found:
        if "oclgrind" in os.environ.get("XGPU_REQUIRE_DEVICES", ""):
            pytest.fail("Oclgrind is required here but no device checks memory accesses")
        pytest.skip("no device here checks memory accesses: apt-get install oclgrind")
    return found[0]


# ------------------------------------------------------------------------------------------------
# The matrix's size. By default (`make test`) every kernel case runs in float32 on every device, and
# each other-dtype case on one device that supports it, rotating through the devices; a float32
# library variant compiles for three targets per GPU vendor, any other for one target, the vendor alternating. So every
# case meets every dtype and every device meets every case, in a suite that stays near 30 minutes on
# 2 cores. Each library variant (a GEMM or conv2d tile) runs on the devices whose rules pick
# it and under the memory checker (marker home_devices). `make test-full` (XGPU_TEST_FULL=1 or
# --full-matrix) runs every combination.

FULL_ENV = "XGPU_TEST_FULL"
#: parameters rotated instead of crossed: the axis, and whether an item's other parameters call for it
ROTATED = {
    "xgpu_device": lambda params: _dtype_name(params) not in (None, "float32"),
    # test_cuda_compile: a float32 library variant for every CUDA architecture, the others for one in turn
    # (test_offline_targets picks its own: three AMD and three Intel targets for float32, one target else)
    "arch": lambda params: "defines" in params and _variant_dtype(params) != "float32",
}


def _variant_dtype(params: dict) -> str:
    from xgpu.kernels.variants import variant_row

    return variant_row(str(params.get("name", "")))[2]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full-matrix", action="store_true", default=False,
                     help="every device x dtype x variant combination (default: rotate the other dtypes and "
                          "offline targets; see tests/conftest.py)")


def _full(config: pytest.Config) -> bool:
    return bool(config.getoption("full_matrix")) or os.environ.get(FULL_ENV, "") not in ("", "0")


@pytest.fixture
def full_matrix(request: pytest.FixtureRequest) -> bool:
    """Whether this run crosses every combination (a test that loops over variants itself asks)."""
    return _full(request.config)


def _dtype_name(params: dict) -> str | None:
    import numpy as np

    for key in ("dtype", "xgpu_dtype"):
        if key in params:
            try:
                return np.dtype(params[key]).name
            except TypeError:
                return None
    return None


def _supports(item: pytest.Item) -> bool:
    params = item.callspec.params
    device, dtype = params.get("xgpu_device"), _dtype_name(params)
    return device is None or dtype is None or device.supports(dtype)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "home_devices(predicate): a library variant's test; by default it runs on the devices "
        "predicate(device, params) names (those whose rules pick the variant) and on the memory checker")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import zlib

    if _full(config):
        return
    groups: dict[tuple, list[pytest.Item]] = {}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", None) or {}
        home = item.get_closest_marker("home_devices")
        if home is not None and "xgpu_device" in params:
            axis = "home"
        else:
            axis = next((a for a, applies in ROTATED.items() if a in params and applies(params)), None)
        if axis is None:
            continue
        rest = tuple(sorted((k, str(v)) for k, v in params.items() if k not in (axis, "xgpu_device")))
        groups.setdefault((item.module.__name__, item.originalname, axis, rest), []).append(item)
    dropped = []
    for key, members in groups.items():
        candidates = [m for m in members if _supports(m)] or members
        if key[2] == "home":
            # a variant on the devices that would run it and under the memory checker (a variant for
            # hardware not here, an AVX-512 CPU say, runs on the checker and compiles offline)
            kept = [m for m in candidates if m.callspec.params["xgpu_device"].checks_memory
                    or m.get_closest_marker("home_devices").args[0](m.callspec.params["xgpu_device"],
                                                                      m.callspec.params)]
        else:
            kept = [candidates[zlib.crc32(repr(key).encode()) % len(candidates)]]
        dropped += [m for m in members if m not in kept]
    if dropped:
        gone = set(map(id, dropped))
        items[:] = [i for i in items if id(i) not in gone]
        config.hook.pytest_deselected(items=dropped)


def pytest_report_header(config: pytest.Config) -> str:
    if _full(config):
        return "matrix: full (every device x dtype x variant)"
    return (f"matrix: default (float32 on every device, other dtypes and offline targets rotated; "
            f"{FULL_ENV}=1 or --full-matrix for all)")
