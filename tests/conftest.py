from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import xgpu

ROOT = Path(__file__).resolve().parents[1]


def run_xgpu(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the installed ``xgpu`` command in a fresh process."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "xgpu.cli", *args], capture_output=True, text=True, env=full_env, timeout=300
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
