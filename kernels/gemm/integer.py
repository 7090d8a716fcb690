"""Integer GEMM: int8 and uint8 operands (and the mixed uint8 x int8 that quantized layers use), exact
int32 results, through ``gemm_int.mako``. ``xgpu.gemm`` and ``xgpu.matmul`` come here for integer arrays."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import xgpu
from xgpu import Array
from xgpu.errors import InvalidArgumentError, LaunchError, ShapeError, UnsupportedDtypeError
from xgpu.plugin import device_class, match_rule

__all__ = ["INT_DTYPES", "IntGemmConfig", "gemm_int", "is_integer", "matmul_int", "transpose_int"]

log = logging.getLogger(__name__)
TEMPLATE = xgpu.KernelTemplate(Path(__file__).with_name("gemm_int.mako"))
INT_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8))
OUT_DTYPE = np.dtype(np.int32)


@dataclass(frozen=True)
class IntGemmConfig:
    """One variant of the integer GEMM: a TM x TN tile per work-group, WM x WN per work-item (VW-lane
    vectors of contiguous columns when vw > 1), a barrier every ``kc`` steps of K (0: none)."""

    tm: int
    tn: int
    wm: int
    wn: int
    vw: int = 1
    kc: int = 0

    @property
    def label(self) -> str:
        return f"{self.tm}x{self.tn}-{self.wm}x{self.wn}" + (f"-vw{self.vw}" if self.vw > 1 else "") + (
            f"-kc{self.kc}" if self.kc else "")

    @property
    def local_size(self) -> tuple[int, int]:
        return (self.tn // self.wn, self.tm // self.wm)

    @property
    def work_group_size(self) -> int:
        return (self.tn // self.wn) * (self.tm // self.wm)

    def shrink(self) -> IntGemmConfig:
        """Half the work-group, for devices or compiled kernels that cannot take this one."""
        if self.tm > self.wm:
            return replace(self, tm=self.tm // 2)
        if self.tn > self.wn:
            return replace(self, tn=self.tn // 2)
        return replace(self, tm=max(self.tm // 2, 1), wm=max(self.wm // 2, 1))


# (type, device-class tags, config); first match wins (xgpu.plugin.match_rule). Figures: docs/benchmarks.md.
RULES: list[tuple[str | None, tuple[str, ...], IntGemmConfig]] = [
    # Oclgrind simulates every work-item: a small tile still covers the vector path and the edges
    (None, ("simulator",), IntGemmConfig(tm=8, tn=16, wm=2, wn=8, vw=4)),
    # CPU compilers (PoCL, Intel's CPU runtime, llvmpipe): 6 rows x 16 contiguous columns per work-item as
    # two 8-lane vectors (12 accumulator registers of AVX2's 16), barriers every 256 steps of K
    ("cpu", (), IntGemmConfig(tm=96, tn=64, wm=6, wn=16, vw=8, kc=256)),
    # GPUs: 64x64 tiles, 4x4 per work-item, columns 16 apart (coalesced byte reads)
    (None, (), IntGemmConfig(tm=64, tn=64, wm=4, wn=4)),
]

_kernels: dict[tuple, tuple[Any, IntGemmConfig]] = {}


def is_integer(*arrays: Any) -> bool:
    """Whether any of ``arrays`` holds int8 or uint8: such a product goes through the integer GEMM."""
    return any(getattr(x, "dtype", None) in INT_DTYPES for x in arrays)


def config_for(device: xgpu.Device) -> IntGemmConfig:
    """The variant the library picks for ``device`` (before fitting it to the device's limits)."""
    return match_rule(device_class(device), RULES)


def all_variants() -> list[IntGemmConfig]:
    """Every variant a device class can be given (for offline compiles)."""
    return list(dict.fromkeys(cfg for _t, _w, cfg in RULES))


def render_defines(dtype_a: Any, dtype_b: Any, trans_a: bool, cfg: IntGemmConfig) -> dict[str, Any]:
    return {"part": "gemm", "dtype_a": np.dtype(dtype_a), "dtype_b": np.dtype(dtype_b), "trans_a": trans_a, "tm": cfg.tm,
            "tn": cfg.tn, "wm": cfg.wm, "wn": cfg.wn, "vw": cfg.vw, "kc": cfg.kc}


def _kernel(device: xgpu.Device, dtype_a: np.dtype, dtype_b: np.dtype, trans_a: bool,
            cfg: IntGemmConfig, explicit: bool) -> tuple[Any, IntGemmConfig]:
    key = (device, dtype_a, dtype_b, trans_a, cfg, explicit)
    hit = _kernels.get(key)
    if hit is not None:
        return hit
    limits = device.max_work_item_sizes
    while (cfg.work_group_size > device.max_work_group_size or cfg.local_size[0] > limits[0]
           or cfg.local_size[1] > limits[1]):
        if explicit:
            raise LaunchError(f"integer GEMM variant {cfg.label} needs a work-group of {cfg.local_size}; "
                              f"{device.id} allows {device.max_work_group_size} work-items")
        cfg = cfg.shrink()
    while True:
        program = xgpu.compile(TEMPLATE, device, defines=render_defines(dtype_a, dtype_b, trans_a, cfg))
        kernel = program.kernel("gemm_int")
        if kernel.max_work_group_size >= cfg.work_group_size or cfg.work_group_size == 1:
            break
        if explicit:
            raise LaunchError(f"integer GEMM variant {cfg.label} needs work-groups of {cfg.work_group_size}, but "
                              f"the compiled kernel allows at most {kernel.max_work_group_size} on {device.id}")
        cfg = cfg.shrink()
    log.debug("integer gemm on %s, %s x %s, trans_a=%s: %s", device.id, dtype_a, dtype_b, trans_a, cfg.label)
    hit = _kernels[key] = (kernel, cfg)
    return hit


def check_dtypes(device: xgpu.Device, a: Array, b: Array, c: Array | None = None) -> tuple[np.dtype, np.dtype]:
    """The operands' dtypes, when both are int8/uint8 (and ``c``, if given, int32); else a clear error."""
    for name, x in (("a", a), ("b", b)):
        if x.dtype not in INT_DTYPES:
            other = b if name == "a" else a
            raise UnsupportedDtypeError(
                f"{name} is {x.dtype} but the other operand is {other.dtype}: the integer GEMM takes int8 or "
                f"uint8 operands (in any mix) and gives int32; quantize {name} to int8/uint8, or convert both "
                f"to float32 with xgpu.asarray(x, dtype=np.float32)")
    if c is not None and c.dtype != OUT_DTYPE:
        raise UnsupportedDtypeError(f"c is {c.dtype}: an int8/uint8 GEMM writes exact int32 results; pass an int32 c")
    return a.dtype, b.dtype


def _check_scalar(name: str, value: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not float(value).is_integer() or not -2**31 <= value < 2**31:
        raise InvalidArgumentError(f"{name}={value!r}: the integer GEMM takes whole {name} that fit in int32; "
                                   "scale the int32 result afterwards for anything else")
    return int(value)


def transpose_int(x: Array, rows: int, cols: int, batch: int = 1, stride: int = 0) -> Array:
    """The (batch, cols, rows) transposes of the (rows, cols) int8/uint8 matrices in ``x``, ``stride``
    elements apart (0: one matrix)."""
    batch = batch if stride else 1
    out = xgpu.empty((batch, cols, rows), x.dtype, x.device)
    defines = {**render_defines(x.dtype, x.dtype, False, RULES[-1][2]), "part": "transpose"}
    program = xgpu.compile(TEMPLATE, x.device, defines=defines)
    t = 16 if x.device.max_work_group_size >= 256 else 1
    program.transpose(out, x, np.int32(rows), np.int32(cols), np.int32(stride),
                      global_size=(-(-rows // t) * t, -(-cols // t) * t, batch), local_size=(t, t, 1))
    return out


def launch(c: Array, a: Array, b: Array, m: int, n: int, k: int, batch: int, alpha: int, beta: int,
           trans_a: bool, trans_b: bool, strides: tuple[int, int, int],
           config: IntGemmConfig | None = None) -> Array:
    """``C = alpha op(A) @ op(B) + beta C`` for ``batch`` matrices ``strides`` elements apart."""
    device = c.device
    stride_a, stride_b, stride_c = strides
    if trans_b:  # the kernel reads B as (K, N) rows: transpose a (N, K) operand once, O(N K)
        b = transpose_int(b, n, k, batch, stride_b)
        stride_b = k * n if stride_b else 0
    explicit = config is not None
    cfg = config or config_for(device)
    kernel, cfg = _kernel(device, a.dtype, b.dtype, trans_a, cfg, explicit)
    tx, ty = cfg.local_size
    i32 = np.int32
    kernel(c, a, b, i32(m), i32(n), i32(k), i32(alpha), i32(beta), i32(max(m if trans_a else k, 1)),
           i32(max(n, 1)), i32(max(n, 1)), i32(stride_a), i32(stride_b), i32(stride_c),
           global_size=(-(-n // cfg.tn) * tx, -(-m // cfg.tm) * ty, batch), local_size=(tx, ty, 1))
    return c


def gemm_int(a: Array, b: Array, c: Array | None = None, *, alpha: Any = 1, beta: Any = 0, trans_a: bool = False,
             trans_b: bool = False, config: IntGemmConfig | None = None) -> Array:
    """``C = alpha * op(A) @ op(B) + beta * C`` on int8/uint8 arrays, in exact int32 (see xgpu.gemm)."""
    from xgpu.plugin import same_device

    arrays = [a, b] + ([c] if c is not None else [])
    device = same_device(*arrays)
    check_dtypes(device, a, b, c)
    alpha_i, beta_i = _check_scalar("alpha", alpha), _check_scalar("beta", beta)
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"gemm takes 2-D arrays, got a {a.shape} and b {b.shape}; use xgpu.matmul for batches")
    from .planner import gemm_shape

    m, n, k = gemm_shape(a.shape, b.shape, trans_a, trans_b)
    if c is None:
        c = xgpu.empty((m, n), OUT_DTYPE, device)
        beta_i = 0
    elif c.shape != (m, n):
        raise ShapeError(f"c has shape {c.shape}, but op(a) @ op(b) is ({m}, {n})")
    if m == 0 or n == 0:
        return c
    if k == 0:  # the product is empty: C = beta * C, in int32 with wrap-around as numpy's
        scaled = (c.get().astype(np.int64) * beta_i).astype(np.uint64).astype(np.uint32).view(np.int32)
        return c.set(scaled if beta_i else np.zeros((m, n), OUT_DTYPE))
    if xgpu.shares_memory(c, a) or xgpu.shares_memory(c, b):  # int32 c cannot share bytes with int8 operands
        raise InvalidArgumentError("c shares memory with an operand; pass a separate int32 array")
    return launch(c, a, b, m, n, k, 1, alpha_i, beta_i, trans_a, trans_b, (0, 0, 0), config)


def matmul_int(a: Array, b: Array) -> Array:
    """numpy's ``matmul`` on int8/uint8 arrays (2-D, or 3-D batches), exact int32 results."""
    from xgpu.plugin import same_device

    from .planner import matmul_shape

    device = same_device(a, b)
    check_dtypes(device, a, b)
    m, n, k, batch, out_shape, strides = matmul_shape(a.shape, b.shape)
    c = xgpu.empty(out_shape, OUT_DTYPE, device)
    if c.size == 0:
        return c
    if k == 0:
        return c.set(np.zeros(out_shape, OUT_DTYPE))
    return launch(c, a, b, m, n, k, batch, 1, 0, False, False, strides)
