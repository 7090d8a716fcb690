"""The GEMM's per-call planner: from the device class's variant (tuning.py), the shape and the layout,
what one call runs. Pure functions of their arguments (no device needed), so plans are tested alone.

- A transposed operand is packed first (one O(rows x cols) transpose, ``pack.mako``) on the variants that
  read global memory directly (CPU runtimes): read in place its loads are strided, which costs those
  runtimes their vector loads (10-15x on ``x @ W.T``). The panel variant (CPU runtimes) reads a transposed
  B as it lies, its copy into local memory transposing it (``x @ W.T`` as fast as ``x @ W``).
  Local-memory variants (GPUs) stage both layouts with coalesced reads and read the operands as they lie.
- When that copies fewer elements, ``op(A) @ op(B)`` is computed as ``(op(B)^T op(A)^T)^T``: both
  transposes flip, so ``A^T @ B^T`` with few columns needs no packing at all (C is then written along its
  columns).
- A tile taller or wider than the matrix is halved until it fits, so that a matrix with fewer rows or
  columns than the device class's tile still runs whole tiles on the fast path.
- A problem with too few tiles to keep every compute unit busy gets shorter tiles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .tuning import GemmConfig, adapt

#: the fewest rows a direct variant's tile is cut to (a work-item's block stays whole below this)
MIN_ROWS = 8
#: work-groups per compute unit below which a direct variant's tile is made shorter
GROUPS_PER_UNIT = 4
#: a product with at most this many columns (after any swap) runs as dot products along K when its
#: A operand is row-major: the panel kernel's 16-column panels would be mostly idle
DOT_COLUMNS = 8
#: a panel variant's product with K up to this runs with SMALL_K_PANELS times the panels per work-item
#: (one K block): writing C is then most of its cost, and a work-item walking more columns along each
#: row writes C in longer runs (4096x4096x16: 2-3x faster on both CPU runtimes, 1.3-1.5x at K = 128)
SMALL_K = 128
SMALL_K_PANELS = 4
#: ... when C has at least this many elements (all batches): a smaller product runs faster on the usual
#: panels (a 1x1 convolution's 384 x 196 x 64: 131 -> 123 us on PoCL, 576 x 196 x 96: 313 -> 271)
SMALL_K_AREA = 1 << 18
#: a panel variant's product of B^T reads B^T as it lies (the kernel's copy into local memory transposing
#: it) when it has at most this many row blocks, each of which copies all of B: more, and B is packed once
BT_ROW_BLOCKS = 64


@dataclass(frozen=True)
class GemmPlan:
    """What one GEMM call runs: ``config`` on operands laid out as ``pack_a``/``pack_b`` leave them."""

    config: GemmConfig
    pack_a: bool
    pack_b: bool
    why: str
    #: computed as C^T = op(B)^T op(A)^T (an N x M product whose operands' transposes flip), into scratch
    #: that is then transposed into C; ``config`` and the packing flags are for that product
    swap: bool = False
    #: (panel variants) few columns: dot products along K (``gemm_dot.mako``) instead of panels of C
    dot: bool = False
    #: (panel variants) a transposed B (after any swap) is read as it lies, transposed by the kernel's copy
    #: into local memory (``tb``), instead of packed first
    read_bt: bool = False


def fit_tile(cfg: GemmConfig, m: int, n: int, batch: int = 1, compute_units: int = 1) -> GemmConfig:
    """``cfg`` with its tile cut to the matrix (whole tiles run the fast path) and to enough work-groups."""
    if cfg.local_tiles:
        return cfg
    tm, wm, tn, wn = cfg.tm, cfg.wm, cfg.tn, cfg.wn
    while tm > m and tm // 2 >= MIN_ROWS:
        tm //= 2
    if cfg.contiguous_cols:
        # whole vector blocks: fewer work-items across, the block unchanged (narrower blocks would be
        # new, slow builds for runtimes that compile them for minutes; a narrower matrix takes the
        # clamped path)
        while tn > n and tn > wn:
            tn //= 2
    else:
        # strided columns: the runtime vectorises across dimension 0, keep at least 8 work-items on it
        while tn > n and (tn // 2) // wn >= 8:
            tn //= 2

    def groups() -> int:
        return -(-m // tm) * -(-n // tn) * batch

    while groups() < GROUPS_PER_UNIT * compute_units and tm // 2 >= max(MIN_ROWS, 4 * wm):
        tm //= 2
    return replace(cfg, tm=tm, wm=min(wm, tm), tn=tn, wn=wn)


def gemm_shape(a_shape: tuple[int, ...], b_shape: tuple[int, ...], trans_a: bool, trans_b: bool):
    """(m, n, k) of ``op(a) @ op(b)`` for 2-D operands; a ShapeError when the inner dimensions differ."""
    from xgpu.errors import ShapeError

    m, k = a_shape[::-1] if trans_a else a_shape
    k2, n = b_shape[::-1] if trans_b else b_shape
    if k != k2:
        raise ShapeError(f"inner dimensions differ: op(a) is {m}x{k} and op(b) is {k2}x{n} "
                         f"(trans_a={trans_a}, trans_b={trans_b})")
    return m, n, k


def matmul_shape(a_shape: tuple[int, ...], b_shape: tuple[int, ...]):
    """numpy's ``matmul`` shapes for 2-D arrays and 3-D batches (a batch of 1 broadcasts): (m, n, k, batch,
    the result's shape, the operands' and result's batch strides in elements); a ShapeError otherwise."""
    from xgpu.errors import ShapeError

    if len(a_shape) not in (2, 3) or len(b_shape) not in (2, 3):
        raise ShapeError(f"matmul takes 2-D or 3-D arrays, got a {a_shape} and b {b_shape}")
    if a_shape[-1] != b_shape[-2]:
        raise ShapeError(f"matmul: a {a_shape} and b {b_shape} do not fit: {a_shape[-1]} != {b_shape[-2]}")
    m, k = a_shape[-2:]
    n = b_shape[-1]
    ba = a_shape[0] if len(a_shape) == 3 else 1
    bb = b_shape[0] if len(b_shape) == 3 else 1
    if ba != bb and 1 not in (ba, bb):
        raise ShapeError(f"matmul: batch sizes {ba} and {bb} do not broadcast")
    batch = max(ba, bb)
    out_shape = (batch, m, n) if 3 in (len(a_shape), len(b_shape)) else (m, n)
    strides = (m * k if ba > 1 else 0, k * n if bb > 1 else 0, m * n)
    return m, n, k, batch, out_shape, strides


def fit_panel(cfg: GemmConfig, m: int, n: int, batch: int = 1, compute_units: int = 1) -> GemmConfig:
    """A panel variant with its rows per work-group cut to the matrix (rounded up to whole micro-panels of
    WM rows) and to enough work-groups, and its columns per work-group halved while wider than N (and,
    with several panels per work-item, while there are still too few work-groups)."""
    wm, tn, pw = cfg.wm, cfg.tn, cfg.pw
    while tn > n and tn > cfg.wn:
        if pw > 1:  # the work-item's panels first, the group's work-items after
            pw //= 2
        tn //= 2
    blocks = -(-m // cfg.tm)  # row blocks of at most cfg.tm rows
    wanted = GROUPS_PER_UNIT * compute_units
    while blocks * -(-n // tn) * batch < wanted and -(-m // (blocks + 1)) >= wm:
        blocks += 1
    while blocks * -(-n // tn) * batch < wanted and pw > 1:  # then narrower groups (fewer panels each)
        pw //= 2
        tn //= 2
    # the rows shared out evenly between the blocks, in whole micro-panels (127 rows: 66 + 61, not 96 + 31)
    rows = -(-m // blocks)
    tm = -(-rows // wm) * wm
    return replace(cfg, tm=tm, tn=tn, pw=pw)


def _panel_cost(m: int, n: int, k: int, trans_a: bool, trans_b: bool, blocks: int, swapped: bool,
                rows: int) -> tuple[int, bool]:
    """(elements copied or written along C's columns, as dot products) for a product of m x n (after any
    swap; ``rows``: the variant's rows per work-group): the dot-product kernel for a few columns when A
    lies row-major, the panel kernel otherwise."""
    if n <= DOT_COLUMNS and not trans_a:  # B read as its n x K transpose: copied only when it lies K x n
        return (not trans_b) * n * k + swapped * m * n, True
    # C along its columns: a scalar read and write per element and K block, as dear as a copy through memory
    # of a transposed element (measured on both CPU runtimes: A^T B^T at 2048^3 ran 25% slower swapped, with
    # A packed 1024 x 256 x 1024 10-20% faster); B^T read as it lies costs no more than B (the copy into
    # local memory that every product makes transposes it)
    # local memory transposes it); with a few rows (a matrix-vector product) it is costed as packed, so that
    # the swapped product's dot products (which read B^T's rows) win
    bt_packed = trans_b and (-(-m // rows) > BT_ROW_BLOCKS or m <= DOT_COLUMNS)
    return trans_a * m * k + bt_packed * n * k + swapped * m * n * blocks, False


def small_k_variant(cfg: GemmConfig) -> GemmConfig:
    """The panel variant for products with K of at most SMALL_K: more panels per work-item, K blocks of
    SMALL_K (one build for every such K: the launch sizes local memory by K)."""
    return replace(cfg, tn=cfg.tn * SMALL_K_PANELS, pw=cfg.pw * SMALL_K_PANELS, kc=min(cfg.kc, SMALL_K))


def plan_panel(base: GemmConfig, itemsize: int, m: int, n: int, k: int, batch: int, trans_a: bool,
               trans_b: bool, compute_units: int, source: str) -> GemmPlan:
    """The plan for a panel variant, which reads A and B row-major: a transposed operand is transposed
    first, or the product is computed as C^T = op(B)^T op(A)^T (the kernel writing C along its columns)
    when that copies fewer elements; a product with a few columns runs as dot products along K. Writing
    C along its columns costs scalar stores, once per K block for the panel kernel (weighed as a copied
    element each). A transposed B is read as it lies (``read_bt``)."""
    blocks = max(1, -(-k // max(base.kc, 1)))
    as_is, dot = _panel_cost(m, n, k, trans_a, trans_b, blocks, False, base.tm)
    swapped, dot_swapped = _panel_cost(n, m, k, not trans_b, not trans_a, blocks, True, base.tm)
    swap = swapped < as_is
    if swap:
        m, n, trans_a, trans_b, dot = n, m, not trans_b, not trans_a, dot_swapped
    why = source + (", as C^T = op(B)^T op(A)^T" if swap else "")
    if dot:
        why += f", {n} column(s): dot products along K" + ("" if trans_b else ", B transposed (n x K)")
        return GemmPlan(base, False, not trans_b, why, swap=swap, dot=True)
    small = k <= SMALL_K and m * n * batch >= SMALL_K_AREA
    # base: already fitted to the dtype (tuning.adapt)
    cfg = fit_panel(small_k_variant(base) if small else base, m, n, batch, compute_units)
    if small:
        why += f", K <= {SMALL_K}: {cfg.pw} panels per work-item"
    read_bt = trans_b and -(-m // cfg.tm) <= BT_ROW_BLOCKS
    packed = [x for x, p in (("A", trans_a), ("B", trans_b and not read_bt)) if p]
    if packed:
        why += ", " + " and ".join(packed) + " packed (transposed once)"
    if read_bt:
        why += ", B^T read as it lies"
    if (cfg.tm, cfg.tn) != (base.tm, base.tn):
        why += f", tile fitted to {m}x{n}" + (f" x{batch}" if batch > 1 else "")
    return GemmPlan(cfg, trans_a, trans_b and not read_bt, why, swap=swap, read_bt=read_bt)


def plan_for_shape(base: GemmConfig, itemsize: int, m: int, n: int, k: int, batch: int, trans_a: bool,
                   trans_b: bool, compute_units: int, source: str) -> GemmPlan:
    """The plan for an ``m x n x k`` product (``batch`` of them) from the device class's variant ``base``
    (for untransposed operands), of elements of ``itemsize`` bytes."""
    if base.panel:
        return plan_panel(base, itemsize, m, n, k, batch, trans_a, trans_b, compute_units, source)
    pack = not base.local_tiles
    # elements copied: packing the transposed operands as they are, or computing C^T = op(B)^T op(A)^T,
    # whose operands are transposed where these are not, plus C in and out of scratch
    copies = trans_a * m * k + trans_b * n * k
    swapped = (not trans_b) * n * k + (not trans_a) * m * k + 2 * m * n
    if pack and batch == 1 and copies and swapped < copies:
        p = plan_for_shape(base, itemsize, n, m, k, 1, not trans_b, not trans_a, compute_units, source)
        return GemmPlan(p.config, p.pack_a, p.pack_b, p.why + ", as C^T = op(B)^T op(A)^T", swap=True)
    pack_a, pack_b = trans_a and pack, trans_b and pack
    cfg = adapt(base, itemsize, trans_b and not pack_b)
    cfg = fit_tile(cfg, m, n, batch, compute_units)
    why = source
    if pack_a or pack_b:
        why += ", " + " and ".join(x for x, p in (("A", pack_a), ("B", pack_b)) if p) + " packed (transposed once)"
    if cfg != adapt(base, itemsize, trans_b and not pack_b):
        why += f", tile fitted to {m}x{n}" + (f" x{batch}" if batch > 1 else "")
    return GemmPlan(cfg, pack_a, pack_b, why)
