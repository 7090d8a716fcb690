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
