"""GEMM kernel parameters per device class: the defaults the library picks from.

Each entry is measured (see docs/benchmarks.md) or, for device classes we could not measure here,
taken from the published shapes that tiled GEMMs use on them. Rows key on the device's class
(xgpu.plugin.device_class: its OpenCL/CUDA implementation, type and capabilities), never on words of
its vendor's name: the first row whose ``type`` fits and whose tags the class all has wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from xgpu.plugin import DeviceClass, device_class, match_rule

T = TypeVar("T")


@dataclass(frozen=True)
class GemmConfig:
    """One variant of the GEMM: a TM x TN tile per work-group, WM x WN per work-item.

    ``panel=True`` is the CPU runtimes' kernel (``gemm_panel.mako``): a work-group of TN / WN work-items
    copies KC x TN slices of B into local memory and each work-item multiplies its WN columns (two
    VW-wide vectors) over TM rows, WM at a time. TM is a launch argument there, not compiled in.
    """

    local_tiles: bool
    tm: int
    tn: int
    wm: int
    wn: int
    tk: int = 16
    kc: int = 0
    contiguous_cols: bool = False
    vw: int = 1
    panel: bool = False
    #: (panel variants) panels of WN columns per work-item, walked along each MR rows: C written row by row
    pw: int = 1

    @property
    def label(self) -> str:
        """A short name: ``128x64-8x32-vw16-kc256`` (tile, block per work-item, options)."""
        if self.panel:
            return (f"panel-{self.tm}x{self.tn}-{self.wm}x{self.wn}-vw{self.vw}-kc{self.kc}"
                    + (f"-pw{self.pw}" if self.pw > 1 else ""))
        text = f"{self.tm}x{self.tn}-{self.wm}x{self.wn}"
        text += f"-local{self.tk}" if self.local_tiles else ""
        text += f"-vw{self.vw}" if self.vw > 1 else ""
        text += f"-kc{self.kc}" if self.kc else ""
        return text + ("-contig" if self.contiguous_cols else "")

    @property
    def local_size(self) -> tuple[int, int]:
        if self.panel:
            return (self.tn // (self.wn * self.pw), 1)
        return (self.tn // self.wn, self.tm // self.wm)

    @property
    def work_group_size(self) -> int:
        return self.local_size[0] * self.local_size[1]

    def local_mem_bytes(self, acc_itemsize: int, k: int | None = None) -> int:
        """Local memory a work-group uses (a panel variant: for a product of ``k`` when given, whose K
        blocks are never longer than K)."""
        if self.panel:
            return self.tn * max(1, min(self.kc, self.kc if k is None else k)) * acc_itemsize
        return (self.tm + self.tn) * self.tk * acc_itemsize if self.local_tiles else 0

    def defines(self) -> dict[str, Any]:
        if self.panel:  # the rows per work-group (tm) are a launch argument
            return {"vw": self.vw, "mr": self.wm, "wg": self.local_size[0], "kc": self.kc, "pw": self.pw}
        return asdict(self)

    def compiled(self) -> GemmConfig:
        """The variant as compiled: a panel variant's row count is a launch argument, so every row count
        shares one build."""
        return replace(self, tm=self.wm) if self.panel else self

    def shrink(self) -> GemmConfig:
        """A variant with half the work-group, for devices or kernels that cannot take this one."""
        if self.panel:
            if self.pw > 1:
                return replace(self, tn=self.tn // 2, pw=self.pw // 2)
            if self.tn > self.wn:
                return replace(self, tn=self.tn // 2)
            return replace(self, kc=max(self.kc // 2, 1))
        if self.tm // self.wm >= self.tn // self.wn and self.tm > self.wm:
            return replace(self, tm=self.tm // 2)
        if self.tn > self.wn:
            return replace(self, tn=self.tn // 2)
        return replace(self, tm=max(self.tm // 2, 1), wm=max(self.wm // 2, 1))


# (type, device-class tags, config); first match wins. Figures: docs/benchmarks.md.
RULES: list[tuple[str | None, tuple[str, ...], GemmConfig]] = [
    # Oclgrind simulates every work-item: small tiles keep runs short and still cover the tiled path
    (None, ("simulator",), GemmConfig(local_tiles=True, tm=16, tn=16, wm=2, wn=2, tk=8)),
    # CPU runtimes (Intel's, PoCL, any other CPU): the panel kernel, as BLAS libraries lay out a CPU
    # GEMM. On 8-lane (AVX2) CPUs, 6 rows x 16 columns per micro-kernel in 8-wide vectors (12 accumulator
    # registers of the 16), one work-item per group walking 4 such panels (64 columns) along each 6 rows,
    # up to 384 rows per group, K blocks of 1024 (256 KiB of B in local memory, a 64 KiB panel; 1-4% faster
    # than 512 on both CPU runtimes over square, skinny and transposed shapes, K up to 1024 then written
    # to C once; runtimes with less local memory get the variant cut to fit); on
    # 16-lane (AVX-512) CPUs 4 work-items of one panel each in 16-wide vectors, K blocks of 256 (the same
    # panel bytes; not measured here).
    # Measured here (AVX2, 2 cores, docs/benchmarks.md): 4 work-items of one panel each, every work-item
    # walking its panel down all the group's rows, ran 10% (Intel) and 14% (PoCL) slower in the median
    # over 11 shapes (C is then written 64 bytes a row at a time); K blocks of 128 and 96 rows per group
    # 8% slower again (C read and written once per K block, B's slice copied once per 96 rows); the
    # earlier rows, 16 strided columns per work-item (Intel) and 32 contiguous ones (PoCL), ran at half
    # of OpenBLAS.
    ("cpu", ("simd-narrow",),
     GemmConfig(local_tiles=False, panel=True, tm=384, tn=64, wm=6, wn=16, kc=1024, vw=8, pw=4)),
    ("cpu", (), GemmConfig(local_tiles=False, panel=True, tm=384, tn=128, wm=6, wn=32, kc=256, vw=16)),
    # GPUs: 64x64 tiles of 4x4 per work-item (256 work-items), the usual shape for NVIDIA and AMD
    ("gpu", (), GemmConfig(local_tiles=True, tm=64, tn=64, wm=4, wn=4, tk=16)),
    (None, (), GemmConfig(local_tiles=True, tm=32, tn=32, wm=2, wn=2, tk=16)),
]


#: ``xgpu tune gemm`` results apply by size: products of at least this many multiply-adds (m * n * k)
#: are "large" (tuned at 2048^3 by default), smaller ones "small".
LARGE = 512**3


def shape_class(m: int, n: int, k: int) -> str:
    return "large" if m * n * k >= LARGE else "small"


def acc_itemsize(dtype) -> int:
    """Bytes of one accumulator: float64 accumulates in float64, float32, float16 and bfloat16 in float32."""
    import numpy as np

    return 8 if np.dtype(dtype) == np.float64 else 4


def adapt(config: GemmConfig, itemsize: int, trans_b: bool) -> GemmConfig:
    """Fit a variant to the dtype and layout: vector loads need float32/float64 and contiguous rows of B."""
    if config.panel:
        # B is always read as row-major (the planner transposes it first); float64 halves the lanes
        if itemsize == 8:
            return replace(config, tn=config.tn // 2, wn=config.wn // 2, vw=max(config.vw // 2, 1))
        return config
    if config.vw > 1 and (itemsize == 2 or trans_b):
        # no vector loads: a scalar block small enough to stay in registers (fully unrolled 8x32
        # scalar blocks take some compilers minutes to build)
        return replace(config, tn=config.tn // 4, wn=config.wn // 8, contiguous_cols=False, vw=1)
    if config.vw > 1 and itemsize == 8:
        # twice the bytes per element: half the columns keeps the accumulators in registers
        return replace(config, tn=config.tn // 2, wn=config.wn // 2, vw=max(config.vw // 2, 1))
    return config


def default_config(cls: DeviceClass,
                   rules: Sequence[tuple[str | None, tuple[str, ...], T]] | None = None) -> T:
    """The value of the first rule of ``rules`` (the GEMM's by default) that fits a device class: a rule is
    (device type or None, tags the class must all have, value); see xgpu.plugin.device_class."""
    table: Sequence[tuple[str | None, tuple[str, ...], Any]] = RULES if rules is None else rules
    return match_rule(cls, table)


def rule_for(device: Any, rules: Sequence[tuple[str | None, tuple[str, ...], T]]) -> T:
    """The value of the first rule of ``rules`` that fits ``device`` (an xgpu.Device or a DeviceInfo)."""
    return match_rule(device_class(device), rules)
