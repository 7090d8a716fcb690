"""The kernel library's parity cases, registered like any plugin's (entry point ``kernels``).

Shapes are chosen to miss every tile size (1, 7, 127, 1000...); outputs start poisoned (NaN) so
that an element a kernel forgets shows; inputs are never zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import xgpu
from xgpu.reference import conv2d_reference, gemm_reference

#: bfloat16 is ml_dtypes' (``xgpu.bfloat16``); float16 and bfloat16 are stored, accumulated in float32
DTYPES = ("float32", "float64", "float16", "bfloat16")


def _uniform(rng, shape, dtype):
    return rng.uniform(-1, 1, shape).astype(dtype)


def _gemm_case(m, n, k, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, batch=None):
    def run(device, rng, dtype):
        lead = (batch,) if batch else ()
        a = _uniform(rng, lead + ((k, m) if trans_a else (m, k)), dtype)
        b = _uniform(rng, lead + ((n, k) if trans_b else (k, n)), dtype)
        if batch:
            out = xgpu.matmul(xgpu.asarray(a, device), xgpu.asarray(b, device)).get()
            return out, gemm_reference(a, b), k
        c0 = _uniform(rng, (m, n), dtype) if beta else np.full((m, n), np.nan, dtype)  # poisoned: beta=0 never reads it
        c = xgpu.asarray(c0, device)
        xgpu.gemm(xgpu.asarray(a, device), xgpu.asarray(b, device), c, alpha=alpha, beta=beta,
                  trans_a=trans_a, trans_b=trans_b)
        return c.get(), gemm_reference(a, b, alpha=alpha, beta=beta, c=c0, trans_a=trans_a, trans_b=trans_b), k
    return run, 2 * m * n * k * (batch or 1)


def _int_gemm_case(m, n, k, dtype_a, *, trans_b=False):
    """An integer GEMM (``dtype_a`` activations times int8 weights, int32 results), compared exactly."""
    def run(device, rng):
        lo = 0 if dtype_a == "uint8" else -128
        a = rng.integers(lo, lo + 256, (m, k)).astype(dtype_a)
        b = rng.integers(-128, 128, (n, k) if trans_b else (k, n)).astype(np.int8)
        out = xgpu.gemm(xgpu.asarray(a, device), xgpu.asarray(b, device), trans_b=trans_b).get()
        ref = a.astype(np.int64) @ (b.T if trans_b else b).astype(np.int64)
        return out, ref, k
    return run, 2 * m * n * k


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _conv_case(n, c, h, w, k, r, s, *, stride=1, padding=0, dilation=1, groups=1, bias=False, layout="NCHW"):
    def run(device, rng, dtype):
        x = _uniform(rng, (n, c, h, w), dtype)
        wt = _uniform(rng, (k, c // groups, r, s), dtype)
        b = _uniform(rng, (k,), dtype) if bias else None
        st, dl = _pair(stride), _pair(dilation)
        if padding == "same":
            th, tw = dl[0] * (r - 1), dl[1] * (s - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            ph, pw = _pair(padding)
            pads = (ph, ph, pw, pw)
        ref = conv2d_reference(x, wt, b, st, pads, dl, groups)
        if layout == "NHWC":
            xs, ws, ref = x.transpose(0, 2, 3, 1), wt.transpose(2, 3, 1, 0), ref.transpose(0, 2, 3, 1)
        else:
            xs, ws = x, wt
        out = xgpu.conv2d(xgpu.asarray(np.ascontiguousarray(xs), device), xgpu.asarray(np.ascontiguousarray(ws), device),
                          None if b is None else xgpu.asarray(b, device), stride=stride, padding=padding,
                          dilation=dilation, groups=groups, layout=layout)
        return out.get(), ref, (c // groups) * r * s
    return run


def _conv_work(n, c, h, w, k, r, s, stride=1, groups=1, **_):
    st = _pair(stride)
    return 2 * n * k * (h // st[0] + 1) * (w // st[1] + 1) * (c // groups) * r * s


GEMM_CASES: dict[str, tuple[bool, tuple[int, int, int], dict[str, Any]]] = {
    # name: (quick, (m, n, k), options)
    "1x1x1": (True, (1, 1, 1), {}),
    "7x13x5": (True, (7, 13, 5), {}),
    "33x64x17 trans_a": (True, (33, 64, 17), {"trans_a": True}),
    "63x31x65 trans_b alpha=-0.5 beta=2": (True, (63, 31, 65), {"trans_b": True, "alpha": -0.5, "beta": 2.0}),
    "batch 3x17x19x23": (True, (17, 19, 23), {"batch": 3}),
    "127x127x127": (False, (127, 127, 127), {}),
    "1000x7x1": (False, (1000, 7, 1), {}),
    "300x511x129 trans_a trans_b": (False, (300, 511, 129), {"trans_a": True, "trans_b": True}),
    "1000x1000x1000": (False, (1000, 1000, 1000), {}),
}

INT_GEMM_CASES: dict[str, tuple[bool, tuple[int, int, int], dict[str, Any]]] = {
    # name: (quick, (m, n, k), options); the dtype row is A's (uint8 or int8), B is int8
    "7x13x5": (True, (7, 13, 5), {}),
    "127x65x1000 trans_b": (True, (127, 65, 1000), {"trans_b": True}),
    "1x300x129": (False, (1, 300, 129), {}),
}

CONV_CASES: dict[str, tuple[bool, tuple[int, ...], dict[str, Any]]] = {
    # name: (quick, (n, c, h, w, k, r, s), options)
    "3x3 pad 1": (True, (2, 3, 9, 7, 4, 3, 3), {"padding": 1}),
    "3x3 stride 2 bias": (True, (1, 5, 11, 10, 6, 3, 3), {"stride": 2, "bias": True}),
    "3x3 pad (2,1) dilation 2": (True, (1, 4, 10, 9, 3, 3, 3), {"padding": (2, 1), "dilation": 2}),
    "groups 2 pad same": (True, (1, 6, 8, 9, 4, 3, 3), {"padding": "same", "groups": 2}),
    "depthwise 3x3": (True, (2, 8, 9, 9, 8, 3, 3), {"padding": 1, "groups": 8}),
    "1x1": (True, (2, 7, 5, 6, 5, 1, 1), {}),
    "3x3 NHWC bias": (True, (2, 5, 8, 7, 6, 3, 3), {"padding": 1, "bias": True, "layout": "NHWC"}),
    "5x3 stride (2,1) NHWC": (False, (1, 3, 13, 12, 7, 5, 3), {"stride": (2, 1), "layout": "NHWC"}),
    "7x7 stride 2 pad 3": (False, (1, 3, 32, 30, 8, 7, 7), {"stride": 2, "padding": 3}),
    "3x3 C64 28x28 K64": (False, (2, 64, 28, 28, 64, 3, 3), {"padding": 1}),
    "depthwise 3x3 C32 NHWC": (False, (1, 32, 20, 20, 32, 3, 3), {"padding": 1, "groups": 32, "layout": "NHWC"}),
}


def _bind(run, dtype):
    return lambda device, rng: run(device, rng, dtype)


def register_cases(register) -> None:
    """Add the library's GEMM and conv2d cases to the parity matrix (called by :mod:`xgpu.kernels.plugin`)."""
    for name, (quick, (m, n, k), opts) in GEMM_CASES.items():
        run, work = _gemm_case(m, n, k, **opts)
        for dtype in DTYPES:
            register.add("gemm", name, dtype, _bind(run, dtype), work=work, quick=quick)
    for name, (quick, (m, n, k), opts) in INT_GEMM_CASES.items():
        for dtype_a in ("int8", "uint8"):
            run, work = _int_gemm_case(m, n, k, dtype_a, **opts)
            register.add("gemm", f"{name} x int8", dtype_a, run, work=work, quick=quick)
    for name, (quick, shape, opts) in CONV_CASES.items():
        run = _conv_case(*shape, **opts)
        work = _conv_work(*shape, **opts)
        for dtype in DTYPES:
            register.add("conv2d", name, dtype, _bind(run, dtype), work=work, quick=quick)
