"""The on-disk compile cache: compiled binaries keyed by everything that can change them.

Layout: ``<cache dir>/binaries/<key>.bin``, where the cache dir is ``XGPU_CACHE_DIR`` or the user
cache folder (platformdirs); ``XGPU_CACHE=0`` disables it.

Trust model (docs/cache.md says the same for users):

* A cached binary is code that will run. The folder must be the user's own and writable by no one
  else (refused with one warning otherwise; xgpu then runs uncached). An entry must be a regular
  file owned by the user and writable by no one else: it is opened with ``O_NOFOLLOW`` (a planted
  symlink is never followed) and ``O_NONBLOCK`` (a FIFO cannot hang a compile), and checked with
  ``fstat`` on the open descriptor, not before opening it.
* An entry is ``MAGIC``, the key it was stored under, the SHA-256 of key and payload, the payload's
  length, then the payload. The key is verified: an entry renamed or copied under another key is
  never run. A damaged xgpu entry (our magic, wrong checksum, length or key) is deleted and rebuilt.
* Only files whose header proves they are xgpu's are counted, evicted or deleted (by ``clear``,
  eviction and damaged-entry rebuilds). Anything else in the folder is left alone and reported by
  :func:`info`.
* Writes go to a temporary file (``.xgpu-tmp-*``) in the same folder, then ``os.replace``: readers
  see a whole entry or none. Temporary files a killed writer left are removed by later writers once
  they are an hour old, and shown by :func:`info`.

Least-recently-used entries are evicted past ``XGPU_CACHE_MAX_BYTES`` (1 GiB by default).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import struct
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._paths import cache_root, env_bytes, env_flag

MAGIC = b"XGPUBIN2"
#: Headers of earlier xgpu versions: still xgpu's (counted, evicted, deleted), never loaded.
OLD_MAGICS = (b"XGPUBIN1",)
# magic, key (32 bytes), SHA-256 over key and payload, payload length
_HEADER = struct.Struct("<8s32s32sQ")
DEFAULT_MAX_BYTES = 1 << 30
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_ENTRY_RE = re.compile(r"^[0-9a-f]{64}\.bin$")
TMP_PREFIX = ".xgpu-tmp-"
#: A temporary file older than this is a killed writer's: later writers remove it.
STALE_TMP_SECONDS = 3600.0
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class CacheWarning(UserWarning):
    """The compile cache could not be used as it is (an entry was rebuilt or left alone, or the folder refused)."""


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    rebuilt: int = 0
    stores: int = 0


stats = CacheStats()
_lock = threading.Lock()
_refused: set[str] = set()
_warned: set[str] = set()


def _warn_once(tag: str, message: str, stacklevel: int = 3) -> None:
    with _lock:
        if tag in _warned:
            return
        _warned.add(tag)
    warnings.warn(message, CacheWarning, stacklevel=stacklevel + 1)


def enabled() -> bool:
    return env_flag("XGPU_CACHE")


def binaries_dir() -> Path:
    return cache_root() / "binaries"


def max_bytes() -> int:
    return env_bytes("XGPU_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES)


def unsafe_reason(path: Path) -> str | None:
    """Why ``path`` (a folder) must not hold code xgpu will run, or None when it is safe.

    The folder itself is looked at, never a link's target: a symlink is refused.
    """
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link (xgpu keeps code only in a real folder of yours)"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a folder"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"it is owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"it is writable by others (mode {stat.filemode(st.st_mode)})"
    return None


_unsafe_reason = unsafe_reason  # the name other modules used


def _fix_hint(folder: Path, reason: str) -> str:
    if "owned by" in reason:
        return (f"fix it with: chown -R $(id -u) {folder.parent} (as its owner or root), or point XGPU_CACHE_DIR "
                "at a folder of your own")
    if "symbolic link" in reason or "not a folder" in reason:
        return f"remove {folder} or point XGPU_CACHE_DIR at a folder of your own"
    if "writable by others" in reason:
        return f"fix it with: chmod 700 {folder.parent} {folder} (or point XGPU_CACHE_DIR elsewhere)"
    return "point XGPU_CACHE_DIR at a folder you can write to, or set XGPU_CACHE=0"


def usable_dir() -> Path | None:
    """The binaries folder, created private (0700), or None if the cache is off or the folder unusable.

    A folder that cannot be used (unsafe, read-only, a file in the way, no space) gives one warning;
    xgpu then compiles without the disk cache.
    """
    if not enabled():
        return None
    folder = binaries_dir()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        reason = unsafe_reason(folder.parent)
        if reason is None:
            try:
                os.mkdir(folder, 0o700)
            except FileExistsError:
                pass
            reason = unsafe_reason(folder)
        if reason is None and not os.access(folder, os.W_OK | os.X_OK):
            reason = "it is not writable"
    except OSError as exc:
        reason = f"it cannot be used ({exc.strerror or exc})"
    if reason:
        if str(folder) not in _refused:
            _refused.add(str(folder))
            warnings.warn(
                f"xgpu compile cache {folder} refused: {reason}. A cached binary is code that will run; "
                f"{_fix_hint(folder, reason)}. Compiling without the cache.",
                CacheWarning,
                stacklevel=3,
            )
        return None
    return folder


def make_key(**parts: Any) -> str:
    """A hex key over every part (rendered source, options, backend, device identity, versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


# --------------------------------------------------------------------------------------------------
# Reading one file safely


def _open_regular(path: Path) -> tuple[int | None, os.stat_result | None, str | None]:
    """Open ``path`` without following a link or blocking on a FIFO; (fd, stat, None) for a regular file of
    the user's that no one else can write, else (None, stat or None, why not). FileNotFoundError passes."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            return None, None, "it is a symbolic link"
        return None, None, f"it cannot be opened ({exc.strerror})"
    st = os.fstat(fd)
    why = None
    if not stat.S_ISREG(st.st_mode):
        why = "it is not a regular file"
    elif hasattr(os, "getuid") and st.st_uid != os.getuid():
        why = f"it is owned by uid {st.st_uid}, not by you"
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        why = f"it is writable by others (mode {stat.filemode(st.st_mode)})"
    if why:
        os.close(fd)
        return None, st, why
    return fd, st, None


def _read_fd(fd: int, limit: int | None = None) -> bytes:
    chunks, left = [], limit
    while left is None or left > 0:
        chunk = os.read(fd, 1 << 20 if left is None else min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        if left is not None:
            left -= len(chunk)
    return b"".join(chunks)


def _is_ours_header(head: bytes) -> bool:
    return head[:8] == MAGIC or head[:8] in OLD_MAGICS


def xgpu_entry(path: Path) -> os.stat_result | None:
    """The stat of ``path`` if its header proves it is an xgpu cache entry of the user's, else None."""
    try:
        fd, st, _why = _open_regular(path)
    except OSError:
        return None
    if fd is None:
        return None
    try:
        head = _read_fd(fd, 8)
    except OSError:
        return None
    finally:
        os.close(fd)
    return st if _is_ours_header(head) else None


# --------------------------------------------------------------------------------------------------
# Entries


def _pack(key: str, payload: bytes) -> bytes:
    raw_key = bytes.fromhex(key)
    digest = hashlib.sha256(raw_key + payload).digest()
    return _HEADER.pack(MAGIC, raw_key, digest, len(payload)) + payload


def _check(key: str, data: bytes) -> tuple[bytes | None, str | None]:
    """(payload, None) for a whole entry of ``key``; (None, problem) otherwise."""
    if data[:8] in OLD_MAGICS:
        return None, "written by an earlier xgpu version"
    if len(data) < _HEADER.size:
        return None, "truncated header"
    magic, raw_key, digest, length = _HEADER.unpack_from(data)
    payload = data[_HEADER.size:]
    if len(payload) != length:
        return None, f"truncated: {len(payload)} of {length} bytes"
    if hashlib.sha256(raw_key + payload).digest() != digest:
        return None, "checksum mismatch"
    if raw_key != bytes.fromhex(key):
        return None, "it holds the entry of another key (renamed or copied over)"
    return payload, None


def _valid_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"a compile-cache key is 64 lowercase hex digits, not {key!r}")


def load(key: str, *, counted: bool = True) -> bytes | None:
    """The payload stored under ``key``, or None (a miss). Never returns a foreign or damaged entry.
    ``counted=False``: not a binary (a compiled template module): left out of :data:`stats`."""
    tally = stats if counted else CacheStats()
    _valid_key(key)
    folder = usable_dir()
    if folder is None:
        return None
    path = folder / f"{key}.bin"
    try:
        fd, _st, why = _open_regular(path)
    except FileNotFoundError:
        with _lock:
            tally.misses += 1
        return None
    if fd is None:
        _warn_once(f"foreign:{path}", f"xgpu compile cache: {path} is not used and left alone: {why}. Only a "
                   "regular file of yours that no one else can write is trusted; that kernel compiles uncached "
                   "until you remove it")
        with _lock:
            tally.misses += 1
        return None
    try:
        data = _read_fd(fd)
    except OSError:
        data = b""
    finally:
        os.close(fd)
    if not _is_ours_header(data):
        _warn_once(f"foreign:{path}", f"xgpu compile cache: {path} is not an xgpu cache entry (no xgpu header): "
                   "not used and left alone; that kernel compiles uncached until you remove it")
        with _lock:
            tally.misses += 1
        return None
    payload, problem = _check(key, data)
    if problem:
        warnings.warn(f"xgpu compile cache entry {path.name} is damaged ({problem}): discarded, rebuilding",
                      CacheWarning, stacklevel=3)
        _remove_if_ours(path)
        with _lock:
            tally.rebuilt += 1
            tally.misses += 1
        return None
    try:
        os.utime(path, follow_symlinks=False)  # least recently used goes first
    except (OSError, NotImplementedError):
        pass
    with _lock:
        tally.hits += 1
    return payload


def _remove_if_ours(path: Path) -> bool:
    """Delete ``path`` only if its header proves it is xgpu's (a link is removed, never followed)."""
    if xgpu_entry(path) is None:
        return False
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def _clean_stale_tmp(folder: Path, now: float | None = None) -> int:
    """Remove temporary files that killed writers left (xgpu's name, user's, older than an hour)."""
    now = time.time() if now is None else now
    removed = 0
    for tmp in _tmp_files(folder):
        if now - tmp[1].st_mtime > STALE_TMP_SECONDS:
            try:
                os.unlink(tmp[0])
                removed += 1
            except OSError:
                pass
    return removed


def _tmp_files(folder: Path) -> list[tuple[Path, os.stat_result]]:
    found = []
    try:
        scan = list(os.scandir(folder))
    except OSError:
        return []
    for e in scan:
        if not (e.name.startswith(TMP_PREFIX) and e.name.endswith(".tmp")):
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            continue
        # empty (killed before writing) or holding an xgpu header: ours
        if st.st_size and xgpu_entry(Path(e.path)) is None:
            continue
        found.append((Path(e.path), st))
    return found


def store(key: str, payload: bytes, *, counted: bool = True) -> None:
    """Write ``payload`` under ``key`` (atomically). Something not xgpu's at that path is left alone."""
    _valid_key(key)
    folder = usable_dir()
    if folder is None:
        return
    target = folder / f"{key}.bin"
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        pass
    except OSError:
        return
    else:
        if not stat.S_ISREG(st.st_mode) or xgpu_entry(target) is None:
            return  # not ours: never replaced (load() already warned)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{TMP_PREFIX}{key[:16]}-", suffix=".tmp")
    except OSError as exc:
        _warn_once(f"write:{folder}", f"xgpu compile cache {folder} cannot be written ({exc.strerror or exc}): "
                   "compiling without storing binaries")
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_pack(key, payload))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        _warn_once(f"write:{folder}", f"xgpu compile cache {folder} cannot be written ({exc.strerror or exc}): "
                   "compiling without storing binaries")
        return
    with _lock:
        if counted:
            stats.stores += 1
    _clean_stale_tmp(folder)
    evict(folder)


def _scan(folder: Path) -> tuple[list[tuple[Path, os.stat_result]], list[str]]:
    """(xgpu's entries with their stat, names of everything else) in ``folder``; temporary files apart."""
    ours: list[tuple[Path, os.stat_result]] = []
    foreign: list[str] = []
    try:
        scan = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return [], []
    for e in scan:
        if e.name.startswith(TMP_PREFIX) and e.name.endswith(".tmp"):
            continue
        path = Path(e.path)
        st = xgpu_entry(path) if _ENTRY_RE.match(e.name) else None
        if st is not None:
            ours.append((path, st))
        else:
            foreign.append(e.name)
    return ours, foreign


def entries(folder: Path | None = None) -> list[Path]:
    """The xgpu entries in the cache folder (files whose header proves they are xgpu's)."""
    return [p for p, _ in _scan(folder or binaries_dir())[0]]


def evict(folder: Path, limit: int | None = None) -> int:
    """Delete least-recently-used xgpu entries until they take at most ``limit`` bytes; nothing else."""
    limit = max_bytes() if limit is None else limit
    files = [(st.st_mtime, st.st_size, p) for p, st in _scan(folder)[0]]
    total = sum(size for _, size, _ in files)
    removed = 0
    for _, size, p in sorted(files, key=lambda t: t[0]):
        if total <= limit:
            break
        if _remove_if_ours(p):
            total -= size
            removed += 1
    return removed


def info() -> dict[str, Any]:
    """Where the cache is and what it holds: xgpu's entries, and what else lies there (left alone)."""
    folder = binaries_dir()
    ours, foreign = _scan(folder)
    tmps = _tmp_files(folder)
    now = time.time()
    return {
        "location": str(folder),
        "enabled": enabled(),
        "entries": len(ours),
        "bytes": sum(st.st_size for _, st in ours),
        "max_bytes": max_bytes(),
        "foreign": foreign,
        "temporary": [{"name": p.name, "bytes": st.st_size, "stale": now - st.st_mtime > STALE_TMP_SECONDS}
                      for p, st in tmps],
        "this_process": {"hits": stats.hits, "misses": stats.misses, "rebuilt": stats.rebuilt,
                         "stores": stats.stores},
    }


def clear_report() -> dict[str, Any]:
    """Delete xgpu's entries (and killed writers' temporary files); leave and list everything else."""
    folder = binaries_dir()
    ours, foreign = _scan(folder)
    removed = sum(1 for p, _ in ours if _remove_if_ours(p))
    tmp_removed = _clean_stale_tmp(folder)
    return {"location": str(folder), "removed": removed, "temporary_removed": tmp_removed, "left": foreign}


def clear() -> int:
    """Delete xgpu's entries only; returns how many. Files xgpu did not write are left (see :func:`info`)."""
    return clear_report()["removed"]
