"""GEMM and matmul: parity with a float64 numpy reference on every device, every variant, odd shapes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import xgpu
from xgpu.errors import DeviceMismatchError, InvalidArgumentError, ShapeError, UnsupportedDtypeError
from xgpu.kernels.gemm import all_variants, config_for, gemm
from xgpu.testing import assert_close

from .conftest import small

DTYPES = [np.float32, np.float64, np.float16, xgpu.bfloat16]


def need(device, dtype):
    if not device.supports(dtype):
        pytest.skip(f"{np.dtype(dtype)} unsupported on {device.id} ({device.name})")


def operands(rng, m, n, k, dtype, trans_a=False, trans_b=False):
    a = rng.uniform(-1, 1, (k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def reference(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out = alpha * ((a64.T if trans_a else a64) @ (b64.T if trans_b else b64))
    if c is not None and beta:
        out += beta * c.astype(np.float64)
    return out


SHAPES = [(1, 1, 1), (7, 7, 7), (1, 127, 3), (127, 1, 129), (127, 127, 127), (33, 65, 17), (1000, 7, 1),
          (7, 1000, 1000), (1023, 129, 31), (300, 200, 700)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_shapes(xgpu_device, m, n, k, dtype, rng):
    need(xgpu_device, dtype)
    if xgpu_device.is_simulator and m * n * k > 70_000:
        pytest.skip("Oclgrind simulates a few MFLOP/s: shapes this large are run on the other devices")
    a, b = operands(rng, m, n, k, dtype)
    c = xgpu.asarray(np.full((m, n), np.nan, dtype), xgpu_device)  # poisoned: beta = 0 must not read it
    out = gemm(xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), c)
    assert out is c
    assert_close(c.get(), reference(a, b), dtype=dtype, terms=k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, True), (True, False), (True, True)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (-0.5, 2.0), (0.0, 1.0)])
def test_gemm_transposes_alpha_beta(xgpu_device, dtype, trans_a, trans_b, alpha, beta, rng):
    need(xgpu_device, dtype)
    m, n, k = (23, 37, 19) if xgpu_device.is_simulator else (131, 67, 301)
    a, b = operands(rng, m, n, k, dtype, trans_a, trans_b)
    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
    c = xgpu.asarray(c0, xgpu_device)
    xgpu.gemm(xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), c, alpha=alpha, beta=beta,
              trans_a=trans_a, trans_b=trans_b)
    assert_close(c.get(), reference(a, b, trans_a, trans_b, alpha, beta, c0), dtype=dtype, terms=k)


VARIANTS = all_variants()


def _picks(device, params) -> bool:
    return config_for(device, params["dtype"], params["trans_b"]) == params["config"]


@pytest.mark.home_devices.with_args(_picks)
@pytest.mark.parametrize("dtype,trans_a,trans_b,config", VARIANTS,
                         ids=[f"{np.dtype(d)}-{'T' if ta else 'N'}{'T' if tb else 'N'}-{c.label}"
                              for d, ta, tb, c in VARIANTS])
def test_every_variant_on_every_device(xgpu_device, dtype, trans_a, trans_b, config, rng):
    """Each variant the library can pick, on a shape with a whole tile, edge tiles and (off the simulator)
    more K than one cache block: every code path of the template runs."""
    need(xgpu_device, dtype)
    tx, ty = config.local_size
    if tx * ty > xgpu_device.max_work_group_size:
        pytest.skip(f"work-group of {tx * ty} exceeds {xgpu_device.id}'s maximum")
    config = _simulated(config, xgpu_device)
    k = 19 if xgpu_device.is_simulator else max(2 * config.kc, 64) + 3
    m, n = config.tm + 3, config.tn + 5
    a, b = operands(rng, m, n, k, dtype, trans_a, trans_b)
    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
    c = xgpu.asarray(c0, xgpu_device)
    try:
        gemm(xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), c, alpha=0.75, beta=-1.5,
             trans_a=trans_a, trans_b=trans_b, config=config)
    except xgpu.errors.LaunchError as exc:
        if "the compiled kernel" not in str(exc):
            raise
        # a work-group larger than the compiled kernel accepts on this device: the library never picks it
        pytest.skip(str(exc))
    assert_close(c.get(), reference(a, b, trans_a, trans_b, 0.75, -1.5, c0), dtype=dtype, terms=k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_k_zero_gives_beta_c(xgpu_device, dtype, rng):
    need(xgpu_device, dtype)
    c0 = rng.uniform(-1, 1, (5, 6)).astype(dtype)
    c = xgpu.asarray(c0, xgpu_device)
    empty_a = xgpu.empty((5, 0), dtype, xgpu_device)
    empty_b = xgpu.empty((0, 6), dtype, xgpu_device)
    xgpu.gemm(empty_a, empty_b, c, beta=3.0)
    assert_close(c.get(), 3.0 * c0.astype(np.float64), dtype=dtype)
    fresh = xgpu.gemm(empty_a, empty_b)
    assert fresh.shape == (5, 6) and not fresh.get().any()


@pytest.mark.parametrize("shape_a,shape_b", [((3, 7, 5), (3, 5, 9)), ((1, 7, 5), (4, 5, 9)), ((4, 7, 5), (1, 5, 9)),
                                             ((4, 7, 5), (5, 9)), ((7, 5), (2, 5, 9)), ((33, 17), (17, 65))])
def test_matmul_batches_and_broadcast(xgpu_device, shape_a, shape_b, rng):
    a = rng.uniform(-1, 1, shape_a).astype(np.float32)
    b = rng.uniform(-1, 1, shape_b).astype(np.float32)
    ga, gb = xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64))
    for result in (xgpu.matmul(ga, gb), ga @ gb, a @ gb, ga @ b):
        assert result.shape == expected.shape and result.device is xgpu_device
        assert_close(result.get(), expected, dtype=np.float32, terms=shape_a[-1])


def test_matmul_empty_and_k_zero(xgpu_device):
    a = xgpu.zeros((0, 3), np.float32, xgpu_device)
    assert xgpu.matmul(a, xgpu.zeros((3, 4), np.float32, xgpu_device)).shape == (0, 4)
    out = xgpu.matmul(xgpu.zeros((2, 3, 0), np.float32, xgpu_device), xgpu.zeros((2, 0, 4), np.float32, xgpu_device))
    assert out.shape == (2, 3, 4) and not out.get().any()


def test_gemm_errors(xgpu_device):
    f32 = lambda *s: xgpu.zeros(s, np.float32, xgpu_device)  # noqa: E731
    with pytest.raises(ShapeError, match="inner dimensions differ"):
        xgpu.gemm(f32(3, 4), f32(5, 6))
    with pytest.raises(ShapeError, match=r"c has shape \(2, 2\)"):
        xgpu.gemm(f32(3, 4), f32(4, 6), f32(2, 2))
    with pytest.raises(ShapeError, match="2-D"):
        xgpu.gemm(f32(2, 3, 4), f32(4, 6))
    with pytest.raises(UnsupportedDtypeError, match="different dtypes"):
        xgpu.gemm(f32(3, 4), xgpu.zeros((4, 2), np.int32, xgpu_device))
    with pytest.raises(UnsupportedDtypeError, match="float32, float64, float16 or bfloat16"):
        xgpu.gemm(xgpu.zeros((3, 4), np.int32, xgpu_device), xgpu.zeros((4, 2), np.int32, xgpu_device))
    with pytest.raises(InvalidArgumentError, match="not an xgpu array"):
        xgpu.gemm(np.zeros((3, 4), np.float32), f32(4, 2))
    with pytest.raises(ShapeError, match="do not fit"):
        xgpu.matmul(f32(3, 4), f32(5, 2))
    with pytest.raises(ShapeError, match="do not broadcast"):
        xgpu.matmul(f32(2, 3, 4), f32(3, 4, 2))
    with pytest.raises(ShapeError, match="2-D or 3-D"):
        xgpu.matmul(f32(4), f32(4, 2))


@pytest.mark.parametrize("alias", ["c-is-a", "c-is-b", "c-is-both", "c-views-a"])
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_gemm_output_aliasing_an_operand(xgpu_device, alias, beta, rng):
    # numpy's rule for out= aliasing: the result is as if the operands were read before c was written
    n = small(xgpu_device, 37, 9)
    a_host, b_host = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    a, b = xgpu.asarray(a_host, xgpu_device), xgpu.asarray(b_host, xgpu_device)
    if alias == "c-is-a":
        c, c_host = a, a_host
    elif alias == "c-is-b":
        c, c_host = b, b_host
    elif alias == "c-is-both":
        b, b_host = a, a_host
        c, c_host = a, a_host
    else:
        c, c_host = a.reshape(n * n).reshape(n, n), a_host
    assert xgpu.shares_memory(c, a) or xgpu.shares_memory(c, b)
    expected = 0.75 * a_host.astype(np.float64) @ b_host.T.astype(np.float64) + beta * c_host.astype(np.float64)
    out = xgpu.gemm(a, b, c, alpha=0.75, beta=beta, trans_b=True)
    assert out is c
    assert_close(c.get(), expected, dtype=np.float32, terms=n, what=f"gemm with {alias}")


def test_copyto_and_shares_memory(xgpu_device):
    x = xgpu.asarray(np.arange(6, dtype=np.float32).reshape(2, 3), xgpu_device)
    y = xgpu.empty((2, 3), np.float32, xgpu_device)
    assert xgpu.shares_memory(x, x.reshape(3, 2)) and not xgpu.shares_memory(x, y)
    assert xgpu.copyto(y, x) is y and (y.get() == x.get()).all()
    with pytest.raises(ShapeError, match="must match"):
        xgpu.copyto(y, x.reshape(3, 2))
    with pytest.raises(InvalidArgumentError, match="two xgpu arrays"):
        xgpu.copyto(y, np.zeros((2, 3), np.float32))


def test_gemm_mixed_devices():
    devs = xgpu.devices()
    if len(devs) < 2:
        pytest.skip("one device only")
    a = xgpu.zeros((2, 2), np.float32, devs[0])
    b = xgpu.zeros((2, 2), np.float32, devs[1])
    with pytest.raises(DeviceMismatchError):
        xgpu.gemm(a, b)


# ---- the planner's paths: packed transposes, tiles fitted to small matrices, batches ----------------

PLANNED = [(1, 1, 1, True, True), (7, 7, 7, False, True), (127, 9, 31, True, False), (1, 127, 3, False, True),
           (33, 65, 17, True, True), (9, 130, 40, False, False), (127, 1000, 129, False, True),
           (1000, 7, 33, True, False), (130, 130, 300, False, True),
           # computed as C^T = op(B)^T op(A)^T: few rows against a long K, and both transposed
           (7, 300, 400, False, True), (20, 30, 200, True, True), (3, 1, 64, True, True)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,trans_a,trans_b", PLANNED)
def test_planned_paths(xgpu_device, m, n, k, trans_a, trans_b, dtype, rng):
    """What the planner picks for the shape and layout (packing, fitted tiles), against float64 numpy,
    with alpha/beta and with a poisoned output."""
    need(xgpu_device, dtype)
    if xgpu_device.is_simulator and m * n * k > 70_000:
        pytest.skip("Oclgrind simulates a few MFLOP/s: shapes this large are run on the other devices")
    a, b = operands(rng, m, n, k, dtype, trans_a, trans_b)
    ga, gb = xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device)
    c = xgpu.asarray(np.full((m, n), np.nan, dtype), xgpu_device)
    gemm(ga, gb, c, trans_a=trans_a, trans_b=trans_b)
    assert_close(c.get(), reference(a, b, trans_a, trans_b), dtype=dtype, terms=k)
    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
    c.set(c0)
    gemm(ga, gb, c, alpha=-0.5, beta=1.5, trans_a=trans_a, trans_b=trans_b)
    assert_close(c.get(), reference(a, b, trans_a, trans_b, -0.5, 1.5, c0), dtype=dtype, terms=k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,m,n,k", [(5, 7, 9, 11), (3, 64, 64, 64), (2, 1, 127, 33)])
def test_batched_small(xgpu_device, batch, m, n, k, dtype, rng):
    need(xgpu_device, dtype)
    if xgpu_device.is_simulator and batch * m * n * k > 70_000:
        pytest.skip("Oclgrind simulates a few MFLOP/s: shapes this large are run on the other devices")
    a = rng.uniform(-1, 1, (batch, m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (batch, k, n)).astype(dtype)
    out = xgpu.matmul(xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device))
    assert_close(out.get(), np.matmul(a.astype(np.float64), b.astype(np.float64)), dtype=dtype, terms=k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch,rows,cols,stride", [(1, 1, 1, 1), (1, 7, 33, 1), (3, 31, 65, 1), (2, 40, 3, 0)])
@pytest.mark.parametrize("blocks", [0, 4], ids=["tiles", "blocks"])
def test_pack_transposes(xgpu_device, batch, rows, cols, stride, dtype, blocks, rng, monkeypatch):
    """The packing kernel alone, in both forms (local-memory tiles; one block per work-item, as CPU
    runtimes get it): bitwise transposes (NaN and infinities pass unchanged), edges, batches."""
    from xgpu.kernels import gemm as gemm_module
    from xgpu.kernels.gemm import transposed

    need(xgpu_device, dtype)
    t, ry = (16 if blocks else 32), (1 if blocks else 8)
    while t * ry > xgpu_device.max_work_group_size and ry > 1:
        ry //= 2
    program = xgpu.compile(gemm_module.PACK, xgpu_device, defines={"dtype": np.dtype(dtype), "t": t, "ry": ry,
                                                                   "blocks": blocks})
    monkeypatch.setitem(gemm_module._kernels, (xgpu_device, "pack", np.dtype(dtype)),
                        (program.kernel("transpose"), (t, ry, blocks)))
    x = rng.uniform(-1, 1, (batch, rows, cols)).astype(dtype)
    x.flat[::7] = np.nan
    x.flat[1::11] = np.inf
    out = transposed(xgpu.asarray(x, xgpu_device), rows, cols, batch, stride * rows * cols).get()
    expected = np.swapaxes(x if stride else x[:1], 1, 2)
    assert out.shape == expected.shape
    assert out.view(f"u{x.itemsize}").tolist() == expected.view(f"u{x.itemsize}").tolist()


def test_plans_for_shape_classes():
    """The planner's choices, device-free: packed transposes on direct variants, operands as they lie on
    local-memory ones, tiles cut to small matrices and to enough work-groups."""
    from xgpu.kernels.gemm.planner import plan_for_shape
    from xgpu.kernels.gemm.tuning import GemmConfig

    direct = GemmConfig(local_tiles=False, tm=128, tn=32, wm=8, wn=2, kc=256)
    vector = GemmConfig(local_tiles=False, tm=128, tn=64, wm=8, wn=32, kc=256, contiguous_cols=True, vw=16)
    tiled = GemmConfig(local_tiles=True, tm=64, tn=64, wm=4, wn=4, tk=16)
    p = plan_for_shape(direct, 4, 1024, 1024, 1024, 1, False, True, 2, "table")
    assert (p.pack_a, p.pack_b, p.config) == (False, True, direct)
    p = plan_for_shape(vector, 4, 1024, 1024, 1024, 1, True, True, 2, "table")
    assert (p.pack_a, p.pack_b, p.config) == (True, True, vector)
    p = plan_for_shape(tiled, 4, 1024, 1024, 1024, 1, True, True, 2, "table")
    assert (p.pack_a, p.pack_b, p.config) == (False, False, tiled)
    p = plan_for_shape(direct, 4, 127, 1000, 1000, 1, False, False, 2, "table")
    assert p.config.tm == 64 and p.config.tm <= 127
    p = plan_for_shape(vector, 4, 64, 40, 64, 64, False, False, 2, "table")
    assert p.config.tm == 64 and p.config.tn == 32 and p.config.wn == 32
    p = plan_for_shape(vector, 4, 64, 20, 64, 1, False, False, 2, "table")
    assert p.config.tn == p.config.wn == 32 and p.config.vw == 16
    p = plan_for_shape(direct, 4, 64, 4096, 4096, 1, False, True, 2, "table")
    assert p.swap and (p.pack_a, p.pack_b) == (False, True)  # packs x (64 x 4096), not W (4096 x 4096)
    p = plan_for_shape(vector, 4, 100, 200, 1000, 1, True, True, 2, "table")
    assert p.swap and not p.pack_a and not p.pack_b
    assert not plan_for_shape(tiled, 4, 64, 4096, 4096, 1, False, True, 2, "table").swap
    for cfg in (direct, vector):
        for m, n, batch in ((1, 1, 1), (7, 1000, 1), (1000, 3, 1), (256, 256, 1), (64, 64, 64)):
            c = plan_for_shape(cfg, 4, m, n, 64, batch, False, False, 2, "table").config
            assert c.tm % c.wm == 0 and c.tn % c.wn == 0 and c.wn % c.vw == 0 and c.tm >= 8


def _simulated(config, device):
    """A CPU runtime's panel variant as run on the simulator, which the library never gives it: the same
    code paths in the simulator's 32 KiB of local memory, over fewer simulated rows."""
    if config.panel and device.is_simulator:
        return replace(config, tm=min(config.tm, 96), kc=min(config.kc, 64, 4096 // config.tn))
    return config


def _cpu_class_bases():
    from xgpu.kernels.gemm.tuning import RULES

    return [base for _kind, _tags, base in RULES if not base.local_tiles]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,trans_a,trans_b", [(7, 9, 5, True, True), (33, 40, 19, False, True),
                                                   (9, 65, 12, True, False), (20, 3, 8, False, False),
                                                   (3, 40, 30, False, True), (9, 10, 40, True, True)])
def test_cpu_class_plans_on_every_device(xgpu_device, m, n, k, trans_a, trans_b, dtype, rng, full_matrix):
    """The plans the planner makes for the CPU runtimes' classes (packed operands, tiles cut to the
    matrix), run step by step on every device: on Oclgrind this checks their memory accesses. The
    default matrix runs, off the checker, only the class the device's own rules pick."""
    from xgpu.kernels.gemm import execute
    from xgpu.kernels.gemm.planner import plan_for_shape
    from xgpu.kernels.gemm.tuning import RULES, adapt, rule_for

    need(xgpu_device, dtype)
    a, b = operands(rng, m, n, k, dtype, trans_a, trans_b)
    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
    bases = _cpu_class_bases()
    if not (full_matrix or xgpu_device.checks_memory):
        bases = [base for base in bases if base == rule_for(xgpu_device, RULES)]
    for base in bases:
        if base.panel:  # the library plans from the variant fitted to the dtype (config_for)
            base = _simulated(adapt(base, np.dtype(dtype).itemsize, False), xgpu_device)
        p = plan_for_shape(base, np.dtype(dtype).itemsize, m, n, k, 1, trans_a, trans_b, 2, "test")
        if p.config.work_group_size > xgpu_device.max_work_group_size:
            continue
        c = xgpu.asarray(c0, xgpu_device)
        execute(p, c, xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), m, n, k, 1, 0.75, -1.5,
                trans_a, trans_b, (0, 0, 0), explicit=True)
        assert_close(c.get(), reference(a, b, trans_a, trans_b, 0.75, -1.5, c0), dtype=dtype, terms=k)


def test_panel_plans():
    """The panel variant (CPU runtimes) reads A row-major and B either way: the planner transposes the
    fewest elements, computing C^T = op(B)^T op(A)^T when that packs less than writing C along its columns
    costs; rows per group fit the matrix in whole micro-panels, and the row count never needs a new build."""
    from xgpu.kernels.gemm.planner import plan_for_shape
    from xgpu.kernels.gemm.tuning import GemmConfig

    panel = GemmConfig(local_tiles=False, panel=True, tm=96, tn=64, wm=6, wn=16, kc=128, vw=8)
    p = plan_for_shape(panel, 4, 1024, 1024, 1024, 1, False, False, 2, "table")
    assert (p.pack_a, p.pack_b, p.swap, p.config) == (False, False, False, panel)
    p = plan_for_shape(panel, 4, 100, 200, 1000, 1, True, True, 2, "table")
    assert not p.swap and p.pack_a and not p.pack_b and p.read_bt  # A packed, B^T read as it lies
    p = plan_for_shape(panel, 4, 1000, 50, 100, 1, True, True, 2, "table")
    assert p.swap and not p.pack_a and not p.pack_b and not p.read_bt  # few columns: both transposes flip
    p = plan_for_shape(panel, 4, 64, 4096, 4096, 1, False, True, 2, "table")
    assert not p.swap and (p.pack_a, p.pack_b, p.read_bt) == (False, False, True)  # x @ W.T: W as it lies
    p = plan_for_shape(panel, 4, 1, 4096, 4096, 1, False, True, 2, "table")
    assert p.swap and p.dot and not p.pack_a and not p.pack_b  # one row: W's rows dotted with x, nothing packed
    p = plan_for_shape(panel, 4, 4096, 3, 4096, 1, False, False, 2, "table")
    assert p.dot and not p.swap and p.pack_b  # W @ x: x (K x 3) transposed to 3 rows
    assert not plan_for_shape(panel, 4, 4096, 9, 4096, 1, False, False, 2, "table").dot
    p = plan_for_shape(panel, 4, 1024, 1024, 1024, 1, False, True, 2, "table")
    assert not p.swap and (p.pack_a, p.pack_b, p.read_bt) == (False, False, True)
    p = plan_for_shape(panel, 4, 1024, 1024, 1024, 1, True, False, 2, "table")
    assert not p.swap and (p.pack_a, p.pack_b) == (True, False)
    for m, n, k, batch in ((1, 1, 1, 1), (7, 1000, 5, 1), (1000, 3, 9, 1), (127, 1000, 1000, 1), (64, 64, 64, 64),
                           (5, 17, 3, 300)):
        p = plan_for_shape(panel, 4, m, n, k, batch, False, False, 2, "table")
        if p.dot:  # a few columns: dot products, no panels
            assert min(m, n) <= 8
            continue
        c = p.config
        assert c.tm % c.wm == 0 and c.wm <= c.tm <= max(panel.tm, c.wm) and c.tn % c.wn == 0 and c.tn >= c.wn
        assert c.compiled() == replace(c, tm=c.wm)
        groups = -(-m // c.tm) * -(-n // c.tn) * batch
        assert groups >= 8 or c.tm == c.wm  # enough work-groups for both cores, or rows cut to one panel


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,batch,trans_a,trans_b", [(13, 37, 29, 1, False, False), (13, 37, 29, 1, True, True),
                                                         (40, 9, 17, 1, False, True), (9, 40, 17, 1, True, False),
                                                         (7, 33, 20, 3, False, False), (6, 16, 0, 1, False, False)])
def test_panel_blocks_on_every_device(xgpu_device, m, n, k, batch, trans_a, trans_b, dtype, rng):
    """A panel variant with K blocks of 8 (several blocks: C, or float16's float32 workspace, accumulates
    between them), a partial last column group and rows past M, on every device (Oclgrind: memory checks)."""
    from xgpu.kernels.gemm import execute
    from xgpu.kernels.gemm.planner import plan_for_shape
    from xgpu.kernels.gemm.tuning import GemmConfig

    need(xgpu_device, dtype)
    base = GemmConfig(local_tiles=False, panel=True, tm=12, tn=32, wm=6, wn=16, kc=8, vw=8)
    if dtype == np.float64:
        base = replace(base, tn=16, wn=8, vw=4)
    p = plan_for_shape(base, np.dtype(dtype).itemsize, m, n, k, batch, trans_a, trans_b, 2, "test")
    a, b = operands(rng, m, n, k, dtype, trans_a, trans_b)
    a = np.stack([a * (i + 1) for i in range(batch)])
    c0 = rng.uniform(-1, 1, (batch, m, n)).astype(dtype)
    for beta, start in ((0.0, np.full_like(c0, np.nan)), (-1.5, c0)):  # beta = 0 never reads C: poisoned
        c = xgpu.asarray(start, xgpu_device)
        strides = (a[0].size if batch > 1 else 0, 0, m * n)  # B broadcast over the batch
        execute(p, c, xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), m, n, k, batch, 0.75, beta,
                trans_a, trans_b, strides, explicit=True)
        for i in range(batch):
            expected = reference(a[i], b, trans_a, trans_b, 0.75, beta, c0[i])
            assert_close(c.get()[i], expected, dtype=dtype, terms=max(k, 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,batch,trans_a,trans_b", [(1, 37, 29, 1, False, True), (7, 40, 17, 1, False, True),
                                                         (37, 1, 29, 1, False, False), (33, 6, 3, 1, False, False),
                                                         (5, 40, 13, 3, False, True), (4, 3, 0, 1, False, True),
                                                         (1, 1030, 9, 1, False, True)])
def test_dot_products_on_every_device(xgpu_device, m, n, k, batch, trans_a, trans_b, dtype, rng):
    """Products with few columns (after the planner's swap) as dot products along K: x @ W.T with a few
    rows, W @ x with a few columns, one row (the matrix-vector form, over more rows than one pass of its
    work-items covers), batches with a broadcast operand, K not a multiple of the vector and K = 0, on
    every device (Oclgrind: memory checks); beta = 0 never reads the NaN-poisoned C."""
    from xgpu.kernels.gemm import execute
    from xgpu.kernels.gemm.planner import plan_for_shape
    from xgpu.kernels.gemm.tuning import GemmConfig

    need(xgpu_device, dtype)
    base = GemmConfig(local_tiles=False, panel=True, tm=12, tn=32, wm=6, wn=16, kc=8, vw=8)
    if dtype == np.float64:
        base = replace(base, tn=16, wn=8, vw=4)
    p = plan_for_shape(base, np.dtype(dtype).itemsize, m, n, k, batch, trans_a, trans_b, 2, "test")
    assert p.dot, p.why
    a, b = operands(rng, m, n, k, dtype, trans_a, trans_b)
    a = np.stack([a * (i + 1) for i in range(batch)])
    c0 = rng.uniform(-1, 1, (batch, m, n)).astype(dtype)
    for beta, start in ((0.0, np.full_like(c0, np.nan)), (-1.5, c0)):
        c = xgpu.asarray(start, xgpu_device)
        strides = (a[0].size if batch > 1 else 0, 0, m * n)
        execute(p, c, xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), m, n, k, batch, 0.75, beta,
                trans_a, trans_b, strides, explicit=True)
        for i in range(batch):
            expected = reference(a[i], b, trans_a, trans_b, 0.75, beta, c0[i])
            assert_close(c.get()[i], expected, dtype=dtype, terms=max(k, 1))


def test_a_call_like_an_earlier_one_is_still_checked(xgpu_device, rng):
    """gemm and matmul remember what the checks of a call worked out, by shapes, dtypes, device and
    coefficients: what depends on the arrays themselves (views, aliasing, another device, a coefficient of
    another type) is still asked on every call, and each answer stays right."""
    m, n, k = 9, 13, 11
    a0 = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b0 = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    a, b = xgpu.asarray(a0, xgpu_device), xgpu.asarray(b0, xgpu_device)
    want = a0.astype(np.float64) @ b0
    for _ in range(2):  # the second call takes the remembered path
        c = xgpu.asarray(np.full((m, n), np.nan, np.float32), xgpu_device)
        assert_close(xgpu.gemm(a, b, c, alpha=1.0, beta=0.0).get(), want, dtype=np.float32, terms=k)
        assert_close(xgpu.gemm(a, b).get(), want, dtype=np.float32, terms=k)
        assert_close(xgpu.matmul(a, b).get(), want, dtype=np.float32, terms=k)
    # a view of the same shape: read through its strides
    big = xgpu.asarray(np.concatenate([a0, a0 * 2], axis=1), xgpu_device)
    assert_close(xgpu.gemm(big[:, k:], b).get(), 2 * want, dtype=np.float32, terms=k)
    assert_close(xgpu.matmul(big[:, k:], b).get(), 2 * want, dtype=np.float32, terms=k)
    # C that is A's memory (a square product): through a temporary, as numpy does
    s0 = rng.uniform(-1, 1, (8, 8)).astype(np.float32)
    s = xgpu.asarray(s0, xgpu_device)
    other = xgpu.asarray(s0, xgpu_device)
    xgpu.gemm(other, other, xgpu.empty((8, 8), np.float32, xgpu_device))
    assert_close(xgpu.gemm(s, s, s).get(), s0.astype(np.float64) @ s0, dtype=np.float32, terms=8)
    with pytest.raises(InvalidArgumentError, match="must be a real number"):
        xgpu.gemm(a, b, c, alpha=True)
    with pytest.raises(ShapeError):
        xgpu.gemm(a, b, xgpu.empty((n, m), np.float32, xgpu_device))


def test_a_sweep_of_many_shapes_forgets_calls_not_builds(rng, monkeypatch):
    """Past CALLS remembered panel launches the oldest are forgotten, never the compiled kernels: a process
    sweeping shapes does not rebuild (or reload) a variant it already has."""
    from xgpu.kernels import gemm as gemm_module

    device = next((d for d in xgpu.devices() if d.type == "cpu" and not d.is_simulator), None)
    if device is None:
        pytest.skip("no CPU runtime here (the panel kernel's calls are remembered there)")
    monkeypatch.setattr(gemm_module, "CALLS", 2)
    monkeypatch.setattr(gemm_module, "_calls", {})
    a, b = operands(rng, 40, 24, 16, np.float32)
    gemm(xgpu.asarray(a, device), xgpu.asarray(b, device)).get()
    builds = set(gemm_module._kernels)
    assert builds, "no build was remembered"
    for m in range(41, 47):  # more shapes than CALLS: the calls are forgotten on the way
        a, b = operands(rng, m, 24, 16, np.float32)
        assert_close(gemm(xgpu.asarray(a, device), xgpu.asarray(b, device)).get(), reference(a, b),
                     dtype=np.float32, terms=16)
    assert len(gemm_module._calls) <= 3
    assert builds <= set(gemm_module._kernels), "a compiled kernel was forgotten with the calls"
