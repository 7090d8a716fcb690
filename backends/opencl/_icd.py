"""Make every OpenCL implementation installed here visible to the ICD loader.

The ICD loader reads one folder of ``.icd`` files (``/etc/OpenCL/vendors``, or ``OCL_ICD_VENDORS``).
Two implementations we support are not announced there by their packages:

* Intel's CPU runtime from PyPI (``intel-opencl-rt``) ships an ICD file holding a placeholder path;
  its library lies in ``<prefix>/lib/libintelocl.so``.
* Debian's Oclgrind ships ``liboclgrind-rt-icd.so`` but no ICD file.

Unless the user set ``OCL_ICD_VENDORS`` themselves, we write a folder holding the system's ICD
files plus those two (where installed) and point ``OCL_ICD_VENDORS`` at it, before the loader
first runs. File names sort in a fixed order, so platform numbers are stable.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

SYSTEM_VENDORS = Path("/etc/OpenCL/vendors")
OCLGRIND_LIBRARIES = (
    "/usr/lib/oclgrind/liboclgrind-rt-icd.so",
    "/usr/lib/x86_64-linux-gnu/oclgrind/liboclgrind-rt-icd.so",
    "/usr/local/lib/liboclgrind-rt-icd.so",
)


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
            if library and _library_exists(library):
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


def ensure_vendor_folder(cache_root: Path) -> str | None:
    """Point ``OCL_ICD_VENDORS`` at a folder listing every implementation; return it (None: left alone)."""
    if os.environ.get("OCL_ICD_VENDORS"):
        return None
    entries = vendor_entries()
    system = {icd.name for icd in SYSTEM_VENDORS.glob("*.icd")} if SYSTEM_VENDORS.is_dir() else set()
    if set(entries) <= system:
        return None  # nothing to add: the loader's own folder is complete
    digest = hashlib.sha256(repr(sorted(entries.items())).encode()).hexdigest()[:16]
    folder = cache_root / f"icd-{digest}"
    if not folder.is_dir():
        tmp = cache_root / f".icd-{digest}-{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        for name, library in entries.items():
            (tmp / name).write_text(library + "\n")
        try:
            tmp.rename(folder)
        except OSError:  # another process made it first
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
    os.environ["OCL_ICD_VENDORS"] = str(folder)
    return str(folder)
