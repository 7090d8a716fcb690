"""The template language's words, run on every device against numpy and compiled for CUDA with NVRTC.

Vectors, atomics and 64-bit integers and indices (docs/templates.md): every word runs on every OpenCL
device the suite finds (Oclgrind at small sizes) with exact integer comparison and poisoned outputs, and
the same templates compile for CUDA sm_75/80/90, so a kernel checked on OpenCL is known to build there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xgpu
from xgpu.errors import CompileError, TemplateError, UnsupportedDtypeError
from xgpu.testing import assert_close

from .conftest import small

TEMPLATES = Path(__file__).with_name("templates")
VECTOR = TEMPLATES / "lang_vector.mako"
CUDA_ARCHS = ["sm_75", "sm_80", "sm_90"]
LANES = [("float", np.float32), ("double", np.float64), ("int", np.int32), ("uint", np.uint32)]


def _needs(device, dtype):
    if not device.supports(dtype):
        pytest.skip(f"{np.dtype(dtype)} unsupported on {device.id} ({device.name})")


def _c_div(a, b):
    """C's integer division (toward zero) in numpy's wrapping arithmetic of a's dtype."""
    if a.dtype.kind == "u":
        return a // b
    return (np.sign(a) * (np.abs(a.astype(np.int64)) // b)).astype(a.dtype)


def _vector_reference(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    floating = x.dtype.kind == "f"
    if floating:
        x, y = x.astype(np.float64), y.astype(np.float64)
    x, y = x.reshape(-1, n), y.reshape(-1, n)
    with np.errstate(over="ignore"):
        s = 4 * y - 2 * x + x.dtype.type(1)
        s = (2 * s + x) / 4 if floating else _c_div(s, 2)
        s[:, 1] = s[:, 0] + x[:, n - 1]
        total = s.sum(axis=1, dtype=s.dtype)
        dot = (x * y).sum(axis=1, dtype=s.dtype)
    return np.concatenate([s, total[:, None], dot[:, None]], axis=1).ravel()


@pytest.mark.parametrize("n", [2, 4, 8, 16])
@pytest.mark.parametrize("lane,dtype", LANES, ids=[t for t, _ in LANES])
def test_vector_words_match_numpy(xgpu_device, lane, dtype, n, rng):
    _needs(xgpu_device, dtype)
    groups = small(xgpu_device, 127, 7)
    if np.dtype(dtype).kind == "f":
        x, y = (rng.standard_normal(groups * n).astype(dtype) for _ in range(2))
    else:
        x, y = (rng.integers(-1000 if dtype == np.int32 else 0, 1000, groups * n).astype(dtype) for _ in range(2))
    prog = xgpu.compile(VECTOR, xgpu_device, defines={"T": xgpu.ctype(dtype), "L": xgpu.ctype(dtype, lane=True),
                                                     "N": n})
    out = xgpu.asarray(np.full(groups * (n + 2) + 5, 77 if dtype != np.float32 and dtype != np.float64 else np.nan,
                               dtype), xgpu_device)
    prog.vector_words(out, xgpu.asarray(x, xgpu_device), xgpu.asarray(y, xgpu_device), groups, global_size=groups)
    got = out.get()
    expected = _vector_reference(x, y, n)
    if np.dtype(dtype).kind == "f":
        assert_close(got[: expected.size], expected, dtype=dtype, terms=2 * n, what="vector words")
        assert np.isnan(got[expected.size:]).all(), "the kernel wrote past its output"
    else:
        np.testing.assert_array_equal(got[: expected.size], expected)
        assert (got[expected.size:] == 77).all(), "the kernel wrote past its output"


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_half_vectors(xgpu_device, n, rng):
    groups = small(xgpu_device, 33, 5)
    a = rng.standard_normal(groups * n).astype(np.float16)
    out = xgpu.asarray(np.full(groups * n + 3, np.nan, np.float16), xgpu_device)
    prog = xgpu.compile(VECTOR, xgpu_device, defines={"T": "float", "L": "float", "N": n})
    prog.half_vectors(out, xgpu.asarray(a, xgpu_device), groups, global_size=groups)
    got = out.get()
    np.testing.assert_array_equal(got[: groups * n], a * np.float16(2))
    assert np.isnan(got[groups * n:]).all()


@pytest.mark.parametrize("arch", CUDA_ARCHS)
def test_vector_template_compiles_for_cuda(arch):
    for lane, dtype in LANES:
        for n in (2, 4, 8, 16):
            build = xgpu.compile_offline(VECTOR, "cuda", arch, defines={"T": xgpu.ctype(dtype), "L": lane, "N": n})
            assert build.binary
            assert "warning" not in build.log.lower(), build.log


RAW_LANES = """
KERNEL void k(GLOBAL_MEM float* out)
{
    VEC(float, 4) v = VSPLAT(float, 4, 1);
    out[0] = v${lane};
}
"""


@pytest.mark.parametrize("lane", [".s0", ".sF", ".x", ".xyzw", ".lo", ".even", " . s3"])
@pytest.mark.parametrize("backend", ["opencl", "cuda"])
def test_raw_lane_syntax_is_refused_when_rendering_everywhere(backend, lane):
    with pytest.raises(TemplateError, match=r"VGET\(v, i\)") as info:
        xgpu.render(RAW_LANES.replace("${lane}", lane), backend)
    assert info.value.lineno == 5


def test_raw_lane_check_leaves_comments_strings_and_own_structs_alone():
    text = """
struct point { float x; float y; };
KERNEL void k(GLOBAL_MEM float* out)  // v.s0 in a comment
{
    /* and v.xyzw in
       a block comment */
    struct point p;
    p.x = 1.0f; p.y = 2.5e-3f * 1.f;
    out[0] = p.x + p.y;
}
"""
    for backend in ("opencl", "cuda"):
        xgpu.render(text, backend)


def test_vector_operators_agree_across_backends():
    """`+` on vectors works on every backend (C++ operators for the CUDA structs); comparisons, which
    OpenCL has and the CUDA structs do not, fail on CUDA naming the portable words."""
    text = """
KERNEL void k(GLOBAL_MEM float* out)
{
    const VEC(float, 4) a = VLOAD(4, out, 0), b = VLOAD(4, out, 4);
    VSTORE(4, -a + 2.0f * b / a - b * 0.5f, out, 8);
}
"""
    xgpu.compile_offline(text, "cuda", "sm_80")
    bad = text.replace("VSTORE(4, -a", "if ((a < b)[0]) VSTORE(4, -a")
    with pytest.raises(CompileError, match=r"hint: .*VGET\(v, i\)") as info:
        xgpu.compile_offline(bad, "cuda", "sm_80")
    assert "no operator" in str(info.value)


def test_ctype_names():
    assert xgpu.ctype(np.int64) == "int64_t"
    assert xgpu.ctype(np.uint64) == "uint64_t"
    assert xgpu.ctype(np.bool_) == "bool_t"
    assert xgpu.ctype(np.uint32, lane=True) == "uint"
    with pytest.raises(UnsupportedDtypeError, match="vector lane type"):
        xgpu.ctype(np.int8, lane=True)


# ---------------------------------------------------------------------------------------------------
# Atomics

ATOMIC = TEMPLATES / "lang_atomic.mako"
ATOMIC_TYPES = [np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64]
INT_OPS = ["add", "sub", "min", "max", "and", "or", "xor", "xchg"]
FLOAT_OPS = ["add", "min", "max", "xchg"]
CELLS = 3


def _atomic_values(dtype, n, rng):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(n).astype(dt)
    # values that use the high half of 64-bit words, small enough that n of them add without overflow
    top = 2**40 if dt.itemsize == 8 else 2**20
    low = -top if dt.kind == "i" else 0
    return rng.integers(low, top, n, dtype=np.int64).astype(dt)


def _initial(dtype, ops):
    dt = np.dtype(dtype)
    start = {"add": 5, "sub": 2**22 if dt.kind == "u" else 5, "min": 2**19, "max": 7 if dt.kind == "f" else 1,
             "and": -1, "or": 0, "xor": 3, "xchg": 11}
    row = [start[op] for op in ops] + [0, 0]  # ticket, CAS counter
    return np.array([row] * CELLS, dtype=np.int64 if dt.kind != "f" else np.float64).astype(dt)


def _check_cell(dtype, ops, init, final, vals, olds, what):
    dt = np.dtype(dtype)
    count = len(vals)
    with np.errstate(over="ignore"):
        for k, op in enumerate(ops):
            got, start = final[k], init[k]
            if op == "add" and dt.kind == "f":
                expected = start + vals.astype(np.float64).sum()
                assert_close(np.array([got]), np.array([expected]), dtype=dt, terms=count + 1, what=f"{what} add")
                continue
            if op == "xchg":  # the old values and the final one are the initial one and the values, each once
                seen = np.sort(np.concatenate([olds[:, k], [got]]))
                np.testing.assert_array_equal(seen, np.sort(np.concatenate([vals, [start]])), err_msg=f"{what} xchg")
                continue
            reduce = {"add": np.add, "sub": np.subtract, "min": np.minimum, "max": np.maximum,
                      "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}[op]
            expected = start
            for v in vals:
                expected = reduce(expected, v) if op != "sub" else dt.type(expected - v)
            assert got == dt.type(expected), f"{what} {op}: {got} != {expected}"
    for k in (len(ops), len(ops) + 1):  # ticket and CAS counter: old values 0..count-1, each once
        assert final[k] == count, f"{what} counter {k}: {final[k]} != {count}"
        np.testing.assert_array_equal(np.sort(olds[:, k]), np.arange(count).astype(dt), err_msg=f"{what} olds")


def _run_atomics(device, dtype, atomics, rng):
    ops = INT_OPS if np.dtype(dtype).kind != "f" else FLOAT_OPS
    slots = len(ops) + 2
    n = small(device, 1000, 64)
    local = 64 if not device.is_simulator else 16
    vals = _atomic_values(dtype, n, rng)
    init = _initial(dtype, ops)
    prog = xgpu.compile(ATOMIC, device, defines={"T": xgpu.ctype(dtype), "cells": CELLS, "bins": 7,
                                                 "atomics": atomics})
    poison = np.nan if np.dtype(dtype).kind == "f" else 99
    # global memory: every work-item of every group on the same CELLS cells
    cells = xgpu.asarray(init, device)
    olds = xgpu.asarray(np.full((n, slots), poison, dtype), device)
    prog.atomics_global(cells, olds, xgpu.asarray(vals, device), n, global_size=n, local_size=local)
    final, got_olds = cells.get(), olds.get()
    for c in range(CELLS):
        mine = np.arange(n) % CELLS == c
        _check_cell(dtype, ops, init[c], final[c], vals[mine], got_olds[mine], f"global cell {c}")
    # local memory: one copy of the cells per work-group
    groups = -(-n // local)
    out = xgpu.asarray(np.full((groups, CELLS, slots), poison, dtype), device)
    olds = xgpu.asarray(np.full((n, slots), poison, dtype), device)
    prog.atomics_local(out, olds, xgpu.asarray(vals, device), xgpu.asarray(init, device), n,
                       global_size=n, local_size=local)
    final, got_olds = out.get(), olds.get()
    for g in range(groups):
        for c in range(CELLS):
            ids = np.arange(g * local, min(n, (g + 1) * local))
            mine = ids[ids % CELLS == c]
            if len(mine):
                _check_cell(dtype, ops, init[c], final[g, c], vals[mine], got_olds[mine], f"group {g} local cell {c}")


@pytest.mark.parametrize("atomics", ["auto", "emulated"])
@pytest.mark.parametrize("dtype", ATOMIC_TYPES, ids=[np.dtype(t).name for t in ATOMIC_TYPES])
def test_atomics_under_contention(xgpu_device, dtype, atomics, rng):
    _needs(xgpu_device, dtype)
    name = np.dtype(dtype).name
    if not xgpu_device.supports(f"atomic:{name}:add"):
        pytest.skip(f"no {name} atomics on {xgpu_device.id}")
    _run_atomics(xgpu_device, dtype, atomics, rng)


@pytest.mark.parametrize("dtype", [np.uint32, np.int32, np.uint64, np.int64])
def test_histogram(xgpu_device, dtype, rng):
    if not xgpu_device.supports(f"atomic:{np.dtype(dtype).name}:add"):
        pytest.skip(f"no {np.dtype(dtype).name} atomics on {xgpu_device.id}")
    n = small(xgpu_device, 100_003, 61)
    data = rng.integers(0, 256, n).astype(np.uint8)
    hist = xgpu.asarray(np.zeros(7, dtype), xgpu_device)
    prog = xgpu.compile(ATOMIC, xgpu_device, defines={"T": xgpu.ctype(dtype), "cells": CELLS, "bins": 7})
    groups = 4 if not xgpu_device.is_simulator else 2
    prog.histogram(hist, xgpu.asarray(data, xgpu_device), n, global_size=groups * 32, local_size=32)
    np.testing.assert_array_equal(hist.get(), np.bincount(data % 7, minlength=7).astype(dtype))


def test_an_atomic_the_device_cannot_do_is_a_clear_error(xgpu_device):
    if xgpu_device.supports("atomic:int64:add"):
        pytest.skip(f"{xgpu_device.id} has 64-bit atomics")
    with pytest.raises(CompileError, match=r"ATOMIC_ADD on int64_t: 64-bit integer atomics need "
                                           r"cl_khr_int64_base_atomics") as info:
        xgpu.compile(ATOMIC, xgpu_device, defines={"T": "int64_t", "cells": CELLS, "bins": 7})
    first = str(info.value).splitlines()[0]  # the device, the word and the way out, before the compiler's log
    assert first.startswith(f"ATOMIC_ADD on int64_t at {ATOMIC}:") and f"not available on {xgpu_device.id} (" in first
    assert "device.supports('atomic:int64:add') is False" in first and "require('atomic:int64:add')" in first
    assert info.value.lineno is not None
    # declared by the template, the same refusal comes when rendering
    text = '${require("atomic:int64:add")}\n' + ATOMIC.read_text()
    with pytest.raises(TemplateError, match=rf"requires atomic:int64:add, which {xgpu_device.id} "):
        xgpu.compile(text, xgpu_device, defines={"T": "int64_t", "cells": CELLS, "bins": 7})


def test_atomic_support_queries(xgpu_device):
    assert xgpu_device.supports("atomic:int32:add") == "native"
    assert xgpu_device.supports("atomic:float32:add") in ("native", "emulated")
    assert xgpu_device.supports("atomic:float32:and") is False  # no bitwise atomics on floats anywhere
    assert xgpu_device.supports("atomic:int8:add") is False


@pytest.mark.parametrize("atomics", ["auto", "emulated"])
@pytest.mark.parametrize("arch", CUDA_ARCHS)
def test_atomic_template_compiles_for_cuda(arch, atomics):
    for dtype in ATOMIC_TYPES:
        build = xgpu.compile_offline(ATOMIC, "cuda", arch, defines={"T": xgpu.ctype(dtype), "cells": CELLS, "bins": 7,
                                                                     "atomics": atomics})
        assert build.binary
        assert "warning" not in build.log.lower(), build.log


def test_bad_atomics_define():
    with pytest.raises(TemplateError, match="atomics must be 'auto'"):
        xgpu.render(ATOMIC, "opencl", defines={"T": "int", "cells": 1, "bins": 1, "atomics": "fast"})


# ---------------------------------------------------------------------------------------------------
# 64-bit integers and indices

INDEX64 = TEMPLATES / "lang_index64.mako"


@pytest.mark.parametrize("index_bits", [32, 64])
def test_int64_bool_and_index_bits(xgpu_device, index_bits, rng):
    n = small(xgpu_device, 1000, 61)
    a = rng.integers(-(2**40), 2**40, n, dtype=np.int64)
    flags = rng.integers(0, 2, n).astype(np.bool_)
    base = 2**35 + 17 if index_bits == 64 else np.int64(2**35 + 17)  # a Python int is an index_t only at 64 bits
    out = xgpu.asarray(np.full(n + 5, -7, np.int64), xgpu_device)
    uout = xgpu.asarray(np.full(n, 7, np.uint64), xgpu_device)
    prog = xgpu.compile(INDEX64, xgpu_device, defines={"index_bits": index_bits})
    assert prog.index_bits == index_bits
    prog.wide_ints(out, uout, xgpu.asarray(a, xgpu_device), xgpu.asarray(flags, xgpu_device), np.int64(base), n,
                   global_size=n)
    got = out.get()
    np.testing.assert_array_equal(got[:n], a * 3 + np.int64(base) + flags)
    with np.errstate(over="ignore"):
        expected_u = (a.astype(np.uint64) << np.uint64(32)) + a.astype(np.uint64) * np.uint64(5) + np.arange(n, dtype=np.uint64)
    np.testing.assert_array_equal(uout.get(), expected_u)
    assert list(got[n:n + 3]) == [index_bits // 8, index_bits // 8, 881]
    assert (got[n + 3:] == -7).all()


@pytest.mark.parametrize("arch", CUDA_ARCHS)
@pytest.mark.parametrize("index_bits", [32, 64])
def test_index64_template_compiles_for_cuda(arch, index_bits):
    build = xgpu.compile_offline(INDEX64, "cuda", arch, defines={"index_bits": index_bits})
    assert build.binary
    assert "warning" not in build.log.lower(), build.log


def test_bad_index_bits():
    with pytest.raises(TemplateError, match="index_bits must be 32 or 64"):
        xgpu.render(INDEX64, "opencl", defines={"index_bits": 16})


def test_an_array_past_2_31_elements_gets_a_64_bit_build(xgpu_device):
    """A uint8 array just past 2**31-1 elements on a CPU runtime: the kernel, compiled with the default
    32-bit index_t, is built again with a 64-bit one and reaches the last element."""
    n = 2**31 + 1000
    if xgpu_device.is_simulator or xgpu_device.type != "cpu":
        pytest.skip(f"{xgpu_device.id}: a {n}-byte array is for the CPU runtimes")
    if xgpu_device.extra.get("max_mem_alloc_bytes", 0) < n or xgpu_device.global_mem_bytes < 2 * n:
        pytest.skip(f"{xgpu_device.id} cannot hold one {n}-byte buffer")
    a = xgpu.asarray(np.full(n, 255, np.uint8), xgpu_device)
    prog = xgpu.compile(INDEX64, xgpu_device)
    assert prog.index_bits == 32
    start = n - 1500
    prog.stamp_tail(a, start, n, global_size=1500)
    prog.stamp_tail(a, 0, 10, global_size=10)  # the same 64-bit build, now cached, for small indices too
    host = a.get()
    tail = np.arange(start, n, dtype=np.int64)
    np.testing.assert_array_equal(host[start:], (tail % 251).astype(np.uint8))
    np.testing.assert_array_equal(host[:10], (np.arange(10) % 251).astype(np.uint8))
    assert (host[10:start] == 255).all()
    assert prog._wide().index_bits == 64


# ---------------------------------------------------------------------------------------------------
# Subgroups, the required work-group size, global barriers

SUBGROUP = TEMPLATES / "lang_subgroup.mako"
WG = 64


def _run_subgroup_words(device, dtype, rng, **defines):
    """Run subgroup_words; check every subgroup's lanes, shuffle, broadcast and reductions against numpy;
    return the set of subgroup sizes seen."""
    groups = 2 if device.is_simulator else 5
    n = groups * WG
    x = (rng.integers(-1000, 1000, n) if dtype == np.int32 else rng.standard_normal(n)).astype(dtype)
    prog = xgpu.compile(SUBGROUP, device, defines={"T": xgpu.ctype(dtype), "wg": WG, **defines})
    ids = xgpu.asarray(np.full((n, 4), -1, np.int32), device)
    got = xgpu.asarray(np.full((n, 5), np.nan if dtype == np.float32 else -7, dtype), device)
    prog.subgroup_words(ids, got, xgpu.asarray(x, device), global_size=n)  # the required size is picked
    ids, got = ids.get(), got.get()
    assert (ids[:, 3] == WG).all()
    for g in range(groups):
        seen = 0
        for sg in sorted(set(ids[g * WG:(g + 1) * WG, 2].tolist())):
            members = g * WG + np.flatnonzero(ids[g * WG:(g + 1) * WG, 2] == sg)
            size = ids[members[0], 0]
            lanes = ids[members, 1]
            assert len(members) == size and sorted(lanes) == list(range(size))
            np.testing.assert_array_equal(members - g * WG, seen + lanes)  # linear local id order
            seen += size
            order = np.argsort(lanes)
            v = x[members[order]]  # values by lane
            rows = got[members[order]]
            np.testing.assert_array_equal(rows[:, 0], np.roll(v, -1))
            np.testing.assert_array_equal(rows[:, 1], np.full(size, v[0]))
            if dtype == np.int32:
                np.testing.assert_array_equal(rows[:, 2], np.full(size, v.sum()))
            else:
                assert_close(rows[:, 2], np.full(size, v.astype(np.float64).sum()), dtype=dtype, terms=size)
            np.testing.assert_array_equal(rows[:, 3], np.full(size, v.min()))
            np.testing.assert_array_equal(rows[:, 4], np.full(size, v.max()))
        assert seen == WG
    return set(ids[:, 0].tolist())


@pytest.mark.parametrize("subgroups", ["auto", "emulated"])
@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_subgroup_words(xgpu_device, dtype, subgroups, rng):
    sizes = _run_subgroup_words(xgpu_device, dtype, rng, subgroups=subgroups)
    if subgroups == "auto" and xgpu_device.supports("subgroups") == "native":
        assert sizes <= set(xgpu_device.subgroup_sizes) and sizes != {1}, (sizes, xgpu_device.subgroup_sizes)
    else:  # emulated through local memory, 32 lanes unless asked otherwise
        assert sizes == {xgpu.template.EMULATED_SUBGROUP_SIZE}


def test_subgroup_words_at_every_native_size(xgpu_device, rng):
    if not xgpu_device.subgroup_sizes:
        pytest.skip(f"{xgpu_device.id} ({xgpu_device.name}) has no native subgroups (emulated: tested below)")
    for size in xgpu_device.subgroup_sizes:  # int32 at each size (float32 at the compiler's choice above)
        assert _run_subgroup_words(xgpu_device, np.int32, rng, subgroup_size=size) == {size}, size


@pytest.mark.parametrize("size,expected", [(1, {1}), (8, {8}), (24, {24, 16})])  # 64 = 24 + 24 + 16
def test_subgroup_words_emulated_at_any_size(xgpu_device, size, expected, rng):
    got = _run_subgroup_words(xgpu_device, np.int32, rng, subgroups="emulated", subgroup_size=size)
    assert got == expected


def test_native_subgroup_size_must_be_one_the_device_offers(xgpu_device):
    defines = {"T": "int", "wg": WG, "subgroup_size": 24}
    if xgpu_device.supports("subgroups") == "native":
        with pytest.raises(TemplateError, match=f"subgroup_size=24 is not a native subgroup size of {xgpu_device.id}"
                           r".*offers .*subgroups='emulated'"):
            xgpu.compile(SUBGROUP, xgpu_device, defines=defines)
    else:  # the emulation takes any size
        prog = xgpu.compile(SUBGROUP, xgpu_device, defines=defines)
        assert "xgpu_subgroup_scratch" in prog.source.text
    with pytest.raises(TemplateError, match="subgroup_size must be an int from 1 to 1024"):
        xgpu.compile(SUBGROUP, xgpu_device, defines={**defines, "subgroup_size": 0})


def test_subgroup_words_outside_a_kernel_body_are_refused_when_emulated():
    text = ("DEVICE_FN int total(int x) { return SUBGROUP_REDUCE_ADD(x); }\n"
            "KERNEL void k(GLOBAL_MEM int* out) { out[GLOBAL_ID(0)] = total(1); }\n")
    with pytest.raises(TemplateError, match=r"<string>:1: SUBGROUP_REDUCE_ADD outside a KERNEL body.*"
                                            "subgroups='native'"):
        xgpu.render(text, "opencl", defines={"subgroups": "emulated"})
    assert "__shfl_xor_sync" in xgpu.render(text, "cuda").text  # native there: nothing to refuse


@pytest.mark.parametrize("subgroups", ["auto", "emulated"])
def test_two_level_sum(xgpu_device, subgroups, rng):
    n = small(xgpu_device, 100_003, 61)
    x = rng.integers(-1000, 1000, n).astype(np.int32)
    total = xgpu.asarray(np.zeros(1, np.int32), xgpu_device)
    prog = xgpu.compile(SUBGROUP, xgpu_device, defines={"T": "int", "wg": WG, "subgroups": subgroups})
    prog.two_level_sum(total, xgpu.asarray(x, xgpu_device), n, global_size=n)
    assert int(total.get()[0]) == int(x.sum())


def test_required_work_group_size_is_checked_at_launch(xgpu_device):
    prog = xgpu.compile(SUBGROUP, xgpu_device, defines={"T": "int", "wg": WG})
    assert prog.two_level_sum.required_local_size == (WG, 1, 1)
    total = xgpu.asarray(np.zeros(1, np.int32), xgpu_device)
    x = xgpu.asarray(np.ones(10, np.int32), xgpu_device)
    with pytest.raises(xgpu.errors.LaunchError, match=r"REQD_WORK_GROUP_SIZE\(64, 1, 1\).*local_size=\(64,\)"):
        prog.two_level_sum(total, x, 10, global_size=10, local_size=32)
    with pytest.raises(xgpu.errors.LaunchError, match="REQD_WORK_GROUP_SIZE"):
        prog.two_level_sum(total, x, 10, global_size=(10, 2), local_size=(64, 2))
    prog.two_level_sum(total, x, 10, global_size=10, local_size=WG)
    assert int(total.get()[0]) == 10


def test_native_subgroups_can_be_required(xgpu_device):
    defines = {"T": "int", "wg": WG, "subgroups": "native"}
    if xgpu_device.supports("subgroups") == "native":
        xgpu.compile(SUBGROUP, xgpu_device, defines=defines)
    else:
        with pytest.raises(TemplateError, match=f"needs native subgroups.*{xgpu_device.id}"):
            xgpu.compile(SUBGROUP, xgpu_device, defines=defines)


def test_global_barrier_orders_global_memory(xgpu_device):
    n = small(xgpu_device, 1000, 61)
    local = 32
    padded = -(-n // local) * local
    scratch = xgpu.asarray(np.zeros(padded, np.int32), xgpu_device)
    out = xgpu.asarray(np.full(n, -1, np.int32), xgpu_device)
    prog = xgpu.compile(SUBGROUP, xgpu_device, defines={"T": "int", "wg": WG})
    prog.global_exchange(scratch, out, n, global_size=n, local_size=local)
    i = np.arange(n)
    j = (i // local) * local + (i % local + 1) % local
    np.testing.assert_array_equal(out.get(), (j * 7 + 1).astype(np.int32))


@pytest.mark.parametrize("subgroups", ["auto", "emulated"])
@pytest.mark.parametrize("arch", CUDA_ARCHS)
def test_subgroup_template_compiles_for_cuda(arch, subgroups):
    for T in ("int", "float", "double"):
        build = xgpu.compile_offline(SUBGROUP, "cuda", arch, defines={"T": T, "wg": WG, "subgroups": subgroups})
        assert build.binary
        assert "warning" not in build.log.lower(), build.log


# ---------------------------------------------------------------------------------------------------
# Local memory sized at launch

LOCAL = TEMPLATES / "lang_local.mako"


def test_local_mem_dynamic_is_sized_at_launch(xgpu_device):
    prog = xgpu.compile(LOCAL, xgpu_device)
    kernel = prog.reverse_groups
    assert kernel.local_arrays == ("tile", "marks")
    assert [p.name for p in kernel.signature] == ["out_f", "out_i", "x", "n"]  # the hidden ones left out
    for local in (16, 64):  # one build, two sizes of its local arrays
        n = 3 * local - 5
        x = np.arange(n, dtype=np.float32) * 0.5
        out_f = xgpu.asarray(np.full(n, np.nan, np.float32), xgpu_device)
        out_i = xgpu.asarray(np.full(n, -7, np.int32), xgpu_device)
        kernel(out_f, out_i, xgpu.asarray(x, xgpu_device), n, global_size=n, local_size=local,
               local_mem={"tile": 4 * local, "marks": 4 * local})
        i = np.arange(n)
        mirror = (i // local) * local + local - 1 - i % local
        np.testing.assert_array_equal(out_f.get(), np.where(mirror < n, mirror * 0.5, -1).astype(np.float32))
        np.testing.assert_array_equal(out_i.get(), (mirror * 3 + 1 + (i // local) * 1000000).astype(np.int32))


def test_local_mem_dynamic_arrays_start_aligned(xgpu_device):
    prog = xgpu.compile(LOCAL, xgpu_device)
    out = xgpu.asarray(np.full(128, -1, np.int32), xgpu_device)
    prog.bytes_then_doubles(out, global_size=128, local_size=64, local_mem={"flags": 64, "wide": 8 * 64})
    lane = np.arange(128) % 64
    np.testing.assert_array_equal(out.get(), (64 - lane + lane * 1000).astype(np.int32))


def test_local_mem_mistakes_are_clear_errors(xgpu_device):
    prog = xgpu.compile(LOCAL, xgpu_device)
    out = xgpu.asarray(np.zeros(64, np.int32), xgpu_device)
    k = prog.bytes_then_doubles
    with pytest.raises(xgpu.errors.InvalidArgumentError, match=r"declares launch-sized local arrays 'flags', 'wide'.*"
                                                              r"local_mem=\{'flags': nbytes"):
        k(out, global_size=64, local_size=64)
    with pytest.raises(xgpu.errors.InvalidArgumentError, match=r"local_mem names 'tile'.*arrays: flags, wide"):
        k(out, global_size=64, local_size=64, local_mem={"flags": 64, "wide": 512, "tile": 4})
    with pytest.raises(xgpu.errors.InvalidArgumentError, match=r"local_mem\['wide'\] = 100 bytes is not a whole "
                                                              r"number of int64_t \(8 bytes each\)"):
        k(out, global_size=64, local_size=64, local_mem={"flags": 64, "wide": 100})
    for bad in (0, -8, 8.0, "64", None):
        with pytest.raises(xgpu.errors.InvalidArgumentError, match=r"local_mem\['flags'\] must be a number of bytes"):
            k(out, global_size=64, local_size=64, local_mem={"flags": bad, "wide": 512})
    with pytest.raises(xgpu.errors.InvalidArgumentError, match="local_mem must be a dict"):
        k(out, global_size=64, local_size=64, local_mem=[64, 512])
    too_much = xgpu_device.local_mem_bytes  # with the flags' 16 bytes, one array of it is too much
    with pytest.raises(xgpu.errors.LaunchError, match=rf"needs \d+ bytes of local .*more than the "
                                                      rf"{xgpu_device.local_mem_bytes} that {xgpu_device.id}"):
        k(out, global_size=64, local_size=64, local_mem={"flags": 16, "wide": too_much})
    with pytest.raises(xgpu.errors.InvalidArgumentError, match="does not declare.*none"):
        xgpu.compile(SUBGROUP, xgpu_device, defines={"T": "int", "wg": WG}).global_exchange(
            out, out, 8, global_size=8, local_mem={"tile": 64})


@pytest.mark.parametrize("text,match", [
    ("DEVICE_FN void f(void) { LOCAL_MEM_DYNAMIC(float, t); }\nKERNEL void k(GLOBAL_MEM int* o) { o[0] = 1; }",
     r"<string>:1: LOCAL_MEM_DYNAMIC outside a KERNEL body: declare it in the KERNEL's body.*LOCAL_MEM_ARG"),
    ("KERNEL void k(GLOBAL_MEM int* o)\n{\n    LOCAL_MEM_DYNAMIC(int, t);\n    LOCAL_MEM_DYNAMIC(float, t);\n}",
     r"<string>:4: LOCAL_MEM_DYNAMIC array 't' is declared twice in kernel 'k'"),
])
def test_local_mem_dynamic_misuse_is_refused_when_rendering(text, match):
    for backend in ("opencl", "cuda"):
        with pytest.raises(TemplateError, match=match):
            xgpu.render(text, backend)


@pytest.mark.parametrize("arch", CUDA_ARCHS)
def test_local_mem_template_compiles_for_cuda(arch):
    build = xgpu.compile_offline(LOCAL, "cuda", arch)
    assert build.binary and "warning" not in build.log.lower(), build.log
    text = xgpu.render(LOCAL, "cuda").text
    assert "LOCAL_MEM_DYNAMIC_PARAM(float, tile), LOCAL_MEM_DYNAMIC_PARAM(int, marks))" in text


def test_a_template_can_require_what_it_needs(xgpu_device):
    text = '${require("subgroups", "atomic:int64:add")}\nKERNEL void k(GLOBAL_MEM int* o) { o[0] = 1; }\n'
    missing = [f for f in ("subgroups", "atomic:int64:add") if not xgpu_device.supports(f)]
    if missing:
        with pytest.raises(TemplateError, match=rf"requires {missing[0]}.*which {xgpu_device.id} .*does not have"):
            xgpu.compile(text, xgpu_device)
    else:
        prog = xgpu.compile(text, xgpu_device)
        out = xgpu.asarray(np.zeros(1, np.int32), xgpu_device)
        prog.k(out, global_size=1)
        assert int(out.get()[0]) == 1
    assert "require" not in xgpu.render(text, xgpu_device.backend).text.split("KERNEL")[-1]  # renders to nothing


# ---------------------------------------------------------------------------------------------------
# The worked examples of docs/examples, written only with the documented words

EXAMPLES = TEMPLATES.parent.parent / "docs" / "examples"


@pytest.mark.parametrize("dtype", [np.uint32, np.int64])
def test_example_histogram(xgpu_device, dtype, rng):
    if not xgpu_device.supports(f"atomic:{np.dtype(dtype).name}:add"):
        pytest.skip(f"no {np.dtype(dtype).name} atomics on {xgpu_device.id}")
    n = small(xgpu_device, 100_003, 61)
    data = rng.integers(0, 256, n).astype(np.uint8)
    hist = xgpu.asarray(np.zeros(10, dtype), xgpu_device)
    prog = xgpu.compile(EXAMPLES / "histogram.mako", xgpu_device, defines={"T": xgpu.ctype(dtype), "bins": 10})
    prog.histogram(hist, xgpu.asarray(data, xgpu_device), n, global_size=min(n, 1024))
    np.testing.assert_array_equal(hist.get(), np.bincount(data % 10, minlength=10).astype(dtype))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_example_subgroup_sum(xgpu_device, dtype, rng):
    if not xgpu_device.supports(f"atomic:{np.dtype(dtype).name}:add"):
        pytest.skip(f"no {np.dtype(dtype).name} atomics on {xgpu_device.id}")
    n = small(xgpu_device, 100_003, 61)
    x = rng.integers(-1000, 1000, n).astype(dtype)
    total = xgpu.asarray(np.zeros(1, dtype), xgpu_device)
    prog = xgpu.compile(EXAMPLES / "subgroup_sum.mako", xgpu_device, defines={"T": xgpu.ctype(dtype), "wg": 64})
    prog.subgroup_sum(total, xgpu.asarray(x, xgpu_device), n, global_size=n)
    assert int(total.get()[0]) == int(x.sum())


def _stencil_reference(a: np.ndarray, start: int, count: int) -> np.ndarray:
    n = a.size
    i = np.arange(start, min(start + count, n))
    left, right = np.maximum(i - 1, 0), np.minimum(i + 1, n - 1)
    return (a[left].astype(np.uint16) + 2 * a[i].astype(np.uint16) + a[right]).astype(np.uint16)


@pytest.mark.parametrize("index_bits", [32, 64])
def test_example_stencil_small(xgpu_device, index_bits, rng):
    n = small(xgpu_device, 1000, 61)
    a = rng.integers(0, 256, n).astype(np.uint8)
    out = xgpu.asarray(np.full(n, 65535, np.uint16), xgpu_device)
    prog = xgpu.compile(EXAMPLES / "stencil64.mako", xgpu_device, defines={"index_bits": index_bits})
    prog.stencil3(out, xgpu.asarray(a, xgpu_device), 0, n, n, global_size=n)
    np.testing.assert_array_equal(out.get(), _stencil_reference(a, 0, n))


def test_example_stencil_past_2_31_elements(xgpu_device, rng):
    n = 2**31 + 777
    if xgpu_device.is_simulator or xgpu_device.type != "cpu":
        pytest.skip(f"{xgpu_device.id}: a {n}-byte array is for the CPU runtimes")
    if xgpu_device.extra.get("max_mem_alloc_bytes", 0) < n or xgpu_device.global_mem_bytes < 2 * n:
        pytest.skip(f"{xgpu_device.id} cannot hold one {n}-byte buffer")
    host = np.empty(n, np.uint8)
    host[: 2**20] = rng.integers(0, 256, 2**20)
    host[2**20:] = np.resize(host[: 2**20], n - 2**20)  # cheap filler, not constant
    a = xgpu.asarray(host, xgpu_device)
    count = 3000
    start = n - count + 500  # runs off the end: the last 500 work-items are guarded
    out = xgpu.asarray(np.full(count, 65535, np.uint16), xgpu_device)
    prog = xgpu.compile(EXAMPLES / "stencil64.mako", xgpu_device)
    prog.stencil3(out, a, start, count, n, global_size=count)
    expected = _stencil_reference(host, start, count)
    got = out.get()
    np.testing.assert_array_equal(got[: expected.size], expected)
    assert (got[expected.size:] == 65535).all()



@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_example_fft_butterfly(xgpu_device, dtype, rng):
    if dtype == np.complex128:
        _needs(xgpu_device, np.float64)
    rows, log2n = (2, 5) if xgpu_device.is_simulator else (6, 8)
    n = 1 << log2n
    x = (rng.standard_normal((rows, n)) + 1j * rng.standard_normal((rows, n))).astype(dtype)
    out = xgpu.asarray(np.full((rows, n), np.nan, dtype), xgpu_device)
    prog = xgpu.compile(EXAMPLES / "fft_butterfly.mako", xgpu_device, defines={"C": xgpu.ctype(dtype)})
    prog.fft_rows(out, xgpu.asarray(x, xgpu_device), np.int32(log2n), global_size=rows * n // 2,
                  local_size=n // 2, local_mem={"row": n * np.dtype(dtype).itemsize})
    got, expected = out.get(), np.fft.fft(x.astype(np.complex128), axis=1)
    real = np.float32 if dtype == np.complex64 else np.float64
    assert_close(got.real, expected.real, dtype=real, terms=n)
    assert_close(got.imag, expected.imag, dtype=real, terms=n)

@pytest.mark.parametrize("arch", CUDA_ARCHS)
def test_examples_compile_for_cuda(arch):
    for name, defines in (("histogram.mako", {"T": "unsigned int", "bins": 10}),
                          ("histogram.mako", {"T": "uint64_t", "bins": 10}),
                          ("subgroup_sum.mako", {"T": "int", "wg": 64}),
                          ("fft_butterfly.mako", {"C": "cfloat_t"}),
                          ("fft_butterfly.mako", {"C": "cdouble_t"}),
                          ("stencil64.mako", {"index_bits": 64}), ("stencil64.mako", {})):
        build = xgpu.compile_offline(EXAMPLES / name, "cuda", arch, defines=defines)
        assert build.binary
        assert "warning" not in build.log.lower(), build.log


# ---------------------------------------------------------------------------------------------------
# Complex numbers, integer helpers

COMPLEX = TEMPLATES / "lang_complex.mako"


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_words(xgpu_device, dtype, rng):
    real = np.float32 if dtype == np.complex64 else np.float64
    _needs(xgpu_device, real)
    n = small(xgpu_device, 1000, 61)
    a = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dtype)
    b = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dtype)
    assert xgpu.ctype(dtype) in ("cfloat_t", "cdouble_t")
    prog = xgpu.compile(COMPLEX, xgpu_device, defines={"C": xgpu.ctype(dtype), "T": xgpu.ctype(real)})
    out = xgpu.asarray(np.full((n, 4), np.nan, dtype), xgpu_device)
    mag = xgpu.asarray(np.full(n, np.nan, real), xgpu_device)
    prog.complex_words(out, xgpu.asarray(a, xgpu_device), xgpu.asarray(b, xgpu_device), mag, n, global_size=n)
    got = out.get()
    a64, b64 = a.astype(np.complex128), b.astype(np.complex128)
    for k, expected in enumerate((a64 + b64, a64 * np.conj(b64), np.exp(a64.real * 0.5 + 1j * a64.imag), a64 - b64)):
        for part in (np.real, np.imag):
            assert_close(part(got[:, k]), part(expected), dtype=real, terms=4, what=f"complex word {k}")
    assert_close(mag.get(), np.abs(b64), dtype=real, terms=2, what="CABS")


def test_integer_helpers(xgpu_device, rng):
    n = small(xgpu_device, 1000, 61)
    a = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    out = xgpu.asarray(np.full((n, 4), 7, np.uint32), xgpu_device)
    prog = xgpu.compile(COMPLEX, xgpu_device, defines={"C": "cfloat_t", "T": "float"})
    prog.int_helpers(out, xgpu.asarray(a, xgpu_device), n, global_size=n)
    got = out.get()
    np.testing.assert_array_equal(got[:, 0], [bin(int(v)).count("1") for v in a])
    np.testing.assert_array_equal(got[:, 1], [32 - int(v | 1).bit_length() for v in a])
    np.testing.assert_array_equal(got[:, 2], ((a.astype(np.uint64) * 2654435761) >> 32).astype(np.uint32))
    np.testing.assert_array_equal(got[:, 3], np.abs(a.view(np.int32).astype(np.int64)).astype(np.uint32))


@pytest.mark.parametrize("arch", CUDA_ARCHS)
def test_complex_template_compiles_for_cuda(arch):
    for C, T in (("cfloat_t", "float"), ("cdouble_t", "double")):
        build = xgpu.compile_offline(COMPLEX, "cuda", arch, defines={"C": C, "T": T})
        assert build.binary
        assert "warning" not in build.log.lower(), build.log


def test_library_kernels_refuse_arrays_past_2_31_elements(xgpu_device):
    n = 2**31 + 7
    if xgpu_device.is_simulator or xgpu_device.type != "cpu":
        pytest.skip(f"{xgpu_device.id}: a {n}-byte array is for the CPU runtimes")
    if xgpu_device.extra.get("max_mem_alloc_bytes", 0) < n * 2 or xgpu_device.global_mem_bytes < 2 * n:
        pytest.skip(f"{xgpu_device.id} cannot hold one {2 * n}-byte buffer")
    big = xgpu.empty((1, n), np.float16, xgpu_device)  # no data moves: refused before any launch
    small_b = xgpu.zeros((1, 1), np.float16, xgpu_device)  # refused on a alone, before the shapes are matched
    with pytest.raises(xgpu.errors.ShapeError, match=r"at most 2\*\*31-1"):
        xgpu.gemm(big, small_b)
    with pytest.raises(xgpu.errors.ShapeError, match=r"at most 2\*\*31-1"):
        xgpu.conv2d(big.reshape(1, 1, 1, n), xgpu.zeros((1, 1, 1, 1), np.float16, xgpu_device))
