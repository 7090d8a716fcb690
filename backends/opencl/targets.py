"""Offline compile targets of the OpenCL backend: AMD and Intel GPUs, with no GPU present.

* ``amd:gfx908``... : Clang (``clang-15`` or ``clang``) compiles OpenCL C for ``amdgcn-amd-amdhsa``
  with the ROCm device libraries (Debian ``rocm-device-libs``) and links the code object with
  ``ld.lld``; ``-Rpass-analysis=kernel-resource-usage`` reports, per kernel, SGPRs, VGPRs, AGPRs,
  scratch, spills, LDS and occupancy (waves per SIMD).
* ``intel:dg2``... : ``ocloc`` (Debian ``intel-opencl-icd``) builds a GPU binary (zebin); its
  ``.ze_info`` section gives, per kernel, the GRF count (128, or 256 in large-GRF mode), the SIMD
  width, SLM and scratch; IGC warns about spills (``spilled around N`` bytes per thread).
  Occupancy (hardware threads per EU) follows from Intel's published limits and the GRF mode.

Every target is listed even when its toolchain is missing, as unavailable with the reason. Compiler
errors keep the template names that ``#line`` gives them, so xgpu maps them to template lines as it
does for devices. A resource report that cannot be read is an error, never zero spills.

The OpenCL backend's default offline target is ``amd:gfx90a`` (MI200, the most common AMD data-center
GPU); ``xgpu compile --backend opencl`` and ``xgpu.compile_offline(t, "opencl")`` use it.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from xgpu.errors import BackendUnavailableError, CompileError, InvalidArgumentError, UnsupportedDtypeError
from xgpu.plugin import OfflineBuild

__all__ = [
    "AMD_ARCHS", "DEFAULT_TARGET", "INTEL_DEVICES", "IntelDevice", "amd_toolchain", "compile_amd",
    "compile_intel", "compile_target", "intel_toolchain", "parse_amd_remarks", "parse_ze_info", "register_targets",
]

DEFAULT_TARGET = "amd:gfx90a"

#: AMD architectures offered (the device libraries must hold ``oclc_isa_version_<n>.bc`` for each)
AMD_ARCHS = ("gfx906", "gfx908", "gfx90a", "gfx940", "gfx1030", "gfx1032")


@dataclass(frozen=True)
class IntelDevice:
    """What xgpu knows of an Intel GPU that ocloc compiles for: its family, whether it has float64
    units, and its hardware threads per EU with 128 and with 256 GRF (Intel's published limits)."""

    family: str
    fp64: bool
    threads_per_eu_128: int
    threads_per_eu_256: int


INTEL_DEVICES = {
    "tgllp": IntelDevice("Xe-LP (Tiger Lake)", False, 7, 0),
    "dg1": IntelDevice("Xe-LP (DG1)", False, 7, 0),
    "dg2": IntelDevice("Xe-HPG (Arc A770, DG2)", False, 8, 4),
    "acm-g10": IntelDevice("Xe-HPG (Arc A770, ACM-G10)", False, 8, 4),
    "acm-g11": IntelDevice("Xe-HPG (Arc A380, ACM-G11)", False, 8, 4),
    "pvc": IntelDevice("Xe-HPC (Data Center GPU Max, Ponte Vecchio)", True, 8, 4),
}

ROCM_LIB_ENV = "XGPU_ROCM_DEVICE_LIBS"
_ROCM_LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu/amdgcn/bitcode",
    "/usr/lib/amdgcn/bitcode",
    "/opt/rocm/amdgcn/bitcode",
    "/opt/rocm/lib/llvm/lib/clang/amdgcn/bitcode",
)


# --- toolchains ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Toolchain:
    """A vendor's compiler as found here: ``tools`` by role, a description, or why it is missing."""

    description: str
    tools: dict[str, str]
    missing: str = ""


def _first_on_path(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@functools.cache
def _clang_version(clang: str) -> str:
    try:
        out = subprocess.run([clang, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"clang version (\S+)", out)
    return m.group(1).split("-")[0] if m else ""


def _rocm_lib_dir() -> str | None:
    candidates = [os.environ[ROCM_LIB_ENV]] if os.environ.get(ROCM_LIB_ENV) else list(_ROCM_LIB_DIRS)
    for folder in candidates:
        if Path(folder, "ockl.bc").is_file():
            return folder
    return None


def amd_toolchain() -> Toolchain:
    """Clang with the amdgcn target, the ROCm device libraries and ld.lld, or what is missing."""
    clang = os.environ.get("XGPU_CLANG") or _first_on_path("clang-15", "clang")
    libs = _rocm_lib_dir()
    clang_dir = Path(os.path.realpath(clang)).parent if clang else None
    lld = _first_on_path("ld.lld-15", "ld.lld") or (
        str(clang_dir / "ld.lld") if clang_dir and (clang_dir / "ld.lld").is_file() else None
    )
    missing = []
    if not clang:
        missing.append("clang (apt-get install clang-15)")
    if not libs:
        missing.append(f"the ROCm device libraries (apt-get install rocm-device-libs, or set {ROCM_LIB_ENV})")
    if not lld:
        missing.append("ld.lld to link the code object (apt-get install lld-15)")
    version = _clang_version(clang) if clang else ""
    description = f"clang {version or '?'} amdgcn + ROCm device libs + ld.lld"
    if missing:
        return Toolchain("clang amdgcn + ROCm device libs + ld.lld", {}, "missing " + "; ".join(missing))
    assert clang and libs and lld  # each one missing is in ``missing``
    return Toolchain(description, {"clang": clang, "libs": libs, "lld": lld})


def intel_toolchain() -> Toolchain:
    """Intel's offline compiler ocloc, or why it is missing."""
    ocloc = os.environ.get("XGPU_OCLOC") or _first_on_path("ocloc")
    if not ocloc:
        return Toolchain("ocloc (Intel IGC)", {}, "missing ocloc (apt-get install intel-opencl-icd)")
    return Toolchain("ocloc (Intel IGC)", {"ocloc": ocloc})


def register_targets(register) -> None:
    """``xgpu_register_targets`` for the OpenCL backend: every AMD and Intel target, available or not."""
    amd = amd_toolchain()
    for arch in AMD_ARCHS:
        reason = amd.missing
        if not reason and not Path(amd.tools["libs"], f"oclc_isa_version_{arch[3:]}.bc").is_file():
            reason = f"the ROCm device libraries in {amd.tools['libs']} have no {arch} ISA library"
        register.add(f"amd:{arch}", backend="opencl", toolchain=amd.description, available=not reason,
                     reason=reason, default=f"amd:{arch}" == DEFAULT_TARGET)
    intel = intel_toolchain()
    for name, dev in INTEL_DEVICES.items():
        register.add(f"intel:{name}", backend="opencl", toolchain=f"{intel.description}, {dev.family}",
                     available=not intel.missing, reason=intel.missing, default=False)


def compile_target(source: str, target: str | None, options: tuple[str, ...]) -> OfflineBuild:
    """Compile OpenCL C for an AMD (``gfx90a``) or Intel (``dg2``) architecture."""
    arch = (target or DEFAULT_TARGET).split(":")[-1]
    if arch in AMD_ARCHS or re.fullmatch(r"gfx\d+[a-z]?", arch):
        return compile_amd(source, arch, options)
    if arch in INTEL_DEVICES:
        return compile_intel(source, arch, options)
    raise InvalidArgumentError(
        f"the OpenCL backend has no offline target {arch!r}: AMD {', '.join(AMD_ARCHS)} or Intel "
        f"{', '.join(INTEL_DEVICES)} (`xgpu targets` lists them)"
    )


#: errors of starting a process that a second try may not meet: seen once in a full test run, EFAULT
#: from starting ocloc while the runtimes' threads were busy in the same process
_TRANSIENT_START = (errno.EFAULT, errno.EAGAIN, errno.ENOMEM, errno.EINTR)


def _run(cmd: list[str], cwd: str) -> subprocess.CompletedProcess:
    for attempt in range(3):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)
        except OSError as exc:
            if exc.errno in _TRANSIENT_START and attempt < 2:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise BackendUnavailableError(f"could not run {cmd[0]}: {exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _report_error(what: str, target: str, source: str, log: str) -> CompileError:
    """A resource report that cannot be read: an error, never read as zero spills."""
    return CompileError(f"{target}: {what}", backend="opencl", device=target, source=source, options=(), log=log)


def _unsupported_fp64(log: str, target: str) -> UnsupportedDtypeError | None:
    if re.search(r"double.*requires cl_khr_fp64|cl_khr_fp64 support", log):
        dev = INTEL_DEVICES.get(target.split(":")[-1])
        family = f" ({dev.family})" if dev else ""
        return UnsupportedDtypeError(
            f"float64 unsupported on {target}{family}: the GPU has no double-precision units (no "
            "cl_khr_fp64); compile float64 kernels for intel:pvc, or use float32"
        )
    return None


# --- AMD -------------------------------------------------------------------------------------------

_REMARK = re.compile(r"^(?P<loc>.*?): remark:\s+(?P<key>[^:\[]+?)(?: \[(?P<unit>[^\]]+)\])?: (?P<value>\S+) "
                     r"\[-Rpass-analysis=kernel-resource-usage\]\s*$")
_AMD_KEYS = {
    "SGPRs": "sgprs", "VGPRs": "vgprs", "AGPRs": "agprs", "ScratchSize": "scratch_bytes",
    "Occupancy": "waves_per_simd", "SGPRs Spill": "sgpr_spills", "VGPRs Spill": "vgpr_spills", "LDS Size": "lds_bytes",
}
_NOISE = re.compile(r"note: could not determine the original source location|\[-Rpass-analysis=kernel-resource-usage\]")


def parse_amd_remarks(log: str) -> dict[str, dict[str, int]]:
    """Per kernel, what ``-Rpass-analysis=kernel-resource-usage`` reported, with xgpu's common keys:
    ``registers`` (VGPRs + AGPRs per lane: on CDNA2/3 they share one file), ``shared_bytes`` (LDS) and
    ``spill_bytes`` (4 bytes per spilled VGPR and SGPR). Raises ValueError when a report is incomplete."""
    kernels: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    name = ""
    for line in log.splitlines():
        m = _REMARK.match(line)
        if not m:
            continue
        key, value = m.group("key").strip(), m.group("value")
        if key == "Function Name":
            name = value
            current = kernels.setdefault(name, {})
            continue
        if current is None or key not in _AMD_KEYS:
            continue
        try:
            current[_AMD_KEYS[key]] = int(value)
        except ValueError:
            raise ValueError(f"clang's resource report for kernel {name}: {key} = {value!r} is not a number") from None
    for name, res in kernels.items():
        res.setdefault("agprs", 0)  # only CDNA (gfx908, gfx90a, gfx940) has accumulation registers
        lost = sorted(set(_AMD_KEYS.values()) - set(res))
        if lost:
            raise ValueError(f"clang's resource report for kernel {name} lacks {', '.join(lost)}")
        res["registers"] = res["vgprs"] + res["agprs"]
        res["shared_bytes"] = res["lds_bytes"]
        res["spill_bytes"] = 4 * (res["vgpr_spills"] + res["sgpr_spills"])
    return kernels


def compile_amd(source: str, arch: str, options: tuple[str, ...] = ()) -> OfflineBuild:
    tc = amd_toolchain()
    target = f"amd:{arch}"
    if tc.missing:
        raise BackendUnavailableError(f"offline target {target} is unavailable: {tc.missing}")
    with tempfile.TemporaryDirectory(prefix="xgpu-amd-") as tmp:
        src, out = Path(tmp, "kernel.cl"), Path(tmp, "kernel.hsaco")
        src.write_text(source)
        # clang runs the linker by the name ld.lld, searched first in -B folders (Debian's is ld.lld-15)
        Path(tmp, "ld.lld").symlink_to(tc.tools["lld"])
        cmd = [tc.tools["clang"], "-x", "cl", "-cl-std=CL1.2", "-target", "amdgcn-amd-amdhsa", f"-mcpu={arch}",
               f"--rocm-device-lib-path={tc.tools['libs']}", "-Xclang", "-finclude-default-header", "-O3",
               "-fno-caret-diagnostics", "-fno-color-diagnostics", "-Rpass-analysis=kernel-resource-usage",
               f"-B{tmp}", *options, str(src), "-o", str(out)]
        proc = _run(cmd, tmp)
        raw = proc.stdout + proc.stderr
        log = "\n".join(ln for ln in raw.splitlines() if not _NOISE.search(ln)).strip()
        if proc.returncode or not out.is_file():
            raise CompileError(f"clang failed for {target}", backend="opencl", device=target, source=source,
                               options=tuple(cmd[1:-3]), log=log or f"clang exited with {proc.returncode}")
        binary = out.read_bytes()
    try:
        resources = parse_amd_remarks(raw)
    except ValueError as exc:
        raise _report_error(str(exc), target, source, raw) from None
    if not resources and b".kd\0" in binary:  # a kernel descriptor, but no report for it
        raise _report_error("clang built the code object but reported no kernel resources", target, source, raw)
    return OfflineBuild(target.split(":")[1], log, binary, resources)


# --- Intel -----------------------------------------------------------------------------------------

_SPILL = re.compile(r"warning: kernel (\S+)\s+compiled SIMD(\d+) allocated (\d+) regs and spilled around (\d+)")


def _elf_section(data: bytes, wanted: str) -> bytes | None:
    """One section of a little-endian ELF64 file by name (zebin's ``.ze_info``)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, offset, size

    _, stroff, _ = header(shstrndx)
    for i in range(shnum):
        name, offset, size = header(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end].decode(errors="replace") == wanted:
            return data[offset:offset + size]
    return None


def parse_ze_info(text: str) -> dict[str, dict[str, int]]:
    """Per kernel, from zebin's ``.ze_info`` (YAML): ``grf_count``, ``simd_size``, ``slm_size`` and the
    per-thread scratch; only the few keys xgpu needs, read by indentation (no YAML library)."""
    kernels: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    in_kernels = in_buffers = in_scratch = False
    for line in text.splitlines():
        if re.match(r"^\S", line):
            in_kernels, current = line.startswith("kernels:"), None
            continue
        if not in_kernels:
            continue
        if m := re.match(r"^  - name:\s+(\S+)", line):
            current = kernels.setdefault(m.group(1), {"scratch_bytes": 0})
            in_buffers = in_scratch = False
            continue
        if current is None:
            continue
        if re.match(r"^    \S", line):
            in_buffers, in_scratch = line.strip() == "per_thread_memory_buffers:", False
        elif m := re.match(r"^      (grf_count|simd_size|slm_size):\s+(\d+)", line):
            current[m.group(1)] = int(m.group(2))
        elif in_buffers and (m := re.match(r"^      - type:\s+(\S+)", line)):
            in_scratch = m.group(1) == "scratch"
        elif in_scratch and (m := re.match(r"^        size:\s+(\d+)", line)):
            current["scratch_bytes"] += int(m.group(1))
    return kernels


def compile_intel(source: str, device: str, options: tuple[str, ...] = ()) -> OfflineBuild:
    tc = intel_toolchain()
    target = f"intel:{device}"
    if tc.missing:
        raise BackendUnavailableError(f"offline target {target} is unavailable: {tc.missing}")
    info = INTEL_DEVICES[device]
    with tempfile.TemporaryDirectory(prefix="xgpu-intel-") as tmp:
        src, out = Path(tmp, "kernel.cl"), Path(tmp, "kernel")
        src.write_text(source)
        cmd = [tc.tools["ocloc"], "compile", "-file", str(src), "-device", device, "-output", str(out),
               "-output_no_suffix", "-internal_options", "-cl-intel-allow-zebin"]
        if options:
            cmd += ["-options", " ".join(options)]
        proc = _run(cmd, tmp)
        log = "\n".join(ln for ln in (proc.stdout + proc.stderr).splitlines()
                        if ln.strip() and ln.strip() != "Build succeeded." and not ln.startswith("Command was:"))
        if proc.returncode or not out.is_file():
            fp64 = _unsupported_fp64(log, target) if not info.fp64 else None
            if fp64:
                raise fp64
            raise CompileError(f"ocloc failed for {target}", backend="opencl", device=target, source=source,
                               options=tuple(options), log=log or f"ocloc exited with {proc.returncode}")
        binary = out.read_bytes()
    info_text = _elf_section(binary, ".ze_info")
    if info_text is None:
        raise _report_error("ocloc's binary has no .ze_info section to read resources from (not a zebin)",
                            target, source, log)
    kernels = parse_ze_info(info_text.decode(errors="replace"))
    spills = {m.group(1): int(m.group(4)) for m in _SPILL.finditer(log)}
    resources: dict[str, dict[str, int]] = {}
    for name, res in kernels.items():
        if "grf_count" not in res or "simd_size" not in res:
            raise _report_error(f"ocloc's .ze_info for kernel {name} lacks grf_count or simd_size", target, source,
                                info_text.decode(errors="replace"))
        grf = res["grf_count"]
        threads = info.threads_per_eu_128 if grf <= 128 else info.threads_per_eu_256
        resources[name] = {
            "registers": grf, "shared_bytes": res.get("slm_size", 0), "spill_bytes": spills.get(name, 0),
            "grf_count": grf, "large_grf": int(grf > 128), "simd_size": res["simd_size"],
            "scratch_bytes": res["scratch_bytes"], "threads_per_eu": threads,
        }
    unknown = set(spills) - set(resources)
    if unknown:
        raise _report_error(f"ocloc reported spills for kernel(s) {', '.join(sorted(unknown))} not in its binary",
                            target, source, log)
    return OfflineBuild(target.split(":")[1], log, binary, resources)
