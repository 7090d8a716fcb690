"""Kernels that measure a device (``xgpu bench device``): bandwidth, FMA ceilings, launch latency, and the
float16 and int8 arithmetic ceilings (``lowp.mako``)."""

from pathlib import Path

import xgpu

TEMPLATE = xgpu.KernelTemplate(Path(__file__).with_name("bench.mako"))
LOWP = xgpu.KernelTemplate(Path(__file__).with_name("lowp.mako"))
CHAINS = 16
VCHAINS, VW = 8, 16


def defines(dtype: str) -> dict:
    return {"dtype": dtype, "chains": CHAINS, "vchains": VCHAINS, "vw": VW}


def lowp_defines(half_arith: bool, dot4: str) -> dict:
    """``half_arith``: compute the float16 chains in float16 (only where the device lists cl_khr_fp16);
    ``dot4``: ``"builtin"`` (cl_khr_integer_dot_product's packed dot product) or ``"portable"``."""
    return {"chains": CHAINS, "half_arith": half_arith, "dot4": dot4}
