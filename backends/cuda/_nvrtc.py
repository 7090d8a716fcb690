"""CUDA C to PTX or cubin with NVRTC (PyPI ``cuda-bindings`` + ``nvidia-cuda-nvrtc``): no GPU needed.

``ptxas`` (registers, shared memory and spills per kernel) and ``nvcc`` (the fallback where NVRTC is
missing) come from PyPI's ``nvidia-cuda-nvcc`` (with ``nvidia-nvvm``'s ``cicc``, pinned to NVRTC's
series, ``pip install 'xgpu[nvrtc]'``): :func:`find_tool` looks in that package first, then on ``PATH``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from xgpu.errors import BackendUnavailableError, CompileError, InvalidArgumentError

_ARCH = re.compile(r"^(sm|compute)_(\d{2,3})[a-z]?$")


@dataclass
class CudaBinary:
    """What NVRTC made of one source: PTX or cubin, the log, and ptxas's resource report."""

    arch: str
    ptx: str
    cubin: bytes | None
    log: str
    ptxas_log: str = ""
    resources: dict[str, dict[str, int]] = field(default_factory=dict)


def _pip_tool_dirs() -> list[Path]:
    """The ``bin`` folders of NVIDIA's PyPI packages (``nvidia/cu13/bin`` from ``nvidia-cuda-nvcc`` 13,
    ``nvidia/cuda_nvcc/bin`` from its 12.x ``-cu12`` form), newest CUDA series first."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    found: list[Path] = []
    for root in spec.submodule_search_locations:
        found += sorted(Path(root).glob("cu[0-9]*/bin"), key=lambda p: int(p.parent.name[2:]), reverse=True)
        found += [p for p in [Path(root) / "cuda_nvcc" / "bin"] if p.is_dir()]
    return found


def find_tool(name: str) -> str | None:
    """The path of a CUDA command-line tool (``ptxas``, ``nvcc``): from the ``nvidia-cuda-nvcc`` package
    installed beside xgpu first, then on ``PATH``; ``None`` when neither has it."""
    for folder in _pip_tool_dirs():
        path = folder / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return shutil.which(name)


def nvrtc_version() -> str:
    nvrtc = _nvrtc()
    err, major, minor = nvrtc.nvrtcVersion()
    return f"NVRTC {major}.{minor}"


def supported_archs() -> list[int]:
    """The architectures this NVRTC compiles for, as numbers (75, 80, 86, 90...)."""
    nvrtc = _nvrtc()
    (archs,) = _check(nvrtc, nvrtc.nvrtcGetSupportedArchs(), "supported architectures")
    return sorted(int(a) for a in archs)


def _nvrtc():
    try:
        from cuda.bindings import nvrtc
    except ImportError as exc:
        raise BackendUnavailableError(
            f"NVRTC is not installed ({exc}): pip install 'xgpu[nvrtc]' (cuda-bindings, nvidia-cuda-nvrtc)"
        ) from exc
    return nvrtc


def _check(nvrtc, result, what: str) -> tuple:
    err, *rest = result
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, msg = nvrtc.nvrtcGetErrorString(err)
        raise BackendUnavailableError(f"NVRTC {what} failed: {msg.decode(errors='replace')}")
    return tuple(rest)


def compile_cuda(source: str, arch: str, options: tuple[str, ...] = (), name: str = "xgpu_kernel.cu") -> CudaBinary:
    """Compile CUDA C for ``arch`` (``sm_80`` gives PTX and a cubin, ``compute_80`` PTX only)."""
    m = _ARCH.match(arch)
    if not m:
        raise InvalidArgumentError(f"CUDA architecture {arch!r} is not of the form sm_80 or compute_80")
    nvrtc = _nvrtc()
    (prog,) = _check(nvrtc, nvrtc.nvrtcCreateProgram(source.encode(), name.encode(), 0, [], []), "create")
    try:
        opts = [f"--gpu-architecture={arch}".encode(), b"-std=c++17", *(o.encode() for o in options)]
        (result,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        (size,) = _check(nvrtc, nvrtc.nvrtcGetProgramLogSize(prog), "log size")
        buf = b" " * size
        _check(nvrtc, nvrtc.nvrtcGetProgramLog(prog, buf), "log")
        log = buf.rstrip(b"\x00 ").decode(errors="replace").strip()
        if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise CompileError(
                f"NVRTC failed for {arch}",
                backend="cuda",
                device=arch,
                source=source,
                options=tuple(o.decode() for o in opts),
                log=log,
            )
        (size,) = _check(nvrtc, nvrtc.nvrtcGetPTXSize(prog), "PTX size")
        buf = b" " * size
        _check(nvrtc, nvrtc.nvrtcGetPTX(prog, buf), "PTX")
        ptx = buf.rstrip(b"\x00").decode()
        cubin = None
        if m.group(1) == "sm":
            (size,) = _check(nvrtc, nvrtc.nvrtcGetCUBINSize(prog), "cubin size")
            cbuf = b" " * size
            _check(nvrtc, nvrtc.nvrtcGetCUBIN(prog, cbuf), "cubin")
            cubin = cbuf
        return CudaBinary(arch, ptx, cubin, log)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


_PTXAS_FUNC = re.compile(r"Compiling entry function '(\w+)'")
_PTXAS_REGS = re.compile(r"Used (\d+) registers")
_PTXAS_SMEM = re.compile(r"(\d+) bytes smem")
_PTXAS_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def ptxas_report(binary: CudaBinary, arch: str) -> CudaBinary:
    """Assemble the PTX with ``ptxas -v`` (when installed, see :func:`find_tool`) for registers, shared
    memory and spills."""
    ptxas = find_tool("ptxas")
    if not ptxas:
        return binary
    sm = "sm_" + arch.split("_", 1)[1]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(binary.ptx)
        proc = subprocess.run(
            [ptxas, "-v", f"-arch={sm}", str(src), "-o", str(Path(tmp) / "k.cubin")],
            capture_output=True,
            text=True,
        )
    binary.ptxas_log = (proc.stdout + proc.stderr).strip()
    current = None
    for line in binary.ptxas_log.splitlines():
        if m := _PTXAS_FUNC.search(line):
            current = binary.resources.setdefault(m.group(1), {"registers": 0, "shared_bytes": 0, "spill_bytes": 0})
        if current is None:
            continue
        if m := _PTXAS_REGS.search(line):
            current["registers"] = int(m.group(1))
        if m := _PTXAS_SMEM.search(line):
            current["shared_bytes"] = int(m.group(1))
        if m := _PTXAS_SPILL.search(line):
            current["spill_bytes"] = int(m.group(1)) + int(m.group(2))
    if proc.returncode:
        raise CompileError(
            f"ptxas rejected the PTX for {sm}",
            backend="cuda",
            device=sm,
            source=binary.ptx,
            options=("-v", f"-arch={sm}"),
            log=binary.ptxas_log,
        )
    return binary
