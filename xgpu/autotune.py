"""Per-device autotuning: a budgeted search over a kernel's variants, and a store of what it found.

A kernel that can be tuned describes itself as a :class:`Tunable` (its default variant, the
neighbours of a variant, and how to time one while checking its result). :func:`tune` walks from
the default towards faster neighbours until the time budget is spent, discarding candidates that
fail to compile, fail to launch or give a wrong answer. Results are stored per device identity,
driver version, xgpu version, dtype and shape class in the user data folder (``XGPU_TUNING_DIR``
overrides it); the library looks them up on later runs (:func:`lookup`), with no rebuild.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._paths import data_dir
from .errors import InvalidArgumentError, XgpuError

__all__ = ["BudgetExceeded", "TuneResult", "Tunable", "TuningWarning", "clear", "entries", "lookup", "record", "store_path", "tune"]

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


@dataclass
class Tunable:
    """A kernel's search space on one device and dtype.

    ``default``: the variant the library picks untuned; ``neighbours(config)``: variants one step away
    (already limited to what the device can take); ``measure(config)``: GF/s of one variant on the
    tuning shape, raising ``AssertionError`` for a wrong result (or an xgpu error when it cannot run);
    ``label(config)`` names a variant; ``as_dict(config)`` is what gets stored.
    """

    kernel: str
    shape_class: str
    shape: str
    default: Any
    neighbours: Callable[[Any], list[Any]]
    measure: Callable[[Any], float]
    label: Callable[[Any], str]
    as_dict: Callable[[Any], dict[str, Any]]
    #: ``compile(config, timeout_s)``: build the variant where it can be stopped (a child process that
    #: fills the compile cache), raising :class:`BudgetExceeded` when it does not finish in time.
    compile: Callable[[Any, float], None] | None = None


class BudgetExceeded(XgpuError):
    """A candidate could not be compiled in the time left."""


@dataclass
class TuneResult:
    best: Any
    best_gflops: float
    default: Any
    default_gflops: float
    tried: list[tuple[str, float | None, str]] = field(default_factory=list)  # (label, GF/s, why discarded)
    seconds: float = 0.0
    stop: str = ""

    @property
    def speedup(self) -> float:
        return self.best_gflops / self.default_gflops if self.default_gflops else float("nan")


def tune(t: Tunable, budget_s: float,
         progress: Callable[[str, float | None, str, float], None] | None = None) -> TuneResult:
    """Hill-climb from ``t.default``: measure the neighbours of the best variant so far, move to any that is
    faster, until no neighbour is left or the budget would be overrun. ``progress(label, gflops, note,
    elapsed)`` is called after each candidate."""
    if budget_s <= 0:
        raise InvalidArgumentError(f"the tuning budget must be positive, not {budget_s} s")
    start = time.perf_counter()
    costs: list[float] = []

    def attempt(config, compile: bool = True) -> tuple[float | None, str]:
        t0 = time.perf_counter()
        try:
            if compile and t.compile is not None:
                # leave room for the timing runs, whose cost is known from earlier candidates
                t.compile(config, budget_s - (t0 - start) - 1.25 * max(costs, default=0.0))
                t0 = time.perf_counter()
            value, why = t.measure(config), ""
        except BudgetExceeded:
            raise
        except AssertionError as exc:
            value, why = None, f"wrong result: {str(exc).splitlines()[0] if str(exc) else 'mismatch'}"
        except XgpuError as exc:
            value, why = None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        costs.append(time.perf_counter() - t0)
        result.tried.append((t.label(config), value, why))
        if progress:
            progress(t.label(config), value, why, time.perf_counter() - start)
        return value, why

    result = TuneResult(t.default, 0.0, t.default, 0.0)
    value, why = attempt(t.default)
    if value is None:
        raise XgpuError(f"the default {t.kernel} variant {t.label(t.default)} failed on this device: {why}")
    result.best_gflops = result.default_gflops = value
    seen = {t.label(t.default)}
    frontier = list(t.neighbours(t.default))
    result.stop = "no untried neighbour of the best variant is left"
    while frontier:
        config = frontier.pop(0)
        name = t.label(config)
        if name in seen:
            continue
        elapsed = time.perf_counter() - start
        # timing runs cannot be interrupted: start a candidate only if the slowest so far would still fit
        if elapsed + 1.25 * max(costs) > budget_s:
            result.stop = f"budget: {budget_s:.0f} s would be overrun by another candidate"
            break
        seen.add(name)
        try:
            value, _ = attempt(config)
        except BudgetExceeded as exc:
            result.stop = f"budget: {exc}"
            break
        if value is not None and value > result.best_gflops * 1.02:
            result.best, result.best_gflops = config, value
            frontier = [c for c in t.neighbours(config) if t.label(c) not in seen] + frontier
    # measure the default and the winner once more, side by side, so that drift in the machine's speed
    # during the search does not make the comparison (each keeps its better figure)
    if result.best is not t.default and time.perf_counter() - start + 2.5 * max(costs) <= budget_s:
        for config, attr in ((t.default, "default_gflops"), (result.best, "best_gflops")):
            again, _ = attempt(config, compile=False)  # both are compiled by now
            if again is not None:
                setattr(result, attr, max(getattr(result, attr), again))
        if result.best_gflops < result.default_gflops:
            result.best, result.best_gflops = t.default, result.default_gflops
    result.seconds = time.perf_counter() - start
    return result
