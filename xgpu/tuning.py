"""The tuning store the library reads: what ``xgpu tune`` found, per device, looked up when a kernel
picks its variant.

Results are stored per device identity, driver version, xgpu version, dtype and shape class in the
user data folder (``XGPU_TUNING_DIR`` overrides it); the library looks them up (:func:`lookup`) with
no rebuild. The search itself is a tool (``xgpu.tools.tune``), which writes here with :func:`record`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from ._paths import data_dir

__all__ = ["TuningWarning", "clear", "device_identity", "entries", "is_current", "lookup", "record", "store_path"]

STORE_FORMAT = "xgpu-tuning/1"
_lock = threading.Lock()
_memo: dict[str, Any] = {}  # path -> (mtime, entries); the library looks up on every new kernel


class TuningWarning(UserWarning):
    """The tuning store could not be read (corrupt or foreign file): it is ignored."""


def store_path() -> Path:
    """The JSON file tuning results live in (``XGPU_TUNING_DIR`` or the user data folder)."""
    return data_dir() / "tuning.json"


def device_identity(device: Any) -> dict[str, Any]:
    """What a tuning result is valid for: the device, its driver, and this xgpu."""
    from . import __version__

    ident = {k: getattr(device, k) for k in ("backend", "name", "vendor", "platform", "type", "driver_version")}
    ident["uuid"] = device.extra.get("uuid", "")
    ident["xgpu"] = __version__
    return ident


def _key(kernel: str, device: Any, dtype: str, shape_class: str) -> str:
    return _hashed_key(kernel, tuple(sorted(device_identity(device).items())), dtype, shape_class)


@functools.cache
def _hashed_key(kernel: str, identity: tuple, dtype: str, shape_class: str) -> str:
    # hashed once per process and key: lookup() runs whenever the library picks a kernel variant
    blob = json.dumps([kernel, dict(identity), dtype, shape_class], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _parse(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("format") != STORE_FORMAT or not isinstance(data.get("entries"), list):
        raise ValueError(f"not an xgpu tuning store (no \"format\": \"{STORE_FORMAT}\")")
    return [e for e in data["entries"] if isinstance(e, dict) and "key" in e and "config" in e]


def _read(path: Path) -> list[dict[str, Any]]:
    """The store's entries; a corrupt or foreign file warns (once per change) and reads as empty."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return []
    memo = _memo.get(str(path))
    if memo and memo[0] == (stat.st_mtime_ns, stat.st_size):
        return memo[1]
    try:
        found = _parse(path)
    except (OSError, ValueError) as exc:
        warnings.warn(f"ignoring the tuning file {path}: {exc}; tuned variants are not used until "
                      "`xgpu tune` writes a new one (the bad file is then kept beside it)", TuningWarning, stacklevel=3)
        found = []
    _memo[str(path)] = ((stat.st_mtime_ns, stat.st_size), found)
    return found


def entries() -> list[dict[str, Any]]:
    """Every stored tuning result (of every device and version), as dicts."""
    return list(_read(store_path()))


def lookup(kernel: str, device: Any, dtype: Any, shape_class: str) -> dict[str, Any] | None:
    """The stored best variant for this kernel, device (and driver, and xgpu version), dtype and shape
    class, as the dict the kernel's config was saved from; None when never tuned."""
    import numpy as np

    if os.environ.get("XGPU_TUNING", "1") == "0":
        return None
    key = _key(kernel, device, np.dtype(dtype).name, shape_class)
    for entry in _read(store_path()):
        if entry.get("key") == key:
            return entry["config"]
    return None


def _write(path: Path, found: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tuning-", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump({"format": STORE_FORMAT, "entries": found}, f, indent=1)
    os.replace(tmp, path)


def record(kernel: str, device: Any, dtype: Any, shape_class: str, config: dict[str, Any],
           **figures: Any) -> dict[str, Any]:
    """Store ``config`` as the best variant (replacing an earlier result for the same key)."""
    import numpy as np

    path = store_path()
    dtype = np.dtype(dtype).name
    entry = {
        "key": _key(kernel, device, dtype, shape_class),
        "kernel": kernel, "dtype": dtype, "shape_class": shape_class, "device_id": device.id,
        "device": device_identity(device), "config": config,
        "tuned": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **figures,
    }
    with _lock:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TuningWarning)
            current = _read(path)
        if path.exists() and not current:
            try:  # keep a file we could not read rather than overwrite it
                _parse(path)
            except (OSError, ValueError):
                path.replace(path.with_name(f"tuning.json.bad-{int(time.time())}"))
        kept = [e for e in current if e.get("key") != entry["key"]]
        _write(path, kept + [entry])
    return entry


def clear() -> int:
    """Forget every tuning result; returns how many there were."""
    path = store_path()
    with _lock:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TuningWarning)
            n = len(_read(path))
        if path.exists():
            path.unlink()
    return n


def is_current(entry: dict[str, Any], devices: list[Any]) -> bool:
    """Whether a stored entry applies to one of ``devices`` with today's driver and xgpu."""
    return any(device_identity(d) == entry.get("device") for d in devices)
