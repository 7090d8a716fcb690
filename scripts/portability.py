"""The GPU rows of the GEMM and conv2d tables (float32) through nine targets' offline compilers: prints the
Markdown table of docs/portability.md (registers, spills, shared/LDS memory, occupancy where the compiler
says it). Run: .venv/bin/python scripts/portability.py"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

import xgpu
from xgpu.kernels import conv2d as conv
from xgpu.kernels import gemm
from xgpu.kernels.conv2d.tuning import RULES as CONV_RULES
from xgpu.kernels.gemm.tuning import RULES as GEMM_RULES
from xgpu.kernels.gemm.tuning import adapt

TARGETS = ["nvidia:sm_75", "nvidia:sm_80", "nvidia:sm_90", "amd:gfx908", "amd:gfx90a", "amd:gfx1030",
           "intel:tgllp", "intel:dg2", "intel:pvc"]


def variants():
    f32 = np.dtype(np.float32)
    for kind, tags, base in GEMM_RULES:
        if kind in ("gpu", None) and base.local_tiles:
            cfg = adapt(base, 4, False)
            yield (f"gemm {cfg.label} ({kind or 'any'}: {' '.join(tags) or 'default'})", gemm.TEMPLATE,
                   gemm.render_defines(f32, cfg, False, False))
    for kind, tags, base in CONV_RULES:
        if kind in ("gpu", None):
            cfg = adapt(base, 4, False)
            yield (f"conv2d {cfg.label} ({kind or 'any'}: {' '.join(tags) or 'default'})", conv.IGEMM,
                   {"dtype": f32, "has_bias": True, "out_nchw": True, "padded": False, **cfg.defines()})


def build(name, template, defines, target):
    try:
        resources = xgpu.compile_offline(template, target=target, defines=defines).resources
        return name, target, max(resources.values(), key=lambda r: r.get("registers", 0))
    except xgpu.XgpuError as exc:
        return name, target, {"error": str(exc).splitlines()[0]}


def cell(target: str, k: dict) -> str:
    if "error" in k:
        return f"error: {k['error']}"
    text = f"{k['registers']} reg, " + (f"**{k['spill_bytes']} B spilled**" if k.get("spill_bytes") else "0 spill")
    if target.startswith("amd"):
        text += f", {k.get('waves_per_simd', '?')} waves/SIMD"
    if target.startswith("intel"):
        text += f", GRF {k.get('grf_count', '?')}, {k.get('threads_per_eu', '?')} threads/EU"
    return text


def main() -> None:
    jobs = [(*v, t) for v in variants() for t in TARGETS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: build(*job), jobs))
    rows: dict[str, dict[str, dict]] = {}
    for name, target, k in results:
        rows.setdefault(name, {})[target] = k
    print("| variant (table row) | shared/LDS bytes | " + " | ".join(TARGETS) + " |")
    print("|---|---|" + "---|" * len(TARGETS))
    for name, by in rows.items():
        shared = sorted({k.get("shared_bytes", 0) for k in by.values() if "error" not in k})
        print(f"| {name} | {', '.join(map(str, shared))} | " + " | ".join(cell(t, by[t]) for t in TARGETS) + " |")


if __name__ == "__main__":
    main()
