"""GEMM and matmul: one tiled, register-blocked template for every device and dtype, and a planner
that picks, per call, the variant and tile for the shape and whether a transposed operand is first
packed (transposed once, ``pack.mako``) into the layout the fast kernels read contiguously."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import xgpu
from xgpu import Array
from xgpu.errors import InvalidArgumentError, ShapeError, UnsupportedDtypeError
from xgpu.plugin import device_class, plain_operand, same_device, write_through

from .integer import gemm_int, is_integer, matmul_int
from .planner import GemmPlan, gemm_shape, matmul_shape, plan_for_shape, small_k_variant
from .tuning import RULES, GemmConfig, acc_itemsize, adapt, rule_for, shape_class

__all__ = ["GemmConfig", "GemmPlan", "gemm", "matmul", "plan"]

log = logging.getLogger(__name__)
TEMPLATE = xgpu.KernelTemplate(Path(__file__).with_name("gemm.mako"))
PANEL = xgpu.KernelTemplate(Path(__file__).with_name("gemm_panel.mako"))
DOT = xgpu.KernelTemplate(Path(__file__).with_name("gemm_dot.mako"))
#: 16 x 16 tiles per work-item of the packing kernel's CPU form
PACK_BLOCKS = 4
#: rows of A per work-item of the dot-product kernel, by its columns per work-item (8 vector accumulators
#: either way): 4 columns for a few, 1 for a matrix-vector product (x @ W.T with one row: the 4-column
#: form computed the same column 4 times and read W at 13 GB/s on both CPU runtimes, this one at 18-23)
DOT_ROWS = {4: 2, 1: 8}
#: ... and at most this many work-items, each walking every DOT_ITEMS-th block of rows after its first
DOT_ITEMS = 128
PACK = xgpu.KernelTemplate(Path(__file__).with_name("pack.mako"))
#: float16 and bfloat16 are storage: read into float32, accumulated in float32, rounded once at the store
DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), np.dtype(xgpu.bfloat16))


def config_for(device: xgpu.Device, dtype: np.dtype, trans_b: bool = False, rules=None) -> GemmConfig:
    """The variant the library picks for ``device``, ``dtype`` and layout (before fitting to limits),
    from ``rules`` (the GEMM's tuning table by default)."""
    base = rule_for(device, rules or RULES)
    return adapt(base, np.dtype(dtype).itemsize, trans_b)


def template_for(config: GemmConfig) -> tuple[xgpu.KernelTemplate, str]:
    """The template and kernel name of a variant."""
    return (PANEL, "gemm_panel") if config.panel else (TEMPLATE, "gemm")


def all_variants() -> list[tuple[np.dtype, bool, bool, GemmConfig]]:
    """Every (dtype, trans_a, trans_b, config) the library can pick on some device class (panel variants
    read A row-major, a transposed A being packed first, and B either way: two builds serve every layout)."""
    seen = []
    for _kind, _words, base in RULES:
        for dtype in DTYPES:
            for trans_a in (False, True):
                for trans_b in (False, True):
                    if base.panel and trans_a:
                        continue
                    fitted = adapt(base, dtype.itemsize, trans_b)
                    for config in (fitted, small_k_variant(fitted)) if base.panel else (fitted,):
                        v = (dtype, trans_a, trans_b, config)
                        if v not in seen:
                            seen.append(v)
    return seen


def _fits(config: GemmConfig, device: xgpu.Device, acc_bytes: int) -> bool:
    tx, ty = config.local_size
    limits = device.max_work_item_sizes
    return (
        1 <= config.work_group_size <= device.max_work_group_size
        and tx <= limits[0]
        and ty <= limits[1]
        and config.local_mem_bytes(acc_bytes) <= device.local_mem_bytes
    )


def render_defines(dtype: np.dtype, config: GemmConfig, trans_a: bool, trans_b: bool) -> dict[str, Any]:
    if config.panel:  # A row-major; B row-major or, with tb, as its transpose
        return {"dtype": dtype, **config.defines(), **({"tb": True} if trans_b else {})}
    return {"dtype": dtype, "trans_a": trans_a, "trans_b": trans_b, **config.defines()}


def compile_variant(template, kernel_name: str, device: xgpu.Device, cfg: GemmConfig, defines: dict[str, Any],
                    explicit: bool = False):
    """Compile a tiled variant, halving its tile until the device and the compiled kernel accept its
    work-group (and local memory); an ``explicit`` variant that does not fit is an error instead.
    ``defines["dtype"]`` is the storage dtype; float64 accumulates in 8 bytes, the others in 4."""
    acc = acc_itemsize(defines["dtype"])
    while not _fits(cfg, device, acc):
        if explicit:
            raise xgpu.errors.LaunchError(
                f"variant {cfg.label} needs a work-group of {cfg.local_size} and {cfg.local_mem_bytes(acc)} "
                f"bytes of local memory; {device.id} allows {device.max_work_group_size} work-items and "
                f"{device.local_mem_bytes} bytes"
            )
        cfg = cfg.shrink()
    while True:
        program = xgpu.compile(template, device, defines={**defines, **cfg.defines()})
        kernel = program.kernel(kernel_name)
        if kernel.max_work_group_size >= cfg.work_group_size or cfg.work_group_size == 1:
            return kernel, cfg
        if explicit:
            raise xgpu.errors.LaunchError(
                f"variant {cfg.label} needs work-groups of {cfg.work_group_size}, but the compiled kernel "
                f"{kernel_name!r} allows at most {kernel.max_work_group_size} on {device.id}"
            )
        log.debug("%s %s: compiled kernel allows %d work-items, shrinking", kernel_name, cfg.label,
                  kernel.max_work_group_size)
        cfg = cfg.shrink()


#: (kernel, GemmConfig) per build, or (kernel, tile) for the packing one; keys that start with "ready" are
#: what a planned call needs, found in one lookup: the kernel and variant with its rows
_kernels: dict[tuple, Any] = {}
#: all of a panel launch per plan and shape (:func:`_panel_call`), forgotten past CALLS entries (a process
#: sweeping many shapes) without the builds in _kernels
_calls: dict[tuple, Any] = {}
CALLS = 4096


def tuned_config(device: xgpu.Device, dtype: np.dtype, trans_b: bool, shape_class: str) -> GemmConfig | None:
    """The variant ``xgpu tune gemm`` stored for this device, dtype and shape class, fitted to the layout."""
    from xgpu.tuning import lookup

    found = lookup("gemm", device, dtype, shape_class)
    return adapt(GemmConfig(**found), np.dtype(dtype).itemsize, trans_b) if found else None


def _kernel(device: xgpu.Device, dtype: np.dtype, trans_a: bool, trans_b: bool, config: GemmConfig | None,
            shape_class: str = "small", explicit: bool | None = None, acc16: bool = False):
    """The compiled kernel and the variant it was built as (halved to fit the device unless
    ``explicit``, which defaults to whether ``config`` is given); ``acc16``: float16 sums (``gemm.mako``)."""
    explicit = config is not None if explicit is None else explicit
    if config is not None:  # every call of a planned GEMM: one lookup, no variant rebuilt
        ready = _kernels.get(("ready", device, dtype, trans_a, trans_b, config, explicit, acc16))
        if ready is not None:
            return ready
    tuned = tuned_config(device, dtype, trans_b, shape_class) if config is None else None
    wanted = config or tuned or config_for(device, dtype, trans_b)
    rows = wanted.tm
    if wanted.panel:  # one build for every row count, and for A and B row-major or B given as B^T (tb)
        trans_a = False
        wanted = wanted.compiled()
    key = (device, dtype, trans_a, trans_b, wanted, explicit, acc16)
    hit = _kernels.get(key)
    if hit is None:
        template, name = template_for(wanted)
        defines: dict[str, Any] = render_defines(dtype, wanted, trans_a, trans_b)
        for field in wanted.defines():  # compile_variant adds those of the variant it builds
            defines.pop(field)
        if acc16:
            defines.update(acc16=True, half_arithmetic="native")
        hit = compile_variant(template, name, device, wanted, defines, explicit=explicit)
        log.debug("gemm on %s, %s, trans_a=%s trans_b=%s: %s%s", device.id, dtype, trans_a, trans_b, hit[1].label,
                  " (tuned)" if tuned and not config else "")
        _kernels[key] = hit
    if wanted.panel:
        hit = hit[0], replace(hit[1], tm=max(hit[1].wm, rows // hit[1].wm * hit[1].wm))
    if config is not None:
        _kernels[("ready", device, dtype, trans_a, trans_b, config, explicit, acc16)] = hit
    return hit


def _check_operand(name: str, x: Any) -> Array:
    if not isinstance(x, Array):
        raise InvalidArgumentError(
            f"{name} is a {type(x).__name__}, not an xgpu array: move it with xgpu.asarray({name}, device=...)"
        )
    if x.size > 2**31 - 1:  # the kernels take their sizes, leading dimensions and strides as 32-bit ints
        raise ShapeError(f"{name} has {x.size} elements: the GEMM takes arrays of at most 2**31-1; split the product")
    return x


def _check_dtype(device: xgpu.Device, *arrays: Array) -> np.dtype:
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise UnsupportedDtypeError(f"operands have different dtypes ({', '.join(sorted(map(str, dtypes)))}); "
                                    "convert them to one with xgpu.asarray(x, dtype=...)")
    dtype = dtypes.pop()
    if dtype not in DTYPES:
        raise UnsupportedDtypeError(f"GEMM takes float32, float64, float16 or bfloat16 arrays, or int8/uint8 ones (exact "
                                    f"int32 results), not {dtype}")
    if not device.supports(dtype):
        raise UnsupportedDtypeError(f"{device.id} ({device.name}) does not support {dtype}")
    return dtype


def plan(device: xgpu.Device, dtype: np.dtype, m: int, n: int, k: int, batch: int = 1, trans_a: bool = False,
         trans_b: bool = False, config: GemmConfig | None = None) -> GemmPlan:
    """What a GEMM of this shape runs on ``device``: the variant and tile, and which transposed operands
    are packed first. An explicit ``config`` runs as given, on the operands as they lie."""
    dtype = np.dtype(dtype)
    if config is not None:  # (a panel variant reads B^T as it lies)
        return GemmPlan(config, False, False, "explicit variant", read_bt=config.panel and trans_b)
    key = (device, dtype, m, n, k, batch, trans_a, trans_b)
    found = _plans.get(key)
    if found is None:
        tuned = tuned_config(device, dtype, False, shape_class(m, n, k))
        base = tuned or config_for(device, dtype, False)
        found = plan_for_shape(base, dtype.itemsize, m, n, k, batch, trans_a, trans_b, device.compute_units,
                               "tuned variant (xgpu tune gemm)" if tuned else "tuning table")
        if len(_plans) > 4096:  # a process sweeping many shapes: forget the old ones
            _plans.clear()
        _plans[key] = found
    return found


_plans: dict[tuple, GemmPlan] = {}


def _pack_kernel(device: xgpu.Device, dtype: np.dtype):
    key = (device, "pack", dtype)
    hit = _kernels.get(key)
    if hit is None:
        # CPU runtimes: one work-item per strip of four 16 x 16 tiles (no local memory, no barrier); others:
        # 32 x 32 tiles staged in local memory by 32 x RY work-items
        blocks = PACK_BLOCKS if device_class(device).type == "cpu" and not device.is_simulator else 0
        t, ry = (16, 1) if blocks else (32, 8)
        while not blocks and t * ry > device.max_work_group_size and ry > 1:
            ry //= 2
        program = xgpu.compile(PACK, device, defines={"dtype": dtype, "t": t, "ry": ry, "blocks": blocks})
        hit = _kernels[key] = (program.kernel("transpose"), (t, ry, blocks))
    return hit


def transposed(x: Array, rows: int, cols: int, batch: int = 1, stride: int = 0, out: Array | None = None) -> Array:
    """The transposes of the ``batch`` row-major rows x cols matrices in ``x``, ``stride`` elements apart
    (0: one matrix, repeated), in a new (batch, cols, rows) array or written into ``out``."""
    batch = batch if stride else 1
    if out is None:
        out = xgpu.empty((batch, cols, rows), x.dtype, x.device)
    kernel, (t, ry, blocks) = _pack_kernel(x.device, x.dtype)
    if blocks:
        sizes = {"global_size": (-(-cols // (t * blocks)), -(-rows // t), batch), "local_size": (1, 1, 1)}
    else:
        sizes = {"global_size": (-(-cols // t) * t, -(-rows // t) * ry, batch), "local_size": (t, ry, 1)}
    kernel(out, x, np.int32(rows), np.int32(cols), np.int32(stride), np.int32(rows * cols), **sizes)
    return out


def _launch(c, a, b, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, config=None, acc16=False):
    if acc16:  # float16 sums: the tiled kernel on the operands as they lie
        chosen = GemmPlan(config or acc16_config(c.device), False, False, "float16 accumulation")
        return _run(c, a, b, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, chosen, config is not None,
                    acc16=True)
    chosen = plan(c.device, c.dtype, m, n, k, batch, trans_a, trans_b, config)
    return execute(chosen, c, a, b, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, config is not None)


def execute(chosen: GemmPlan, c, a, b, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, explicit=False):
    """Run ``chosen`` (a plan, see :func:`plan`) for ``C = alpha op(A) @ op(B) + beta C``."""
    if chosen.dot:
        return _run_dot(c, a, b, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, chosen)
    if chosen.config.panel:
        return _run_panel(c, a, b, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, chosen, explicit)
    if not chosen.swap:
        return _run(c, a, b, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, chosen, explicit)
    # C^T = op(B)^T op(A)^T, an N x M product on the operands' other roles (their transposes flip), computed
    # into scratch and transposed into C: for op(A) @ B^T with few rows, packing A and C is cheaper than B
    scratch = transposed(c, m, n) if beta else xgpu.empty((1, n, m), c.dtype, c.device)
    _run(scratch, b, a, n, m, k, 1, alpha, beta, not trans_b, not trans_a, (0, 0, 0), chosen, False)
    return transposed(scratch, n, m, out=c)


ACCUMULATE = ("float32", "float16")


#: float16 sums on devices whose variant does not stage tiles in local memory (CPU runtimes, whose panel
#: and vector variants sum in float32 vectors): a direct scalar one, 4 x 4 per work-item
ACC16_DIRECT = GemmConfig(local_tiles=False, tm=32, tn=32, wm=4, wn=4)


def _acc16_of(base: GemmConfig) -> GemmConfig:
    return replace(base, vw=1) if base.local_tiles and not base.panel else ACC16_DIRECT


def acc16_config(device: xgpu.Device) -> GemmConfig:
    """The variant float16 sums run as: the device's tiled one (GPUs), else :data:`ACC16_DIRECT`."""
    return _acc16_of(config_for(device, np.dtype(np.float16)))


def acc16_variants() -> list[GemmConfig]:
    """Every variant float16 sums can run as on some device class (for offline compiles)."""
    return list(dict.fromkeys(_acc16_of(adapt(base, 2, False)) for _k, _w, base in RULES))


def check_accumulate(device: xgpu.Device, dtype: np.dtype, accumulate: Any) -> bool:
    """Whether ``accumulate`` asks for float16 sums, after checking that it can: float16 operands on a
    device that computes in half precision (``device.supports("float16", arithmetic=True)``)."""
    if accumulate not in ACCUMULATE:
        raise InvalidArgumentError(f"accumulate must be 'float32' (the default) or 'float16', not {accumulate!r}")
    if accumulate == "float32":
        return False
    if dtype != np.float16:
        raise UnsupportedDtypeError(f"accumulate='float16' takes float16 operands, not {dtype}: convert them with "
                                    ".astype(np.float16), or leave accumulate='float32'")
    if not device.supports("float16", arithmetic=True):
        raise UnsupportedDtypeError(
            f"{device.id} ({device.name}) has no float16 arithmetic (no cl_khr_fp16, or a GPU before sm_53): "
            "accumulate='float16' cannot run there; use accumulate='float32' (the default, more accurate)")
    return True


def _run(c, a, b, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, chosen: GemmPlan, explicit: bool,
         acc16: bool = False):
    device = c.device
    dtype = c.dtype
    stride_a, stride_b, stride_c = strides
    if chosen.pack_a:  # A is (K, M): its transposes, (M, K) each
        a = transposed(a, k, m, batch, stride_a)
        trans_a, stride_a = False, (m * k if stride_a else 0)
    if chosen.pack_b:  # B is (N, K): its transposes, (K, N) each
        b = transposed(b, n, k, batch, stride_b)
        trans_b, stride_b = False, (k * n if stride_b else 0)
    kernel, cfg = _kernel(device, dtype, trans_a, trans_b, chosen.config, explicit=explicit, acc16=acc16)
    lda = m if trans_a else k
    ldb = k if trans_b else n
    scalar = np.float64 if dtype == np.float64 else np.float32
    tx, ty = cfg.local_size
    groups = (-(-n // cfg.tn), -(-m // cfg.tm))
    i32 = np.int32  # index_t's type: passed as is, with no per-argument conversion on the host
    return kernel(
        c, a, b, i32(m), i32(n), i32(k), scalar(alpha), scalar(beta), i32(max(lda, 1)), i32(max(ldb, 1)),
        i32(max(n, 1)), i32(stride_a), i32(stride_b), i32(stride_c),
        global_size=(groups[0] * tx, groups[1] * ty, batch), local_size=(tx, ty, 1),
    )


def _orientation(m, n, k, batch, trans_a, trans_b, strides, swap: bool, want_b_transposed: bool):
    """How the CPU kernels read the operands: A row-major (M x K), B row-major (K x N), or with
    ``want_b_transposed`` as its transpose (N x K); with ``swap``, the product C^T = op(B)^T op(A)^T, C
    then written along its columns. Returns (m, n, the (rows, cols, batch, stride) of A's and B's
    transposes to pack first or None, strides, (C's row stride, column stride)); :func:`_packed` applies it."""
    stride_a, stride_b, stride_c = strides
    c_strides = (n, 1)
    if swap:
        stride_a, stride_b = stride_b, stride_a
        m, n, trans_a, trans_b = n, m, not trans_b, not trans_a
        c_strides = (1, m)
    pack_a = pack_b = None
    if trans_a and k:  # A is (K, M): its transposes, (M, K) each
        pack_a = (k, m, batch, stride_a)
        stride_a = m * k if stride_a else 0
    if trans_b != want_b_transposed and k:  # B lies as (N, K) or (K, N): the other way, each
        pack_b = ((n, k) if trans_b else (k, n)) + (batch, stride_b)
        stride_b = k * n if stride_b else 0
    return m, n, pack_a, pack_b, (stride_a, stride_b, stride_c), c_strides


def _packed(a, b, swap: bool, pack_a, pack_b):
    """The operands after an :func:`_orientation`'s swap and transposes."""
    if swap:
        a, b = b, a
    if pack_a:
        a = transposed(a, *pack_a)
    if pack_b:
        b = transposed(b, *pack_b)
    return a, b


def _run_panel(c, a, b, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, chosen: GemmPlan, explicit: bool):
    """The panel kernel (CPU runtimes): A row-major (a transposed A packed first), B row-major or read as its
    transpose (``chosen.read_bt``, else packed first); with ``chosen.swap``, C^T = op(B)^T op(A)^T written
    into C along its columns."""
    device, dtype = c.device, c.dtype
    # what a call of this plan and shape launches is worked out once (a small GEMM's host time is its
    # launch's: 60 us of Python a call on these runtimes before, against the runtime's own 10-20)
    key = ("call", id(chosen), device, dtype, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, explicit)
    call = _calls.get(key)
    if call is None or call[0] is not chosen:
        call = _panel_call(chosen, device, dtype, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, explicit)
        if len(_calls) > CALLS:  # a process sweeping many shapes: forget the old calls, keep the builds
            _calls.clear()
        _calls[key] = call
    _, launch, swap, pack_a, pack_b, scratch = call
    a, b = _packed(a, b, swap, pack_a, pack_b)
    if scratch:
        return launch(c, a, b, xgpu.empty((scratch,), np.float32, device))
    return launch(c, a, b)


def _panel_call(chosen: GemmPlan, device, dtype, m, n, k, batch, alpha, beta, trans_a, trans_b, strides,
                explicit: bool) -> tuple:
    """What :func:`_run_panel` launches for a plan and shape: (the plan, the kernel's launch bound to its
    scalars and sizes (xgpu.Kernel.bind), whether A and B swap roles, the (rows, cols, batch, stride) of the
    transposes of A and B to pack first or None, the float32 scratch's length for float16/bfloat16 or 0)."""
    # B^T (after any swap, whose transposes flip) read as it lies, transposed in the kernel's copy
    read_bt = chosen.read_bt and ((not trans_a) if chosen.swap else trans_b)
    m, n, pack_a, pack_b, (stride_a, stride_b, stride_c), (c_rs, c_cs) = _orientation(
        m, n, k, batch, trans_a, trans_b, strides, chosen.swap, want_b_transposed=read_bt)
    kernel, cfg = _kernel(device, dtype, False, read_bt, chosen.config, explicit=explicit)
    wg = cfg.local_size[0]
    mc = cfg.tm
    scalar = np.float64 if dtype == np.float64 else np.float32
    i32 = np.int32
    scalars = (i32(m), i32(n), i32(k), i32(mc), scalar(alpha), scalar(beta), i32(max(k, 1)), i32(max(k if read_bt else n, 1)),
               i32(c_rs), i32(c_cs), i32(stride_a), i32(stride_b), i32(stride_c))
    sizes = {"global_size": (-(-n // cfg.tn) * wg, -(-m // mc), batch), "local_size": (wg, 1, 1),
             "local_mem": {"Bl": cfg.local_mem_bytes(acc_itemsize(dtype), k)}}
    # float16, bfloat16: K blocks before the last add up in float32 there
    scratch = (batch * m * n if k > cfg.kc else 1) if dtype.itemsize == 2 else 0
    launch = kernel.bind(None, None, None, *scalars, *((None,) if scratch else ()), **sizes)
    return chosen, launch, chosen.swap, pack_a, pack_b, scratch


def dot_defines(dtype: np.dtype, vw: int, cols: int) -> dict[str, Any]:
    return {"dtype": dtype, "vw": vw, "rows": DOT_ROWS[cols], "cols": cols}


def _dot_kernel(device: xgpu.Device, dtype: np.dtype, vw: int, cols: int):
    key = (device, "dot", dtype, vw, cols)
    hit = _kernels.get(key)
    if hit is None:
        program = xgpu.compile(DOT, device, defines=dot_defines(dtype, vw, cols))
        hit = _kernels[key] = (program.kernel("gemm_dot"), vw)
    return hit


def _run_dot(c, a, b, m, n, k, batch, alpha, beta, trans_a, trans_b, strides, chosen: GemmPlan):
    """A product with few columns (after any swap) as dot products along K: A row-major, B read as its
    transpose (n x K rows), transposing it first when it lies untransposed (K x n: a few columns)."""
    device, dtype = c.device, c.dtype
    m, n, pack_a, pack_b, (stride_a, stride_b, stride_c), (c_rs, c_cs) = _orientation(
        m, n, k, batch, trans_a, trans_b, strides, chosen.swap, want_b_transposed=True)
    a, b = _packed(a, b, chosen.swap, pack_a, pack_b)
    cols = 1 if n == 1 else 4
    rows = DOT_ROWS[cols]
    kernel, vw = _dot_kernel(device, dtype, chosen.config.vw, cols)
    scalar = np.float64 if dtype == np.float64 else np.float32
    i32 = np.int32
    return kernel(
        c, a, b, i32(m), i32(n), i32(k), scalar(alpha), scalar(beta), i32(max(k, 1)), i32(max(k, 1)),
        i32(c_rs), i32(c_cs), i32(stride_a), i32(stride_b), i32(stride_c),
        global_size=(min(-(-m // rows), DOT_ITEMS), -(-n // cols), batch), local_size=(1, 1, 1),
    )


def _check_coefficient(name: str, value: Any) -> int | float:
    """``alpha``/``beta`` as an int or a float (ints stay ints: the integer GEMM takes only those): a real
    number, never None, a string or a bool (which would be NaN or silently taken for 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidArgumentError(f"gemm's {name} must be a real number (an int or a float), not {value!r}")
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def gemm(a, b, c=None, *, alpha: float = 1.0, beta: float = 0.0, trans_a: bool = False, trans_b: bool = False,
         config: GemmConfig | None = None, accumulate: str = "float32"):
    """``C = alpha * op(A) @ op(B) + beta * C`` on row-major arrays (BLAS semantics).

    ``op(X)`` is ``X.T`` when ``trans_X``. A is (M, K) ((K, M) transposed), B is (K, N) ((N, K)
    transposed), C is (M, N). With ``c`` given the result is written into it and returned;
    otherwise a new array is returned (``beta`` is then ignored). float32, float64 where the
    device supports it, float16 and bfloat16 (accumulated in float32) are accepted.
    ``accumulate="float16"`` (float16 operands, where ``device.supports("float16", arithmetic=True)``) sums
    the products in half precision instead: faster on GPUs with half-rate or better float16, and less
    accurate (docs/precision.md).
    """
    key = None
    if config is None and accumulate == "float32" and type(a) is Array and type(b) is Array and (
            c is None or type(c) is Array) and type(alpha) in (int, float) and type(beta) in (int, float) \
            and type(trans_a) is bool and type(trans_b) is bool:
        # a call like an earlier one (shapes, dtypes, device, coefficients, flags) passed the same checks:
        # only what depends on the arrays themselves is asked again
        key = (a.device, a.dtype, b.dtype, a.shape, b.shape, None if c is None else (c.dtype, c.shape),
               type(alpha), alpha, type(beta), beta, trans_a, trans_b)
        seen = _seen_calls.get(key)
        if seen is not None and a._whole and b._whole and b.device is a.device and (c is None or (
                c._whole and c.device is a.device and c._block is not a._block and c._block is not b._block)):
            m, n, k = seen
            if c is None:
                c, beta = xgpu.empty((m, n), a.dtype, a.device), 0.0
            _launch(c, a, b, m, n, k, 1, alpha, beta, trans_a, trans_b, (0, 0, 0))
            return c
    alpha, beta = _check_coefficient("alpha", alpha), _check_coefficient("beta", beta)
    a, b = _check_operand("a", a), _check_operand("b", b)
    arrays = [a, b] + ([_check_operand("c", c)] if c is not None else [])
    if not all(x._whole for x in arrays):  # views: transposes become trans flags, other layouts one copy
        (a, ta), (b, tb) = plain_operand(a), plain_operand(b)
        return write_through(c, lambda out: gemm(a, b, out, alpha=alpha, beta=beta, trans_a=trans_a != ta,
                                                 trans_b=trans_b != tb, config=config, accumulate=accumulate))
    if is_integer(a, b):  # int8/uint8: exact int32 through the integer kernel (integer.py)
        if accumulate != "float32":
            raise InvalidArgumentError("int8/uint8 GEMMs sum exactly in int32: leave accumulate='float32'")
        return gemm_int(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    device = same_device(*arrays)
    dtype = _check_dtype(device, *arrays)
    acc16 = check_accumulate(device, dtype, accumulate)
    if acc16 and config is not None and config.panel:
        raise InvalidArgumentError("accumulate='float16' runs the tiled kernel (gemm.mako): pass a config with "
                                   "panel=False, or none")
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"gemm takes 2-D arrays, got a {a.shape} and b {b.shape}; use xgpu.matmul for batches")
    m, n, k = gemm_shape(a.shape, b.shape, trans_a, trans_b)
    if c is None:
        c = xgpu.empty((m, n), dtype, device)
        beta = 0.0
    elif c.shape != (m, n):
        raise ShapeError(f"c has shape {c.shape}, but op(a) @ op(b) is ({m}, {n})")
    if m == 0 or n == 0:
        return c
    if xgpu.shares_memory(c, a) or xgpu.shares_memory(c, b):
        # the kernel reads A and B while it writes C: through a temporary, as numpy does for out= aliasing
        result = c.copy() if beta else xgpu.empty((m, n), dtype, device)
        _launch(result, a, b, m, n, k, 1, alpha, beta, trans_a, trans_b, (0, 0, 0), config, acc16)
        return xgpu.copyto(c, result)
    _launch(c, a, b, m, n, k, 1, alpha, beta, trans_a, trans_b, (0, 0, 0), config, acc16)
    if key is not None and all(x._whole for x in (a, b, c)):
        _remember(key, (m, n, k))
    return c


#: calls that passed every check, by what the checks depended on -> what they worked out (gemm: m, n, k;
#: matmul: matmul_shape's answer)
_seen_calls: dict[tuple, tuple] = {}


def _remember(key: tuple, value: tuple) -> None:
    if len(_seen_calls) > 4096:  # a process sweeping many shapes: forget the old ones
        _seen_calls.clear()
    _seen_calls[key] = value


def matmul(a, b):
    """``a @ b`` as numpy's ``matmul`` does it, for 2-D arrays and batches of them (3-D, a leading batch
    dimension; a batch of 1 broadcasts against the other side's batch)."""
    if type(a) is Array and type(b) is Array:  # a call like an earlier one: see gemm
        key: tuple | None = ("matmul", a.device, a.dtype, b.dtype, a.shape, b.shape)
        seen = _seen_calls.get(key)
        if seen is not None and a._whole and b._whole and b.device is a.device:
            m, n, k, batch, out_shape, strides = seen
            c = xgpu.empty(out_shape, a.dtype, a.device)
            _launch(c, a, b, m, n, k, batch, 1.0, 0.0, False, False, strides)
            return c
    else:
        key = None
    a, b = _check_operand("a", a), _check_operand("b", b)
    if is_integer(a, b):  # int8/uint8: exact int32; the integer kernel reads whole contiguous arrays
        return matmul_int(*(x if x.is_contiguous and not x.offset else x.copy() for x in (a, b)))
    device = same_device(a, b)
    dtype = _check_dtype(device, a, b)
    m, n, k, batch, out_shape, strides = matmul_shape(a.shape, b.shape)
    c = xgpu.empty(out_shape, dtype, device)
    if c.size == 0:
        return c
    if k == 0:
        return c.set(np.zeros(out_shape, dtype))
    whole = a._whole and b._whole
    (a, trans_a), (b, trans_b) = plain_operand(a), plain_operand(b)  # a.T: a trans flag, not a copy
    _launch(c, a, b, m, n, k, batch, 1.0, 0.0, trans_a, trans_b, strides)
    if key is not None and whole and not (trans_a or trans_b):
        _remember(key, (m, n, k, batch, out_shape, strides))
    return c


def _check_tuned_structure(config: dict[str, Any]) -> GemmConfig:
    """A stored variant's fields are a GemmConfig's, and its tiles are whole multiples of its blocks."""
    cfg = GemmConfig(**config)  # an unknown or missing field is a TypeError: the entry is refused
    sizes = (cfg.tm, cfg.tn, cfg.wm, cfg.wn, cfg.tk, cfg.vw, cfg.pw)
    if not all(isinstance(v, int) and 1 <= v <= 4096 for v in sizes) or not 0 <= cfg.kc <= 1 << 16:
        raise ValueError(f"variant {cfg.label} has sizes out of range")
    if cfg.tm % cfg.wm or cfg.tn % (cfg.wn * cfg.pw) or cfg.wn % cfg.vw:
        raise ValueError(f"variant {cfg.label}: the tile ({cfg.tm}x{cfg.tn}) is not a whole multiple of the "
                         f"work-item block ({cfg.wm}x{cfg.wn}, vectors of {cfg.vw}, {cfg.pw} panel(s) each)")
    return cfg


def _check_tuned(device: xgpu.Device, dtype: np.dtype, config: dict[str, Any]) -> None:
    """Before a stored GEMM variant is used (once per process): its structure, then a small odd-shaped product
    computed with it against the default variant."""
    cfg = adapt(_check_tuned_structure(config), np.dtype(dtype).itemsize, False)
    rng = np.random.default_rng(14)
    m, n, k = 37, 29, 23
    a = xgpu.asarray(rng.uniform(-1, 1, (m, k)).astype(dtype), device)
    b = xgpu.asarray(rng.uniform(-1, 1, (k, n)).astype(dtype), device)
    got = gemm(a, b, config=cfg).get().astype(np.float64)
    want = gemm(a, b, config=config_for(device, np.dtype(dtype))).get().astype(np.float64)
    tol = {2: 1e-2, 4: 1e-5, 8: 1e-12}[np.dtype(dtype).itemsize] * k
    if not np.all(np.isfinite(got)) or np.max(np.abs(got - want)) > tol * max(1.0, np.max(np.abs(want))):
        raise ValueError(f"variant {cfg.label} disagrees with the default on a {m}x{n}x{k} product")


def _register_checks() -> None:
    from xgpu.tuning import register_check

    register_check("gemm", _check_tuned)
    # conv2d's implicit GEMM stores GemmConfig variants too: their structure is checked the same way
    register_check("conv2d", lambda device, dtype, config: _check_tuned_structure(config))


_register_checks()
