"""Every library kernel variant compiles offline for an AMD GPU (clang amdgcn + ROCm device libs) and an
Intel GPU (ocloc), with no GPU present, and reports its resources; errors point at template lines."""

from __future__ import annotations

import json
import os
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import xgpu
from xgpu._program import offline_targets
from xgpu.backends.opencl import targets as offline
from xgpu.kernels import axpy as axpy_kernel
from xgpu.kernels.variants import variant_row

from .conftest import run_xgpu
from .test_cuda_compile import VARIANTS

AMD = "amd:gfx90a"
COMMON_KEYS = {"registers", "shared_bytes", "spill_bytes"}
VENDOR_KEYS = {
    "amd": {"sgprs", "vgprs", "agprs", "sgpr_spills", "vgpr_spills", "scratch_bytes", "lds_bytes", "waves_per_simd"},
    "intel": {"grf_count", "large_grf", "simd_size", "scratch_bytes", "threads_per_eu"},
}
#: the targets `make test` must find available (set-up installs their toolchains)
REQUIRED = ("amd:gfx908", "amd:gfx90a", "amd:gfx940", "amd:gfx1030", "intel:tgllp", "intel:dg2", "intel:acm-g10",
            "intel:pvc")


#: float32 variants compile for three targets per vendor; the other dtypes' (float64, float16, bfloat16,
#: int8) for one target, the vendor alternating from variant to variant (XGPU_TEST_FULL=1: one per vendor)
FLOAT32_TARGETS = ("amd:gfx908", AMD, "amd:gfx1030", "intel:tgllp", "intel:dg2", "intel:pvc")


def _targets(name: str) -> tuple[str, ...]:
    dtype = variant_row(name)[2]
    if dtype == "float32":
        return FLOAT32_TARGETS
    both = (AMD, "intel:pvc" if dtype == "float64" else "intel:dg2")  # Xe-LP and Xe-HPG have no float64 units
    if os.environ.get("XGPU_TEST_FULL", "") not in ("", "0"):
        return both
    return (both[zlib.crc32(name.encode()) % 2],)


def _toolchains_required() -> bool:
    return bool(os.environ.get("XGPU_REQUIRE_DEVICES"))  # set by `make test`, whose set-up installs them


def _need(target: str) -> None:
    found = offline_target(target)
    if not found.available:
        if _toolchains_required():
            pytest.fail(f"{target} must be available here: {found.reason}")
        pytest.skip(f"{target} unavailable: {found.reason}")


def offline_target(name: str):
    return offline_targets()[name]


CASES = [(name, target, template, defines) for name, template, defines in VARIANTS for target in _targets(name)]


@pytest.fixture(scope="module")
def builds(request):
    """Compile the selected variants in parallel (the compilers are separate processes: every core
    works); a test waits for its own build. Rendering stays in this thread."""
    here = {(item.callspec.params["name"], item.callspec.params["target"])
            for item in request.session.items
            if item.module is sys.modules[__name__] and hasattr(item, "callspec") and "target" in item.callspec.params
            and "defines" in item.callspec.params}
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    futures = {}
    for name, target, template, defines in CASES:
        if (name, target) in here and offline_target(target).available:
            text = xgpu.render(template, "opencl", defines).text
            futures[(name, target)] = pool.submit(offline.compile_target, text, target, ())
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("name,target,template,defines", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_library_kernel_compiles_offline(builds, name, target, template, defines):
    _need(target)
    build = builds[(name, target)].result()
    assert build.target == target.split(":")[1]
    assert build.binary
    kernel = {"axpy": "axpy_sum", "copy": "fma_peak", "lowp": "int8_peak"}.get(name.split("-")[0], name.split("-")[0])
    if kernel == "gemm" and "-panel-" in name:
        kernel = "gemm_panel"
    assert kernel in build.resources, f"no resource report for {kernel}: {build.resources}\n{build.log}"
    res = build.resources[kernel]
    vendor = target.split(":")[0]
    assert COMMON_KEYS | VENDOR_KEYS[vendor] <= set(res), res
    assert res["registers"] > 0
    assert all(isinstance(v, int) and v >= 0 for v in res.values()), res


def _axpy(dtype=np.float32):
    return axpy_kernel.TEMPLATE, axpy_kernel._render_defines(np.dtype(dtype), 256)


@pytest.mark.parametrize("target", ["amd:gfx1030", "intel:pvc"])
def test_compile_offline_through_the_public_api(target):
    _need(target)
    template, defines = _axpy()
    build = xgpu.compile_offline(template, target=target, defines=defines)
    assert build.target == target.split(":")[1] and "axpy_sum" in build.resources


def test_opencl_default_target_is_gfx90a():
    _need(AMD)
    template, defines = _axpy()
    assert xgpu.compile_offline(template, "opencl", defines=defines).target == "gfx90a"


@pytest.mark.parametrize("target", ["intel:dg2", "intel:tgllp"])
def test_float64_refused_with_the_capability_reason(target):
    _need(target)
    template, defines = _axpy(np.float64)
    with pytest.raises(xgpu.errors.UnsupportedDtypeError, match=f"float64 unsupported on {target}"):
        xgpu.compile_offline(template, target=target, defines=defines)


BROKEN = """\
<%def name="k()"></%def>
KERNEL void broken(GLOBAL_MEM float *x) {
    x[GLOBAL_ID(0)] = 2.0f * not_declared_anywhere;
}
"""


@pytest.mark.parametrize("target", [AMD, "intel:pvc"])
def test_compile_error_points_at_the_template_line(tmp_path, target):
    _need(target)
    path = tmp_path / "broken.mako"
    path.write_text(BROKEN)
    with pytest.raises(xgpu.errors.CompileError) as info:
        xgpu.compile_offline(path, target=target)
    err = info.value
    assert err.filename == str(path) and err.lineno == 3, str(err)
    assert f"for {target.split(':')[1]}" in str(err) or target in str(err)
    assert "> " in str(err) and "not_declared_anywhere" in str(err)


# Every live value of n accumulators, in work-groups of 1024 (which caps the registers a work-item may
# use: 64 VGPRs on gfx906; on Intel 128 GRF of 32 bytes at SIMD8, 128 floats a lane), cannot stay in
# registers.
SPILLING = """\
KERNEL __attribute__((reqd_work_group_size(1024, 1, 1)))
void spill(GLOBAL_MEM float *out, GLOBAL_MEM const float *in, int n)
{
    float acc[${n}];
    const int g = GLOBAL_ID(0);
    #pragma unroll
    for (int i = 0; i < ${n}; ++i) acc[i] = in[g + i];
    for (int k = 0; k < n; ++k) {
        #pragma unroll
        for (int i = 0; i < ${n}; ++i) acc[i] = acc[i] * acc[(i + 1) % ${n}] + in[k + i];
    }
    float s = 0.0f;
    #pragma unroll
    for (int i = 0; i < ${n}; ++i) s += acc[i] * (float)i;
    out[g] = s;
}
"""


@pytest.mark.parametrize("target,n", [("amd:gfx906", 96), ("intel:dg2", 192), ("nvidia:sm_80", 256)])
def test_a_spilling_kernel_is_reported_as_spilling(target, n):
    _need(target)
    build = xgpu.compile_offline(SPILLING, target=target, defines={"n": n})
    res = build.resources["spill"]
    assert res["spill_bytes"] > 0, (res, build.log)
    if target.startswith("amd"):
        assert res["vgpr_spills"] > 0 and res["scratch_bytes"] > 0
    elif target.startswith("intel"):
        assert "spilled around" in build.log
    else:  # ptxas: every register the architecture allows a thread, and the rest in local memory
        assert res["registers"] == 255


def test_an_unreadable_report_is_an_error_not_zero_spills():
    head = "k.cl:1:1: remark: Function Name: k [-Rpass-analysis=kernel-resource-usage]\n"
    with pytest.raises(ValueError, match="lacks"):
        offline.parse_amd_remarks(head + "k.cl:1:1: remark:     SGPRs: 12 [-Rpass-analysis=kernel-resource-usage]\n")
    with pytest.raises(ValueError, match="not a number"):
        offline.parse_amd_remarks(head + "k.cl:1:1: remark:     VGPRs: many [-Rpass-analysis=kernel-resource-usage]\n")
    assert offline.parse_ze_info("version: '1.2'\nkernels:\n  - name: k\n") == {"k": {"scratch_bytes": 0}}


def test_targets_json_lists_every_vendor():
    listed = {t["name"]: t for t in json.loads(run_xgpu("targets", "--json").stdout)}
    for name in REQUIRED:
        assert name in listed, sorted(listed)
        assert listed[name]["backend"] == "opencl" and listed[name]["toolchain"]
        if _toolchains_required():
            assert listed[name]["available"], listed[name]
    assert listed[AMD]["default"] and not listed["intel:dg2"]["default"]
    assert "ocloc" in listed["intel:dg2"]["toolchain"] and "clang" in listed[AMD]["toolchain"]


def test_a_missing_toolchain_gives_the_reason(tmp_path):
    # a PATH with Python's folder only: no clang, ld.lld or ocloc
    env = {"PATH": os.path.dirname(sys.executable), "XGPU_CLANG": "", "XGPU_OCLOC": ""}
    listed = {t["name"]: t for t in json.loads(run_xgpu("targets", "--json", env=env).stdout)}
    amd, intel = listed[AMD], listed["intel:dg2"]
    assert not amd["available"] and "clang" in amd["reason"] and "apt-get install clang-15" in amd["reason"]
    assert not intel["available"] and "apt-get install intel-opencl-icd" in intel["reason"]
    path = tmp_path / "k.mako"
    path.write_text(axpy_kernel.TEMPLATE.path.read_text())
    proc = run_xgpu("compile", str(path), "--target", "intel:dg2", "-D", "dtype='float32'", "-D", "acc='float32'",
                    "-D", "wg=128", env=env, check=False)
    assert proc.returncode != 0
    assert "intel:dg2 is unavailable" in proc.stdout + proc.stderr and "ocloc" in proc.stdout + proc.stderr


def test_cli_compile_prints_vendor_resources(tmp_path):
    _need(AMD)
    _need("intel:pvc")
    path = tmp_path / "k.mako"
    path.write_text(axpy_kernel.TEMPLATE.path.read_text())
    out = run_xgpu("compile", str(path), "--target", AMD, "--target", "intel:pvc", "-D", "dtype='float32'",
                   "-D", "acc='float32'", "-D", "wg=128").stdout
    assert f"for {AMD} (clang" in out and "for intel:pvc (ocloc" in out
    assert "axpy_sum:" in out and "waves_per_simd=" in out and "vgprs=" in out
    assert "grf_count=128" in out and "threads_per_eu=" in out


def _rusticl():
    found = [d for d in xgpu.devices() if d.platform.lower() == "rusticl"]
    if not found:
        if "rusticl" in os.environ.get("XGPU_REQUIRE_DEVICES", ""):
            pytest.fail("rusticl is required here but lists no device (is RUSTICL_ENABLE set to something else?)")
        pytest.skip("Mesa's rusticl is not installed: apt-get install mesa-opencl-icd")
    return found[0]


def test_rusticl_is_a_real_device_without_float64(rng):
    d = _rusticl()
    assert not d.fp64 and not d.supports("float64") and not d.fp16_arithmetic
    assert d.is_simulator and not d.checks_memory, "sized like a simulator, but it checks nothing"
    assert xgpu.get_device() is not d, "a software rasteriser is never the default device"
    a, b = rng.uniform(-1, 1, (7, 5)).astype(np.float32), rng.uniform(-1, 1, (5, 3)).astype(np.float32)
    got = (xgpu.asarray(a, d) @ xgpu.asarray(b, d)).get()
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    with pytest.raises(xgpu.errors.UnsupportedDtypeError, match="float64"):
        xgpu.asarray(a.astype(np.float64), d) @ xgpu.asarray(b.astype(np.float64), d)


NEO = "/usr/lib/x86_64-linux-gnu/intel-opencl/libigdrcl.so"


@pytest.mark.skipif(not os.path.exists(NEO), reason="Intel's GPU runtime (intel-opencl-icd) is not installed")
def test_intel_gpu_runtime_lists_no_platform_without_an_intel_gpu(tmp_path):
    """intel-opencl-icd registers Intel's GPU runtime with the ICD loader; without an Intel GPU it must
    list nothing, and every other implementation must stay as it was."""
    pocl = [text for text in (p.read_text().strip() for p in Path("/etc/OpenCL/vendors").glob("*.icd")) if "pocl" in text]
    if not pocl:
        pytest.skip("PoCL is not installed")
    (tmp_path / "intel.icd").write_text(NEO + "\n")
    (tmp_path / "pocl.icd").write_text(pocl[0] + "\n")
    payload = json.loads(run_xgpu("devices", "--json", env={"OCL_ICD_VENDORS": str(tmp_path)}).stdout)
    opencl = payload["backends"]["opencl"]
    assert opencl["available"], opencl
    platforms = {d["platform"] for d in payload["devices"] if d["backend"] == "opencl"}
    assert platforms == {"Portable Computing Language"}, platforms
