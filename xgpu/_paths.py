"""Where xgpu keeps files: the user cache folder (platformdirs), overridable with XGPU_CACHE_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    root = os.environ.get("XGPU_CACHE_DIR") or platformdirs.user_cache_dir("xgpu")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
