"""The on-disk compile cache: compiled binaries keyed by everything that can change them.

Layout: ``<cache dir>/binaries/<key>.bin``, where the cache dir is ``XGPU_CACHE_DIR`` or the user
cache folder (platformdirs); ``XGPU_CACHE=0`` disables it. An entry is ``MAGIC``, the SHA-256 of
the payload, the payload's length, then the payload: a truncated or corrupted entry is detected,
discarded with a warning and rebuilt, never loaded. Writes go to a temporary file in the same
folder, then ``os.replace``: readers see a whole entry or none, and processes racing on one cold
kernel all succeed. A cached binary is code that will run, so a folder that others may write to,
or that someone else owns, is refused (with a warning; compilation goes on without the cache).
Least-recently-used entries are evicted past ``XGPU_CACHE_MAX_BYTES`` (1 GiB by default).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._paths import cache_root

MAGIC = b"XGPUBIN1"
_HEADER = struct.Struct("<8s32sQ")
DEFAULT_MAX_BYTES = 1 << 30


class CacheWarning(UserWarning):
    """The compile cache could not be used as it is (an entry was rebuilt, or the folder refused)."""


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    rebuilt: int = 0
    stores: int = 0


stats = CacheStats()
_lock = threading.Lock()
_refused: set[str] = set()


def enabled() -> bool:
    return os.environ.get("XGPU_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def binaries_dir() -> Path:
    return cache_root() / "binaries"


def max_bytes() -> int:
    try:
        return int(os.environ.get("XGPU_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES))
    except ValueError:
        return DEFAULT_MAX_BYTES


def _unsafe_reason(path: Path) -> str | None:
    st = path.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"it is owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"it is writable by others (mode {stat.filemode(st.st_mode)})"
    return None


def usable_dir() -> Path | None:
    """The binaries folder, created private (0700), or None if the cache is off or the folder unsafe."""
    if not enabled():
        return None
    folder = binaries_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        reason = _unsafe_reason(folder) or _unsafe_reason(folder.parent)
    except OSError as exc:
        reason = f"it cannot be used ({exc})"
    if reason:
        if str(folder) not in _refused:
            _refused.add(str(folder))
            warnings.warn(
                f"xgpu compile cache {folder} refused: {reason}. A cached binary is code that will run; "
                f"fix it with: chmod 700 {folder.parent} {folder} (or point XGPU_CACHE_DIR elsewhere). "
                "Compiling without the cache.",
                CacheWarning,
                stacklevel=3,
            )
        return None
    return folder


def make_key(**parts: Any) -> str:
    """A hex key over every part (rendered source, options, backend, device identity, versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def load(key: str) -> bytes | None:
    folder = usable_dir()
    if folder is None:
        return None
    path = folder / f"{key}.bin"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        with _lock:
            stats.misses += 1
        return None
    except OSError:
        return None
    problem = None
    if len(data) < _HEADER.size:
        problem = "truncated header"
    else:
        magic, digest, length = _HEADER.unpack_from(data)
        payload = data[_HEADER.size:]
        if magic != MAGIC:
            problem = "not an xgpu cache entry"
        elif len(payload) != length:
            problem = f"truncated: {len(payload)} of {length} bytes"
        elif hashlib.sha256(payload).digest() != digest:
            problem = "checksum mismatch"
    if problem:
        warnings.warn(f"xgpu compile cache entry {path.name} is corrupt ({problem}): discarded, rebuilding",
                      CacheWarning, stacklevel=3)
        try:
            path.unlink()
        except OSError:
            pass
        with _lock:
            stats.rebuilt += 1
            stats.misses += 1
        return None
    try:
        os.utime(path)  # least recently used goes first
    except OSError:
        pass
    with _lock:
        stats.hits += 1
    return payload


def store(key: str, payload: bytes) -> None:
    folder = usable_dir()
    if folder is None:
        return
    header = _HEADER.pack(MAGIC, hashlib.sha256(payload).digest(), len(payload))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key[:16]}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / f"{key}.bin")
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return
    with _lock:
        stats.stores += 1
    evict(folder)


def entries(folder: Path | None = None) -> list[Path]:
    folder = folder or binaries_dir()
    return sorted(folder.glob("*.bin")) if folder.is_dir() else []


def evict(folder: Path, limit: int | None = None) -> int:
    """Delete least-recently-used entries until the folder holds at most ``limit`` bytes."""
    limit = max_bytes() if limit is None else limit
    files = []
    for p in entries(folder):
        try:
            st = p.stat()
        except OSError:
            continue
        files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    removed = 0
    for _, size, p in sorted(files, key=lambda t: t[0]):
        if total <= limit:
            break
        try:
            p.unlink()
            total -= size
            removed += 1
        except OSError:
            pass
    return removed


def info() -> dict[str, Any]:
    files = entries()
    return {
        "location": str(binaries_dir()),
        "enabled": enabled(),
        "entries": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "max_bytes": max_bytes(),
        "this_process": {"hits": stats.hits, "misses": stats.misses, "rebuilt": stats.rebuilt,
                         "stores": stats.stores},
    }


def clear() -> int:
    files = entries()
    for p in files:
        p.unlink(missing_ok=True)
    return len(files)
