"""Every CUDA rendering of every library kernel compiles with NVRTC, with no GPU and no driver."""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import xgpu
from xgpu.kernels import axpy as axpy_kernel
from xgpu.kernels.variants import library_variants

from .conftest import run_xgpu

ARCHS = ["sm_75", "sm_80", "sm_90"]


VARIANTS = list(library_variants())


@pytest.fixture(scope="module")
def builds(request):
    """Compile the selected variants on every core (NVRTC releases the GIL; ptxas is a process of its
    own); a test waits for its own build. Rendering stays in this thread."""
    from xgpu._devices import backend

    cuda = backend("cuda")
    here = [(item.callspec.params["name"], item.callspec.params["arch"]) for item in request.session.items
            if item.module is sys.modules[__name__] and "defines" in getattr(getattr(item, "callspec", None), "params", {})]
    by_name = {name: (template, defines) for name, template, defines in VARIANTS}
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    futures = {}
    for name, arch in here:
        template, defines = by_name[name]
        text = xgpu.render(template, "cuda", defines).text
        futures[(name, arch)] = pool.submit(cuda.compile_offline, text, arch, ())
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name,template,defines", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_library_kernel_compiles_for_cuda(builds, arch, name, template, defines):
    build = builds[(name, arch)].result()
    assert build.target == arch
    assert build.binary, "NVRTC produced no cubin"
    assert "warning" not in build.log.lower(), build.log
    # ptxas (PyPI's nvidia-cuda-nvcc, set-up installs it) assembled the PTX and reported each kernel
    kernel = {"axpy": "axpy_sum", "copy": "fma_peak", "lowp": "int8_peak"}.get(name.split("-")[0], name.split("-")[0])
    if kernel == "gemm" and "-panel-" in name:
        kernel = "gemm_panel"
    assert kernel in build.resources, f"no ptxas report for {kernel}: {build.log or build.resources}"
    assert build.resources[kernel]["registers"] > 0


def test_ptxas_and_nvcc_come_from_the_pip_package_before_path(tmp_path, monkeypatch):
    """A fresh machine has no CUDA toolkit: ptxas and nvcc are found in the nvidia-cuda-nvcc package
    (pinned to NVRTC's series), even when a PATH holds others."""
    import importlib.metadata

    from xgpu.backends.cuda._nvrtc import find_tool

    files = importlib.metadata.files("nvidia-cuda-nvcc") or []
    shipped = {f.name: f.locate().resolve() for f in files if f.parent.name == "bin"}
    decoy = tmp_path / "ptxas"
    decoy.write_text("#!/bin/sh\nexit 1\n")
    decoy.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/usr/bin{os.pathsep}/bin")
    for tool in ("ptxas", "nvcc"):
        found = find_tool(tool)
        assert found and Path(found).resolve() == shipped[tool]
    assert find_tool("no-such-cuda-tool") is None
    assert importlib.metadata.version("nvidia-cuda-nvcc").split(".")[:2] == \
        importlib.metadata.version("nvidia-cuda-nvrtc").split(".")[:2]


def test_ptx_only_target():
    build = xgpu.compile_offline(axpy_kernel.TEMPLATE, "cuda", "compute_80",
                                 defines=axpy_kernel._render_defines(np.dtype(np.float32), 256))
    assert b".entry axpy_sum" in build.binary


def test_bad_arch_is_a_clear_error():
    with pytest.raises(xgpu.errors.InvalidArgumentError, match="sm_80"):
        xgpu.compile_offline(axpy_kernel.TEMPLATE, "cuda", "ampere",
                             defines=axpy_kernel._render_defines(np.dtype(np.float32), 256))


def test_cli_compile_reports_resources(tmp_path):
    path = tmp_path / "k.mako"
    path.write_text(axpy_kernel.TEMPLATE.path.read_text())
    out = run_xgpu("compile", str(path), "--backend", "cuda", "--arch", "sm_90", "-D", "dtype='float32'",
                   "-D", "acc='float32'", "-D", "wg=128").stdout
    assert "for nvidia:sm_90 (NVRTC" in out
    assert "axpy_sum:" in out and "registers" in out


def test_cuda_listed_unavailable_with_reason():
    payload = json.loads(run_xgpu("devices", "--json").stdout)
    cuda = payload["backends"]["cuda"]
    if cuda["available"]:
        pytest.skip("an NVIDIA GPU is present")
    assert cuda["reason"] and not cuda["device_ids"]


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64"])
def test_generated_kernels_compile_for_cuda(dtype):
    """Every kernel of reduction.mako and scan.mako, GPU and CPU forms, through NVRTC and ptxas (no GPU
    needed): the templates use only the neutral words."""
    from xgpu import _elementwise
    from xgpu._devices import backend

    cuda = backend("cuda")
    out = np.dtype(dtype)
    partial = np.dtype(np.float32) if out == np.float16 else out
    lowest = "-INFINITY" if out.kind == "f" else "0"  # OpenCL C's INFINITY: the CUDA prelude defines it too
    r = xgpu.reduction(f"const {dtype} *x, float32 s", "x * s", "(a > b) ? a : b", lowest, dtype, name="cmax")
    s = xgpu.scan(f"const {dtype} *x", "x", "a + b", "0", dtype, inclusive=dtype != "int64", name="cscan")
    for interleave in (True, False):
        text = xgpu.render(_elementwise.REDUCTION_TEMPLATE, "cuda", r._defines(partial, 256, 256, interleave)).text
        build = cuda.compile_offline(text, "sm_80", ())
        assert build.binary and "warning" not in build.log.lower(), build.log
        assert {"cmax", "cmax_items", "cmax_cols", "cmax_rowwise"} <= set(build.resources)
    build = cuda.compile_offline(xgpu.render(_elementwise.SCAN_TEMPLATE, "cuda", s._defines(256, 8)).text, "sm_80", ())
    assert build.binary and "warning" not in build.log.lower(), build.log
    assert {"cscan", "cscan_totals", "cscan_offsets", "cscan_seq", "cscan_seq_totals"} <= set(build.resources)
