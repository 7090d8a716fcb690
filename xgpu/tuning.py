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
import re
import stat as stat_mod
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from ._paths import data_dir, env_flag
from .errors import InvalidArgumentError

__all__ = ["TuningWarning", "clear", "device_identity", "entries", "is_current", "lookup", "record", "register_check",
           "store_path"]

STORE_FORMAT = "xgpu-tuning/1"
_lock = threading.Lock()
_memo: dict[str, Any] = {}  # path -> (mtime, entries); the library looks up on every new kernel


class TuningWarning(UserWarning):
    """The tuning store could not be read (corrupt or foreign file): it is ignored."""


def store_path() -> Path:
    """The JSON file tuning results live in (``XGPU_TUNING_DIR`` or the user data folder)."""
    return _store_path(os.environ.get("XGPU_TUNING_DIR"))


@functools.lru_cache(maxsize=8)
def _store_path(setting: str | None) -> Path:
    # per value of the setting: building the path took tens of microseconds of every conv2d call
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


_MAX_STORE_BYTES = 64 << 20
_KEY = re.compile(r"^[0-9a-f]{32}$")


def _entry_problem(e: Any) -> str | None:
    """Why a stored entry cannot be used (None: its fields have the types and ranges xgpu writes)."""
    if not isinstance(e, dict):
        return f"an entry is a {type(e).__name__}, not an object"
    if not isinstance(e.get("key"), str) or not _KEY.match(e["key"]):
        return "an entry has no valid 'key'"
    for field in ("kernel", "dtype", "shape_class"):
        if not isinstance(e.get(field), str) or not e[field]:
            return f"entry {e['key'][:8]} has no string {field!r}"
    if not isinstance(e.get("device"), dict):
        return f"entry {e['key'][:8]} has no 'device' object"
    config = e.get("config")
    if not isinstance(config, dict) or not config:
        return f"entry {e['key'][:8]} has no 'config' object"
    for name, value in config.items():
        if not isinstance(name, str) or not name.isidentifier():
            return f"entry {e['key'][:8]} has a config field named {name!r}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not 0 <= value <= 1 << 16:
                return f"entry {e['key'][:8]}: config {name}={value} is out of range (0 to 65536)"
        elif not (isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", value)):
            return f"entry {e['key'][:8]}: config {name}={value!r} is not a whole number, a bool or a short name"
    return None


def _load_json(path: Path) -> Any:
    """The file's JSON; OSError/ValueError (with the reason) for a folder, a huge file, a FIFO, bad JSON or
    nesting too deep to read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            raise ValueError("it is not a regular file")
        if st.st_size > _MAX_STORE_BYTES:
            raise ValueError(f"it is {st.st_size} bytes, more than a tuning store ever holds")
        with os.fdopen(os.dup(fd), "rb") as f:
            raw = f.read()
    finally:
        os.close(fd)
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("its JSON is nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not text ({exc})") from None


def _parse(path: Path) -> list[dict[str, Any]]:
    """The store's valid entries; a file that is not an xgpu store raises ValueError. Entries with wrong
    fields are skipped with one warning naming the first problem."""
    data = _load_json(path)
    if not isinstance(data, dict) or data.get("format") != STORE_FORMAT or not isinstance(data.get("entries"), list):
        raise ValueError(f"not an xgpu tuning store (no \"format\": \"{STORE_FORMAT}\")")
    good, problems = [], []
    for e in data["entries"]:
        problem = _entry_problem(e)
        if problem:
            problems.append(problem)
        else:
            good.append(e)
    if problems:
        warnings.warn(f"tuning file {path}: {len(problems)} entr{'y' if len(problems) == 1 else 'ies'} ignored "
                      f"({problems[0]}); the kernels' default variants are used for them", TuningWarning,
                      stacklevel=4)
    return good


def _read(path: Path) -> list[dict[str, Any]]:
    """The store's entries; a corrupt or foreign file warns (once per change) and reads as empty."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return []
    except OSError as exc:
        warnings.warn(f"ignoring the tuning file {path}: {exc}", TuningWarning, stacklevel=3)
        return []
    memo = _memo.get(str(path))
    if memo and memo[0] == (stat.st_mtime_ns, stat.st_size):
        return memo[1]
    try:
        found = _parse(path)
    except (OSError, ValueError) as exc:
        warnings.warn(f"ignoring the tuning file {path}: {exc}; tuned variants are not used until it is fixed or "
                      "removed (`xgpu tune --clear` removes an xgpu store; anything else is left alone)",
                      TuningWarning, stacklevel=3)
        found = []
    _memo[str(path)] = ((stat.st_mtime_ns, stat.st_size), found)
    return found


_checked: dict[str, bool] = {}  # entry key -> passed its check, once per process


def register_check(kernel: str, check: Any) -> None:
    """``check(device, dtype, config) -> None`` (raise to refuse) runs once per process on each stored variant
    of ``kernel`` before it is used: a small problem against the default variant."""
    _checks[kernel] = check


_checks: dict[str, Any] = {}


def entries() -> list[dict[str, Any]]:
    """Every stored tuning result (of every device and version), as dicts."""
    return list(_read(store_path()))


def lookup(kernel: str, device: Any, dtype: Any, shape_class: str) -> dict[str, Any] | None:
    """The stored best variant for this kernel, device (and driver, and xgpu version), dtype and shape
    class, as the dict the kernel's config was saved from; None when never tuned."""
    import numpy as np

    if not env_flag("XGPU_TUNING"):
        return None
    found = _read(store_path())
    if not found:  # nothing stored (the usual case): no key to work out
        return None
    key = _key(kernel, device, np.dtype(dtype).name, shape_class)
    for entry in found:
        if entry.get("key") == key:
            if entry.get("kernel") != kernel:
                return None
            check = _checks.get(kernel)
            if check is not None:
                ok = _checked.get(key)
                if ok is None:
                    try:
                        check(device, np.dtype(dtype), entry["config"])
                        ok = True
                    except Exception as exc:  # a variant that fails its check is never used
                        warnings.warn(f"the tuned {kernel} variant for {getattr(device, 'id', device)}, "
                                      f"{np.dtype(dtype).name}, {shape_class} is ignored: {exc}; the default is "
                                      "used (`xgpu tune` again to replace it)", TuningWarning, stacklevel=3)
                        ok = False
                    _checked[key] = ok
                if not ok:
                    return None
            return dict(entry["config"])
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
        current = _own_entries(path)
        kept = [e for e in current if e.get("key") != entry["key"]]
        _write(path, kept + [entry])
    return entry


def _own_entries(path: Path) -> list[dict[str, Any]]:
    """The valid entries of the xgpu store at ``path`` (none there: []); anything else there is refused,
    never overwritten, moved or deleted."""
    if not os.path.lexists(path):
        return []
    if path.is_symlink() or not path.is_file():
        raise InvalidArgumentError(f"{path} is not a file xgpu wrote (a folder, a link or a device): it is left "
                                   "alone; move it away or set XGPU_TUNING_DIR to another folder")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TuningWarning)
            return _parse(path)
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"{path} is not an xgpu tuning store ({exc}): it is left alone; move it away "
                                   "or set XGPU_TUNING_DIR to another folder") from None


def clear() -> int:
    """Forget every tuning result; returns how many there were. Only an xgpu store is deleted: anything
    else at its path is left alone (InvalidArgumentError saying so)."""
    path = store_path()
    with _lock:
        n = len(_own_entries(path))
        if os.path.lexists(path):
            path.unlink()
        _memo.pop(str(path), None)
        _checked.clear()
    return n


def is_current(entry: dict[str, Any], devices: list[Any]) -> bool:
    """Whether a stored entry applies to one of ``devices`` with today's driver and xgpu."""
    return any(device_identity(d) == entry.get("device") for d in devices)
