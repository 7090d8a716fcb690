"""Where xgpu keeps files: the user cache folder (compiled binaries, ICD files) and the user data
folder (tuning results), from platformdirs, overridable with XGPU_CACHE_DIR and XGPU_TUNING_DIR."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import platformdirs


@functools.cache
def _user_dir(kind: str) -> str:
    # platformdirs costs tens of microseconds a call: the library asks on every GEMM launch
    return platformdirs.user_cache_dir("xgpu") if kind == "cache" else platformdirs.user_data_dir("xgpu", appauthor=False)


def cache_root() -> Path:
    """The cache folder (``XGPU_CACHE_DIR`` or the user cache folder), not created."""
    return Path(os.environ.get("XGPU_CACHE_DIR") or _user_dir("cache"))


def cache_dir() -> Path:
    """The cache folder, created (0700) if missing."""
    path = cache_root()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def data_dir() -> Path:
    """The data folder for tuning results (``XGPU_TUNING_DIR`` or the user data folder), not created."""
    return Path(os.environ.get("XGPU_TUNING_DIR") or _user_dir("data"))
