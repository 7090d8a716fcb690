"""Where xgpu keeps files: the user cache folder (compiled binaries, ICD files) and the user data
folder (tuning results), from platformdirs, overridable with XGPU_CACHE_DIR and XGPU_TUNING_DIR.

Every ``XGPU_*`` variable is checked where it is read: a value that cannot be used gives one warning
naming the variable and the value used instead (:func:`env_bytes`, :func:`env_path`).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import warnings
from pathlib import Path

import platformdirs


class ConfigWarning(UserWarning):
    """An ``XGPU_*`` environment variable holds a value xgpu cannot use (the message says what is used instead)."""


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_setting(name: str, value: str, problem: str, used: str) -> None:
    """One warning per variable and value: ``NAME='value' problem; using ...``."""
    with _warned_lock:
        if (name, value) in _warned:
            return
        _warned.add((name, value))
    warnings.warn(f"{name}={value!r} {problem}; using {used}", ConfigWarning, stacklevel=3)


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str) -> int | None:
    """``"1073741824"``, ``"1GB"``, ``"512 MiB"`` -> bytes; None if it is not a size."""
    m = _BYTES.match(text)
    if not m or m.group(2).lower() not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def env_bytes(name: str, default: int) -> int:
    """A size in bytes from the environment (plain bytes or with a unit: 1GB, 512MiB); bad values warn."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = parse_bytes(raw)
    if value is None:
        warn_setting(name, raw, "is not a size in bytes (write 1073741824, 1GB or 1GiB)", f"{default} bytes")
        return default
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def env_flag(name: str, default: bool = True) -> bool:
    """An on/off switch from the environment (1/0, true/false, yes/no, on/off); anything else warns."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    warn_setting(name, raw, "is not 1/0, true/false, yes/no or on/off", f"{'on' if default else 'off'}")
    return default


def env_path(name: str) -> Path | None:
    """A folder from the environment, ``~`` expanded; a relative path is made absolute (with a warning)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    path = Path(os.path.expandvars(os.path.expanduser(raw.strip())))
    if not path.is_absolute():
        absolute = Path.cwd() / path
        warn_setting(name, raw, "is a relative path", f"{absolute}")
        path = absolute
    return path


@functools.cache
def _user_dir(kind: str) -> str:
    # platformdirs costs tens of microseconds a call: the library asks on every GEMM launch
    return platformdirs.user_cache_dir("xgpu") if kind == "cache" else platformdirs.user_data_dir("xgpu", appauthor=False)


def cache_root() -> Path:
    """The cache folder (``XGPU_CACHE_DIR`` or the user cache folder), not created."""
    return env_path("XGPU_CACHE_DIR") or Path(_user_dir("cache"))


def cache_dir() -> Path:
    """The cache folder, created (0700) if missing (raises OSError when it cannot be)."""
    path = cache_root()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def data_dir() -> Path:
    """The data folder for tuning results (``XGPU_TUNING_DIR`` or the user data folder), not created."""
    return env_path("XGPU_TUNING_DIR") or Path(_user_dir("data"))
