"""Kernels that measure a device (``xgpu bench device``): bandwidth, FMA ceiling, launch latency."""

from pathlib import Path

import xgpu

TEMPLATE = xgpu.KernelTemplate(Path(__file__).with_name("bench.mako"))
CHAINS = 16
VCHAINS, VW = 8, 16


def defines(dtype: str) -> dict:
    return {"dtype": dtype, "chains": CHAINS, "vchains": VCHAINS, "vw": VW}
