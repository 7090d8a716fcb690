"""The implicit-GEMM convolution's search space for ``xgpu tune conv2d``: the GEMM's variants (without
local-memory tiles, which the implicit GEMM does not use), timed and checked on a ResNet layer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import xgpu
from xgpu.kernels.gemm.autotune import _valid, variant_tunable
from xgpu.kernels.gemm.autotune import neighbours as gemm_neighbours
from xgpu.kernels.gemm.tuning import acc_itemsize
from xgpu.reference import conv2d_reference
from xgpu.testing import assert_close
from xgpu.tools.bench import CONV_LAYERS, conv_flops, conv_operands, median_time
from xgpu.tools.tune import Tunable

from . import conv2d, igemm_config
from .tuning import RULES, window_class

#: The layer ``xgpu tune conv2d`` times: N8 C64 56x56 K64 3x3 pad 1 (ResNet's second stage).
LAYER = CONV_LAYERS[0]


def neighbours(cfg, device, dtype):
    out = [c for c in gemm_neighbours(cfg, device, dtype, families=RULES) if not c.local_tiles]
    # in the implicit GEMM kc is a switch: a barrier after every (r, s) step of the window
    out = [replace(c, kc=1 if c.kc else 0) for c in out] + [replace(cfg, kc=0 if cfg.kc else 1)]
    acc = acc_itemsize(dtype)
    unique = []
    for c in out:
        if c != cfg and c not in unique and _valid(replace(c, kc=0), device, acc):
            unique.append(c)
    return unique


def tunable(device: xgpu.Device, dtype="float32", batch: int | None = None, seed: int = 0) -> Tunable:
    dtype = np.dtype(dtype)
    layer = (LAYER[0], batch or LAYER[1], *LAYER[2:])
    _name, n, c, h, _w, k, r, _s, _stride, pad, _groups = layer
    x, w = conv_operands(layer, dtype)
    reference = conv2d_reference(x, w, pads=(pad,) * 4)
    rng = np.random.default_rng(seed)
    ox, ow = rng.uniform(-1, 1, (1, 5, 9, 7)).astype(dtype), rng.uniform(-1, 1, (6, 5, 3, 3)).astype(dtype)
    odd_ref = conv2d_reference(ox, ow, pads=(1, 1, 1, 1))
    dx, dw = xgpu.asarray(x, device), xgpu.asarray(w, device)
    dox, dow = xgpu.asarray(ox, device), xgpu.asarray(ow, device)
    flops = conv_flops(layer)

    def measure(cfg) -> float:
        assert_close(conv2d(dox, dow, padding=1, config=cfg).get(), odd_ref, dtype=dtype, terms=45,
                     what="N1 C5 9x7 K6 3x3 layer")
        out: list = []

        def run():
            out[:] = [conv2d(dx, dw, padding=pad, config=cfg)]
            device.synchronize()

        seconds = median_time(run, repeats=3)
        assert_close(out[0].get(), reference, dtype=dtype, terms=c * r * r, what="tuning layer")
        return flops / seconds / 1e9

    return variant_tunable("conv2d", device, dtype, window_class(r, r),
                           f"N{n} C{c} {h}x{h} K{k} {r}x{r} pad {pad} {dtype.name}", igemm_config(device, dtype),
                           neighbours, measure)
