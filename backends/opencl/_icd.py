"""Make every OpenCL implementation installed here visible to the ICD loader.

The ICD loader reads one folder of ``.icd`` files (``/etc/OpenCL/vendors``, or ``OCL_ICD_VENDORS``).
Two implementations we support are not announced there by their packages:

* Intel's CPU runtime from PyPI (``intel-opencl-rt``) ships an ICD file holding a placeholder path;
  its library lies in ``<prefix>/lib/libintelocl.so``.
* Debian's Oclgrind ships ``liboclgrind-rt-icd.so`` but no ICD file.

Mesa's Clover (``mesa.icd``, installed beside rusticl) lists a platform with no devices without a GPU:
it is left out.

Unless the user set ``OCL_ICD_VENDORS`` themselves, we write a folder holding the system's ICD
files plus those two (where installed) and point ``OCL_ICD_VENDORS`` at it, before the loader
first runs. File names sort in a fixed order, so platform numbers are stable.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path

from xgpu.plugin import unsafe_folder_reason

SYSTEM_VENDORS = Path("/etc/OpenCL/vendors")
OCLGRIND_LIBRARIES = (
    "/usr/lib/oclgrind/liboclgrind-rt-icd.so",
    "/usr/lib/x86_64-linux-gnu/oclgrind/liboclgrind-rt-icd.so",
    "/usr/local/lib/liboclgrind-rt-icd.so",
)

#: ICD libraries never listed: Mesa's Clover (no devices without a GPU; rusticl replaces it)
LEFT_OUT = ("libMesaOpenCL.so.1", "libMesaOpenCL.so")


def _library_exists(library: str) -> bool:
    # a bare soname ("libpocl.so.2") is found by the dynamic linker: trust it
    return "/" not in library or Path(library).exists()


def vendor_entries() -> dict[str, str]:
    """ICD file name -> library, for every implementation found on this machine."""
    entries: dict[str, str] = {}
    if SYSTEM_VENDORS.is_dir():
        for icd in sorted(SYSTEM_VENDORS.glob("*.icd")):
            try:
                library = icd.read_text().strip()
            except OSError:
                continue
            if library and _library_exists(library) and Path(library).name not in LEFT_OUT:
                entries[icd.name] = library
    names = {Path(lib).name for lib in entries.values()}
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        intel = Path(prefix) / "lib" / "libintelocl.so"
        # one Intel runtime only: two copies of the library would list every device twice
        if intel.exists() and intel.name not in names:
            entries["intel-cpu-runtime.icd"] = str(intel)
            break
    for candidate in OCLGRIND_LIBRARIES:
        if Path(candidate).exists() and not any("oclgrind" in name for name in names):
            entries["oclgrind.icd"] = candidate
            break
    return entries


def _unsafe(path: Path) -> str | None:
    """Why ``path`` must not hold files that make the ICD loader load code: the compile cache's rule."""
    return unsafe_folder_reason(path)


def _verify(folder: Path, entries: dict[str, str]) -> str | None:
    """Why ``folder`` is not exactly the vendor folder xgpu writes for ``entries`` (None: it is)."""
    reason = _unsafe(folder)
    if reason:
        return reason
    names = sorted(os.listdir(folder))
    if names != sorted(entries):
        extra = sorted(set(names) - set(entries))
        return f"it holds other files than xgpu wrote ({', '.join(extra) or 'some are missing'})"
    for name, library in entries.items():
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            return f"{name} cannot be opened safely ({exc.strerror})"
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()) or (
                st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            ):
                return f"{name} is not a private regular file of yours"
            if os.read(fd, 65536) != (library + "\n").encode():
                return f"{name} names another library than xgpu wrote"
        finally:
            os.close(fd)
    return None


def _write_private(parent: Path, entries: dict[str, str], prefix: str) -> Path:
    """A new folder (unpredictable name, 0700) holding the ICD files, each created exclusively (O_EXCL)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    for name, library in entries.items():
        fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(library + "\n")
    return tmp


def _remove_own(folder: Path, entries: dict[str, str]) -> None:
    for name in entries:
        with contextlib.suppress(OSError):
            os.unlink(folder / name)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _cached_folder(cache_root: Path, entries: dict[str, str], digest: str) -> Path:
    """The vendor folder under the cache folder, made or verified; raises OSError/ValueError if unusable."""
    cache_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    reason = _unsafe(cache_root)
    if reason:
        raise ValueError(f"the cache folder {cache_root} is unsafe: {reason}")
    folder = cache_root / f"icd-{digest}"
    if not os.path.lexists(folder):
        tmp = _write_private(cache_root, entries, f".icd-{digest}-")
        try:
            os.rename(tmp, folder)  # fails when another process (or anyone) made it first: then verified
        except OSError:
            _remove_own(tmp, entries)
    reason = _verify(folder, entries)
    if reason:
        raise ValueError(f"{folder} is not used: {reason}")
    return folder


def ensure_vendor_folder(cache_root: Path | None) -> str | None:
    """Point ``OCL_ICD_VENDORS`` at a folder listing every implementation; return it (None: left alone).

    An ICD file makes the loader load a library: the folder must be the user's alone. It lives under the
    cache folder (checked like it: owned by the user, writable by no one else, no symlink) and is created
    under an unpredictable temporary name with files opened ``O_EXCL|O_NOFOLLOW``, then renamed into place;
    one that exists is used only if it holds exactly the files xgpu would write, private and of the user's.
    Otherwise (or with no usable cache folder) a private temporary folder of this process is used, and a
    warning names the folder that was refused. Listing devices never fails on it.
    """
    if os.environ.get("OCL_ICD_VENDORS"):
        return None
    entries = vendor_entries()
    system = {icd.name for icd in SYSTEM_VENDORS.glob("*.icd")} if SYSTEM_VENDORS.is_dir() else set()
    if set(entries) == system:
        return None  # nothing to add or leave out: the loader's own folder is complete
    digest = hashlib.sha256(repr(sorted(entries.items())).encode()).hexdigest()[:16]
    folder: Path | None = None
    problem, refused = "no cache folder", False
    if cache_root is not None:
        try:
            folder = _cached_folder(cache_root, entries, digest)
        except OSError as exc:  # a cache folder that cannot be written: the compile cache warns about it
            problem = f"{cache_root} cannot be written ({exc.strerror or exc})"
        except ValueError as exc:  # unsafe, or something planted: say so
            problem, refused = str(exc), True
    if folder is None:
        try:
            folder = _write_private(Path(tempfile.gettempdir()), entries, "xgpu-icd-")
        except OSError as exc:
            warnings.warn(f"xgpu could not write an OpenCL vendor folder ({problem}; {exc}): only the system's "
                          "ICD files are used", RuntimeWarning, stacklevel=3)
            return None
        atexit.register(_remove_own, folder, dict(entries))
        if refused:
            warnings.warn(f"xgpu's OpenCL vendor folder under {cache_root}: {problem}; using the private "
                          f"folder {folder} for this process", RuntimeWarning, stacklevel=3)
    os.environ["OCL_ICD_VENDORS"] = str(folder)
    return str(folder)
