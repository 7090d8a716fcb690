"""Every row of the bad-input table in docs/errors.md, on every device."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import xgpu
from xgpu import errors
from xgpu._plugins import broken_plugins
from xgpu.plugin import PluginWarning

from .conftest import ROOT

TEMPLATES = Path(__file__).with_name("templates")


def documented_rows():
    text = (ROOT / "docs" / "errors.md").read_text()
    return [row for row in re.findall(r"^\| ([a-z0-9-]+) \|", text, flags=re.M) if row != "id"]


def row_unknown_device(dev):
    with pytest.raises(errors.DeviceNotFoundError, match="Devices there are"):
        xgpu.get_device("nonexistent-device-xyz")


def row_missing_backend(dev):
    with pytest.raises(errors.BackendUnavailableError, match="no backend named 'metal'"):
        xgpu.render("KERNEL void k(GLOBAL_MEM float* y) { }", "metal")


def row_unavailable_backend(dev):
    down = [s for s in xgpu.list_backends().values() if not s.available]
    if not down:
        pytest.skip("every backend is available here")
    with pytest.raises(errors.BackendUnavailableError, match=re.escape(down[0].reason[:20])):
        xgpu.get_device(down[0].name)


def row_wrong_dtype(dev):
    with pytest.raises(errors.UnsupportedDtypeError):
        xgpu.asarray(np.array(["a"]), dev)
    with pytest.raises(errors.UnsupportedDtypeError, match="int32"):
        xgpu.gemm(xgpu.zeros((2, 2), np.int32, dev), xgpu.zeros((2, 2), np.int32, dev))


def row_unsupported_dtype_on_device(dev, monkeypatch):
    a = xgpu.zeros((2, 2), np.float64, dev)
    # every device here has fp64: take it away, as a device without it would report
    monkeypatch.setattr(dev, "fp64", False)
    with pytest.raises(errors.UnsupportedDtypeError, match="does not support float64"):
        xgpu.gemm(a, a)


def row_shape_mismatch(dev):
    with pytest.raises(errors.ShapeError, match=r"3x4.*5x6"):
        xgpu.gemm(xgpu.zeros((3, 4), np.float32, dev), xgpu.zeros((5, 6), np.float32, dev))


def row_bad_shape(dev):
    with pytest.raises(errors.ShapeError):
        xgpu.empty((2, -3), np.float32, dev)


def row_mixed_devices(dev):
    other = [d for d in xgpu.devices() if d is not dev]
    if not other:
        pytest.skip("one device only")
    with pytest.raises(errors.DeviceMismatchError, match="different devices"):
        xgpu.matmul(xgpu.zeros((2, 2), np.float32, dev), xgpu.zeros((2, 2), np.float32, other[0]))


def row_non_contiguous(dev):
    host = np.arange(30, dtype=np.float32).reshape(5, 6)[:, ::2].T
    out = xgpu.matmul(xgpu.asarray(host, dev), xgpu.asarray(np.eye(5, dtype=np.float32), dev))
    np.testing.assert_allclose(out.get(), host, rtol=1e-6)


def row_bad_index(dev):
    a = xgpu.zeros((3, 4), np.float32, dev)
    with pytest.raises(errors.InvalidIndexError, match="out of bounds"):
        a[0, 4]
    with pytest.raises(errors.InvalidIndexError, match="not a basic index"):
        a[[0, 2]]


def row_zero_size(dev):
    assert xgpu.gemm(xgpu.zeros((0, 3), np.float32, dev), xgpu.zeros((3, 4), np.float32, dev)).shape == (0, 4)
    c = xgpu.asarray(np.ones((2, 2), np.float32), dev)
    xgpu.gemm(xgpu.zeros((2, 0), np.float32, dev), xgpu.zeros((0, 2), np.float32, dev), c, beta=2.0)
    assert c.get().tolist() == [[2.0, 2.0], [2.0, 2.0]]


def row_index_overflow(dev):
    # arrays and launches past 2**31-1 get a 64-bit index_t build (docs/templates.md); an integer argument
    # that its parameter type cannot hold is refused, naming it
    program = xgpu.compile("KERNEL void k(GLOBAL_MEM float* y, const index_t n) { }", dev)
    with pytest.raises(errors.InvalidArgumentError, match="does not fit index_t"):
        program.k(xgpu.zeros(1, np.float32, dev), 2**40, global_size=1)


def row_python_float_argument(dev):
    program = xgpu.compile("KERNEL void k(GLOBAL_MEM float* y, const float a) { y[0] = a; }", dev)
    with pytest.raises(errors.InvalidArgumentError, match=r"\(a\) of 'k' = 0.1 .*np.float32\(0.1\)"):
        program.k(xgpu.zeros(1, np.float32, dev), 0.1, global_size=1)  # not exact in float32: refused


def row_out_of_memory(dev):
    limit = dev.extra.get("max_mem_alloc_bytes", dev.global_mem_bytes)
    n = limit // 16 + 1  # complex128: past the limit in bytes, within index_t in elements
    if n > 2**31 - 1:
        pytest.skip(f"{dev.id} allows buffers as large as index_t can address")
    with pytest.raises(errors.OutOfMemoryError, match=f"{dev.id}: cannot allocate {n * 16} bytes"):
        xgpu.empty(n, np.complex128, dev)


def row_work_group_too_large(dev, monkeypatch):
    program = xgpu.compile("KERNEL void k(GLOBAL_MEM float* y) { }", dev)
    with pytest.raises(errors.LaunchError, match="larger than kernel 'k' allows"):
        program.k(xgpu.zeros(1, np.float32, dev), global_size=10**6, local_size=10**6)
    # where the library picks sizes, it shrinks the tile to what the device allows, and stays right
    from xgpu.kernels import gemm as gemm_kernel

    monkeypatch.setattr(dev, "max_work_group_size", 16)
    monkeypatch.setattr(gemm_kernel, "_kernels", {})
    monkeypatch.setattr(gemm_kernel, "_calls", {})
    a = np.random.default_rng(0).uniform(-1, 1, (37, 29)).astype(np.float32)
    out = xgpu.gemm(xgpu.asarray(a, dev), xgpu.asarray(a.T.copy(), dev))
    np.testing.assert_allclose(out.get(), a.astype(np.float64) @ a.T, rtol=1e-4, atol=1e-4)
    (_, cfg), = [hit for key, hit in gemm_kernel._kernels.items() if not isinstance(key[0], str)]  # the one build
    assert cfg.work_group_size <= 16


def row_render_error(dev):
    with pytest.raises(errors.TemplateError, match=r"<string>.*NameError: 'T' is not defined"):
        xgpu.compile("KERNEL void k(GLOBAL_MEM ${T}* y) { }\n", dev)


def row_compile_error(dev, tmp_path):
    path = tmp_path / "bad.mako"
    path.write_text("KERNEL void k(GLOBAL_MEM float* y)\n{\n    y[0] = nope;\n}\n")
    with pytest.raises(errors.CompileError) as info:
        xgpu.compile(path, dev)
    assert (info.value.filename, info.value.lineno) == (str(path), 3)


def row_out_of_bounds(dev):
    if not dev.checks_memory:
        pytest.skip(f"{dev.id} does not check memory accesses: only Oclgrind reports an out-of-bounds write")
    program = xgpu.compile(TEMPLATES / "planted_oob.mako", dev)
    out = xgpu.empty(10, np.float32, dev)
    with pytest.raises(errors.MemoryCheckError, match=r"Invalid write .* at planted_oob.mako:5") as info:
        program.fill_oob(out, 10, global_size=10)
    assert (Path(info.value.problems[0]["filename"]).name, info.value.problems[0]["lineno"]) == ("planted_oob.mako", 5)


def row_missing_template(dev):
    with pytest.raises(errors.TemplateError, match="not found"):
        xgpu.compile("no/such/kernel.mako", dev)


def row_missing_kernel(dev):
    program = xgpu.compile("KERNEL void k(GLOBAL_MEM float* y) { }", dev)
    with pytest.raises(errors.InvalidArgumentError, match="no kernel named 'nope'"):
        program.kernel("nope")


def row_duplicate_backend(dev):
    from .test_plugins import HostBackend

    class Impostor(HostBackend):
        name = "opencl"

    class Plugin:
        @xgpu.hookimpl
        def xgpu_register_backends(self, register):
            register.add_backend(Impostor())

    name = xgpu.register_plugin(Plugin(), name="impostor")
    try:
        with pytest.warns(PluginWarning,
                          match="two plugins register a backend named 'opencl'.*XGPU_DISABLE_PLUGINS="):
            found = xgpu.devices()
        assert dev.id in [d.id for d in found]  # the real backend keeps its devices
        assert "two plugins register" in broken_plugins()["impostor"]
    finally:
        xgpu.unregister_plugin(name)
    assert "impostor" not in broken_plugins()


# ---- rows added with the hardening of issue 14 (tests/test_hardening.py tries each class harder)


def row_kernel_arguments(dev):
    program = xgpu.compile("KERNEL void k(GLOBAL_MEM float* y, const float a, const index_t n) { y[0] = a; }", dev)
    y = xgpu.zeros(1, np.float32, dev)
    with pytest.raises(errors.InvalidArgumentError, match=r"takes 3 argument\(s\).*got 2"):
        program.k(y, np.float32(1), global_size=1)
    with pytest.raises(errors.InvalidArgumentError, match=r"\(n\).*does not fit"):
        program.k(y, np.float32(1), np.int64(2**40), global_size=1)
    with pytest.raises(errors.UnsupportedDtypeError, match=r"\(y\).*int32"):
        program.k(xgpu.zeros(1, np.int32, dev), np.float32(1), 1, global_size=1)
    program.k(y, 2, 1, global_size=1)  # an exact int for a float: converted
    assert y.get().tolist() == [2.0]


def row_bad_sizes(dev):
    program = xgpu.compile("KERNEL void k(GLOBAL_MEM float* y) { }", dev)
    with pytest.raises(errors.InvalidArgumentError, match="global_size must be an int"):
        program.k(xgpu.zeros(1, np.float32, dev), global_size="100")
    for shape in ((2.5, 3), "12"):
        with pytest.raises(errors.ShapeError):
            xgpu.empty(shape, np.float32, dev)
    with pytest.raises(errors.ShapeError):
        xgpu.zeros(6, np.float32, dev).reshape(None)
    with pytest.raises(errors.ShapeError):
        xgpu.asarray([1, [2, 3]], dev)


def row_big_endian(dev):
    host = np.arange(5, dtype=">f4")
    a = xgpu.asarray(host, dev)
    assert a.dtype == np.float32 and a.dtype.isnative and a.get().tolist() == host.tolist()


def row_bad_build_arguments(dev):
    with pytest.raises(errors.InvalidArgumentError, match="identifiers"):
        xgpu.compile("KERNEL void k(GLOBAL_MEM float* y) { }", dev, defines={1: 2})
    with pytest.raises(errors.InvalidArgumentError, match="list of strings"):
        xgpu.compile("KERNEL void k(GLOBAL_MEM float* y) { }", dev, options="-cl-fast-relaxed-math")
    with pytest.raises(errors.TemplateError, match="not found"):
        xgpu.compile("kernels/nothere", dev)


def row_timeout(dev):
    program = xgpu.compile("KERNEL void k(GLOBAL_MEM float* y) { y[0] = 1.0f; }", dev)
    event = program.k(xgpu.zeros(1, np.float32, dev), global_size=1)
    event.wait(timeout=60)  # ends in time: no error (tests/test_hardening.py runs an endless kernel)
    dev.synchronize(timeout=60)
    assert issubclass(errors.KernelTimeoutError, TimeoutError)
    with pytest.raises(errors.InvalidArgumentError, match="timeout"):
        event.wait(timeout="soon") if not event._done else dev.synchronize(timeout="soon")


def row_bad_setting(dev):
    from xgpu import _paths

    _paths._warned.discard(("XGPU_TEST_SIZE", "lots"))  # one warning per process and value: this row runs per device
    with pytest.warns(_paths.ConfigWarning, match="XGPU_TEST_SIZE='lots'.*using 5 bytes"):
        import os

        os.environ["XGPU_TEST_SIZE"] = "lots"
        try:
            assert _paths.env_bytes("XGPU_TEST_SIZE", 5) == 5
        finally:
            del os.environ["XGPU_TEST_SIZE"]


def row_unusable_cache(dev):
    from xgpu import _cache

    assert "chown" in _cache._fix_hint(ROOT / "binaries", "it is owned by uid 0, not by you (uid 1)")


def row_tuning_store(dev):
    from xgpu import tuning

    bad = {"key": "0" * 32, "kernel": 5, "dtype": "float32", "shape_class": "s", "device": {}, "config": {}}
    assert tuning._entry_problem(bad) and tuning._entry_problem(7)


def row_bad_report(dev):
    from xgpu.tools.parity import REPORT_FORMAT, check_report

    report = {"format": REPORT_FORMAT, "machine": {}, "devices": [{"id": dev.id, "name": dev.name}],
              "results": [{"kernel": "k", "case": "c", "dtype": "float32", "device": "opencl:9:9", "status": "fail"}]}
    with pytest.raises(errors.InvalidArgumentError, match="not in the report's device list"):
        check_report(report)


def row_cli_errors(dev):
    from xgpu.tools import cli

    assert cli.main(["parity", "merge", str(ROOT)]) == 1  # a folder, not a report: one error line


# ---- rows added with the template language of issue 15 (tests/test_language.py tries each harder)


def row_local_memory(dev):
    program = xgpu.compile("KERNEL void k(GLOBAL_MEM float* y) { LOCAL_MEM_DYNAMIC(float, tile); "
                           "tile[LOCAL_ID(0)] = 1.0f; LOCAL_BARRIER; y[GLOBAL_ID(0)] = tile[0]; }", dev)
    y = xgpu.zeros(4, np.float32, dev)
    with pytest.raises(errors.InvalidArgumentError, match=r"launch-sized local arrays 'tile'.*local_mem="):
        program.k(y, global_size=4)
    with pytest.raises(errors.InvalidArgumentError, match="local_mem names 'x'"):
        program.k(y, global_size=4, local_mem={"tile": 16, "x": 4})
    with pytest.raises(errors.LaunchError, match=f"more than the {dev.local_mem_bytes} that {dev.id}"):
        program.k(y, global_size=4, local_mem={"tile": dev.local_mem_bytes + 4})
    with pytest.raises(errors.TemplateError, match="LOCAL_MEM_DYNAMIC outside a KERNEL body"):
        xgpu.compile("DEVICE_FN void f(void) { LOCAL_MEM_DYNAMIC(int, t); }\nKERNEL void k(GLOBAL_MEM int* o) { }", dev)
    program.k(y, global_size=4, local_size=4, local_mem={"tile": 16})
    assert y.get().tolist() == [1.0] * 4


def row_unavailable_atomic(dev):
    text = "KERNEL void k(GLOBAL_MEM int64_t* c) { ATOMIC_ADD(&c[0], (int64_t)1); }"
    if dev.supports("atomic:int64:add"):
        program = xgpu.compile(text, dev)
        c = xgpu.zeros(1, np.int64, dev)
        program.k(c, global_size=8)
        assert c.get().tolist() == [8]
        return
    with pytest.raises(errors.CompileError, match=rf"^ATOMIC_ADD on int64_t at <string>:1 is not available on {dev.id}"):
        xgpu.compile(text, dev)
    with pytest.raises(errors.TemplateError, match=f"requires atomic:int64:add, which {dev.id}"):
        xgpu.compile('${require("atomic:int64:add")}\n' + text, dev)


def row_native_subgroups(dev):
    text = "KERNEL void k(GLOBAL_MEM int* o) { o[GLOBAL_ID(0)] = (int)SUBGROUP_SIZE; }"
    if dev.supports("subgroups") == "native":
        xgpu.compile(text, dev, defines={"subgroups": "native"})
        with pytest.raises(errors.TemplateError, match=f"subgroup_size=3 is not a native subgroup size of {dev.id}"):
            xgpu.compile(text, dev, defines={"subgroup_size": 3})
        return
    with pytest.raises(errors.TemplateError, match=f"needs native subgroups.*which {dev.id}"):
        xgpu.compile(text, dev, defines={"subgroups": "native"})
    with pytest.raises(errors.TemplateError, match=f"requires subgroups, which {dev.id}"):
        xgpu.compile('${require("subgroups")}\n' + text, dev)


ROWS = {name[4:].replace("_", "-"): func for name, func in globals().items() if name.startswith("row_")}


def test_every_documented_row_has_a_check():
    assert sorted(documented_rows()) == sorted(ROWS)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_row(row, xgpu_device, tmp_path, monkeypatch):
    check = ROWS[row]
    extra = {"tmp_path": tmp_path, "monkeypatch": monkeypatch}
    names = check.__code__.co_varnames[1:check.__code__.co_argcount]
    check(xgpu_device, *(extra[n] for n in names))
