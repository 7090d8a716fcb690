"""The GEMM's search space for ``xgpu tune gemm``: variants one step from a given one, and a timed,
checked run of a variant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace

import numpy as np

import xgpu
from xgpu.reference import gemm_reference
from xgpu.testing import assert_close
from xgpu.tools.bench import gemm_operands, median_time
from xgpu.tools.tune import BudgetExceeded, Tunable

from . import _fits, compile_variant, config_for, gemm, template_for
from .tuning import RULES, GemmConfig, acc_itemsize, shape_class


def _valid(cfg: GemmConfig, device: xgpu.Device, acc_itemsize: int) -> bool:
    if min(cfg.tm, cfg.tn, cfg.wm, cfg.wn, cfg.tk, cfg.vw) < 1 or cfg.tm % cfg.wm or cfg.tn % cfg.wn:
        return False
    if cfg.panel:  # two vectors of vw per row of a work-item's panel, K blocks in local memory
        return (cfg.wn == 2 * cfg.vw and cfg.vw in (2, 4, 8, 16) and 1 <= cfg.wm <= 8 and 8 <= cfg.kc <= 1024
                and cfg.pw >= 1 and cfg.tn % (cfg.wn * cfg.pw) == 0
                and cfg.tm <= 1024 and _fits(cfg, device, acc_itemsize))
    if cfg.tm > 256 or cfg.tn > 256 or cfg.wm * cfg.wn > 256 or cfg.work_group_size < 1:
        return False
    if cfg.vw > 1 and (cfg.local_tiles or not cfg.contiguous_cols or cfg.wn % cfg.vw or cfg.vw not in (2, 4, 8, 16)):
        return False
    if cfg.local_tiles and (cfg.kc or cfg.contiguous_cols or cfg.tk > 64):
        return False
    return _fits(cfg, device, acc_itemsize)


def neighbours(cfg: GemmConfig, device: xgpu.Device, dtype: np.dtype, families=RULES) -> list[GemmConfig]:
    """Variants one step away: each size doubled or halved, kc switched, and the other device classes'
    defaults (to try another way of feeding the registers). Only those the device can take."""
    acc = acc_itemsize(dtype)
    out: list[GemmConfig] = []
    if cfg.panel:  # rows per group, work-items per group, K block; rows per micro-panel
        for name in ("tm", "tn", "kc"):
            value = getattr(cfg, name)
            out += [replace(cfg, **{name: value * 2}), replace(cfg, **{name: max(value // 2, 1)})]
        out += [replace(cfg, wm=wm, tm=cfg.tm // cfg.wm * wm) for wm in (4, 8) if wm != cfg.wm]
        # panels per work-item, the work-items per group unchanged
        out += [replace(cfg, pw=cfg.pw * 2, tn=cfg.tn * 2), replace(cfg, pw=max(cfg.pw // 2, 1), tn=cfg.tn // 2)]
    for name in ("tm", "tn", "wm", "wn") + (("tk",) if cfg.local_tiles else ("vw",) if cfg.vw > 1 else ()):
        if cfg.panel:
            break
        value = getattr(cfg, name)
        out += [replace(cfg, **{name: value * 2}), replace(cfg, **{name: max(value // 2, 1)})]
    # a work-group twice or half as large with the same work per work-item
    out += [replace(cfg, tm=cfg.tm * 2, tn=cfg.tn * 2), replace(cfg, tm=cfg.tm // 2 or 1, tn=cfg.tn // 2 or 1)]
    if not cfg.local_tiles and not cfg.panel:
        out += [replace(cfg, kc=kc) for kc in (0, 128, 256, 512) if kc != cfg.kc]
    out += [base for _kind, _words, base in families if base != cfg]
    unique = []
    for c in out:
        if c != cfg and c not in unique and _valid(c, device, acc):
            unique.append(c)
    return unique


def compile_in_child(kernel: str, device: xgpu.Device, dtype: np.dtype, cfg: GemmConfig, timeout_s: float) -> None:
    """Compile a variant in a child process that fills the on-disk compile cache, so that a compile
    that would overrun the budget can be stopped; the caller then loads the binary from the cache."""
    from xgpu.plugin import disk_cache_enabled

    if not disk_cache_enabled():
        return  # nothing to hand over: the caller compiles in-process (and may overrun the budget)
    if timeout_s <= 0:
        raise BudgetExceeded(f"no time left to compile {cfg.label}")
    cmd = [sys.executable, "-m", "xgpu.kernels.gemm.autotune", kernel, device.id, dtype.name, json.dumps(asdict(cfg))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        raise BudgetExceeded(f"compiling {cfg.label} did not finish in the {timeout_s:.0f} s left") from None
    if proc.returncode:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise xgpu.errors.CompileError(lines[-1] if lines else "the compiling child failed", backend=device.backend,
                                       device=device.id, source="", options=(), log=proc.stderr)


def _compile_variant(kernel: str, device: xgpu.Device, dtype: np.dtype, cfg: GemmConfig) -> None:
    """Build a variant and launch it once on a small problem: some runtimes (PoCL) finish compiling a
    kernel for its work-group size at the first launch, into a cache of their own."""
    ones = np.ones
    if kernel == "gemm":
        template, name = template_for(cfg)
        defines = {"dtype": dtype} if cfg.panel else {"dtype": dtype, "trans_a": False, "trans_b": False}
        compile_variant(template, name, device, cfg.compiled(), defines, explicit=True)
        gemm(xgpu.asarray(ones((9, 7), dtype), device), xgpu.asarray(ones((7, 5), dtype), device), config=cfg).get()
    else:
        from xgpu.kernels.conv2d import conv2d

        conv2d(xgpu.asarray(ones((1, 3, 5, 5), dtype), device), xgpu.asarray(ones((2, 3, 3, 3), dtype), device),
               padding=1, config=cfg).get()


def tunable(device: xgpu.Device, dtype="float32", size: int = 2048, seed: int = 0) -> Tunable:
    dtype = np.dtype(dtype)
    a, b = gemm_operands(size, dtype)
    reference = gemm_reference(a, b)
    rng = np.random.default_rng(seed)
    odd = [rng.uniform(-1, 1, s).astype(dtype) for s in ((67, 45), (45, 33))]
    odd_ref = gemm_reference(*odd)
    da, db = xgpu.asarray(a, device), xgpu.asarray(b, device)
    dc = xgpu.empty((size, size), dtype, device)
    do = [xgpu.asarray(x, device) for x in odd]

    def measure(cfg: GemmConfig) -> float:
        _compile_variant("gemm", device, dtype, cfg)
        # a shape that is no multiple of any tile first: a variant with wrong edges is discarded cheaply
        assert_close(gemm(*do, config=cfg).get(), odd_ref, dtype=dtype, terms=45, what="67x33x45 product")

        def run():
            gemm(da, db, dc, config=cfg)
            device.synchronize()

        seconds = median_time(run, repeats=3)
        assert_close(dc.get(), reference, dtype=dtype, terms=size, what=f"{size}^3 product")
        return 2 * size**3 / seconds / 1e9

    return variant_tunable("gemm", device, dtype, shape_class(size, size, size), f"{size}x{size}x{size} {dtype.name}",
                           config_for(device, dtype), neighbours, measure)


def variant_tunable(kernel: str, device: xgpu.Device, dtype: np.dtype, shape_class: str, shape: str,
                    default: GemmConfig, neighbours, measure) -> Tunable:
    """A search space over GemmConfig variants (the GEMM's, or a kernel built on its tiling):
    ``neighbours(cfg, device, dtype)``, each candidate compiled in a child (``compile_in_child``)."""
    return Tunable(
        kernel=kernel,
        shape_class=shape_class,
        shape=shape,
        default=default,
        neighbours=lambda cfg: neighbours(cfg, device, dtype),
        measure=measure,
        label=lambda cfg: cfg.label,
        as_dict=asdict,
        compile=lambda cfg, timeout: compile_in_child(kernel, device, dtype, cfg, timeout),
    )


if __name__ == "__main__":  # the child of compile_in_child: kernel, device id, dtype, variant as JSON
    _kernel_name, _spec, _dtype, _cfg = sys.argv[1:5]
    _compile_variant(_kernel_name, xgpu.get_device(_spec), np.dtype(_dtype), GemmConfig(**json.loads(_cfg)))
