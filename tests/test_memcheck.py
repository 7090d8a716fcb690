"""Oclgrind as a memory and race checker: planted bugs are caught and named by template line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xgpu
from xgpu import errors

from .conftest import run_xgpu

PLANTED = Path(__file__).with_name("templates") / "planted_oob.mako"


def test_planted_out_of_bounds_write_is_caught_with_its_template_line(checker):
    program = xgpu.compile(PLANTED, checker)
    out = xgpu.empty(10, np.float32, checker)
    with pytest.raises(errors.MemoryCheckError) as info:
        program.fill_oob(out, 10, global_size=10)
    [problem] = info.value.problems
    assert problem["kind"].startswith("Invalid write of size 4 at global memory")
    assert (Path(problem["filename"]).name, problem["lineno"]) == ("planted_oob.mako", 5)
    assert problem["source_line"].startswith("out[i + 1] = (float)i;")
    assert problem["kernel"] == "fill_oob" and problem["count"] == 1
    message = str(info.value)
    assert "planted_oob.mako:5" in message and "fill_oob" in message and checker.id in message


FRESH_LISTS = f"""
import numpy as np, xgpu
from xgpu import _devices, errors

def caught(dev):
    program = xgpu.compile({str(PLANTED)!r}, dev)
    try:
        program.fill_oob(xgpu.empty(10, np.float32, dev), 10, global_size=10)
    except errors.MemoryCheckError as exc:
        return [(p["kind"][:40], p["lineno"]) for p in exc.problems]
    return []

first = next(d for d in xgpu.devices() if d.checks_memory)
for _ in range(3):
    print("FIRST", caught(first))
# the device list read again: a second context over the simulator while the first one lives
_devices.reset()
second = next(d for d in xgpu.devices() if d.checks_memory)
assert second is not first
for dev in (second, first, second, first):
    print("AFTER", caught(dev))
# and a context that other code makes with pyopencl (Oclgrind empties OCLGRIND_LOG when it makes one)
import pyopencl as cl
other = cl.Context([p.get_devices()[0] for p in cl.get_platforms() if "oclgrind" in p.name.lower()])
for dev in (first, second):
    print("OTHER", caught(dev))
"""


def test_every_launch_is_reported_when_the_device_list_is_read_again(checker):
    # Oclgrind empties its report file for every context it makes and each context writes at its own
    # offset: with one file for two contexts, a report landed behind where xgpu had read to (lost) or was
    # read from its middle. Each context xgpu makes now has a file of its own, apart from other code's.
    proc = subprocess.run([sys.executable, "-c", FRESH_LISTS], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 9, proc.stdout
    for line in lines:
        assert line.endswith("[('Invalid write of size 4 at global memory', 5)]"), proc.stdout


INSIDE_PRELUDE = """\
KERNEL void atomic_oob(GLOBAL_MEM int* counts, GLOBAL_MEM float* out)
{
    const index_t i = GLOBAL_ID(0);
    out[i] = 1.0f;
    ATOMIC_ADD(&counts[i + 4], 1);
}

KERNEL void two_uses(GLOBAL_MEM int* counts)
{
    ATOMIC_ADD(&counts[0], 1);
    ATOMIC_ADD(&counts[GLOBAL_ID(0) + 9], 1);
}
"""


def test_a_bad_access_inside_a_prelude_word_names_the_template_line_that_used_it(checker):
    program = xgpu.compile(INSIDE_PRELUDE, checker)
    counts, out = xgpu.zeros(4, np.int32, checker), xgpu.zeros(2, np.float32, checker)
    with pytest.raises(errors.MemoryCheckError) as info:
        program.atomic_oob(counts, out, global_size=2, local_size=2)
    assert {(p["filename"], p["lineno"]) for p in info.value.problems} == {("<string>", 5)}
    assert all(p["source_line"] == "ATOMIC_ADD(&counts[i + 4], 1);  (inside ATOMIC_ADD)" for p in info.value.problems)
    assert "unknown line" not in str(info.value)
    with pytest.raises(errors.MemoryCheckError) as info:  # two uses in the kernel: the first named, the other too
        program.two_uses(counts, global_size=1)
    assert "(inside ATOMIC_ADD; or its use at <string>:11)" in str(info.value)
    assert "unknown line" not in str(info.value)


def test_planted_local_memory_race_is_caught(checker):
    program = xgpu.compile(PLANTED, checker)
    out = xgpu.empty(8, np.float32, checker)
    with pytest.raises(errors.MemoryCheckError, match=r"data race .* at planted_oob.mako:11") as info:
        program.local_race(out, 8, global_size=8, local_size=8)
    assert info.value.problems[0]["count"] >= 1


def test_a_clean_kernel_after_a_caught_one_runs_clean(checker):
    program = xgpu.compile(PLANTED, checker)
    out = xgpu.empty(10, np.float32, checker)
    with pytest.raises(errors.MemoryCheckError):
        program.fill_oob(out, 10, global_size=10)
    program.fill_ok(out, 10, global_size=10)  # reports of the earlier launch are not blamed on this one
    np.testing.assert_array_equal(out.get(), np.arange(10, dtype=np.float32))


def test_library_kernels_run_clean_under_the_checker(checker, rng):
    # every other test on this device is checked the same way; this one says so by name
    a = rng.standard_normal((7, 13)).astype(np.float32)
    b = rng.standard_normal((13, 5)).astype(np.float32)
    got = xgpu.gemm(xgpu.asarray(a, checker), xgpu.asarray(b, checker)).get()
    np.testing.assert_allclose(got, a @ b, rtol=1e-5, atol=1e-5)
    x = rng.standard_normal((1, 3, 9, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    assert xgpu.conv2d(xgpu.asarray(x, checker), xgpu.asarray(w, checker), padding=1).shape == (1, 4, 9, 7)


def test_parse_oclgrind_reports():
    from xgpu.backends.opencl import parse_oclgrind_log

    text = (
        "\nInvalid write of size 4 at global memory address 0x1000000000028\n\tKernel: fill_oob\n"
        "\tEntity: Global(9,0,0) Local(9,0,0) Group(0,0,0)\n\t  store float %conv2\n"
        "\tAt line 5 (column 20) of tests/templates/planted_oob.mako:\n\t  #if defined(cl_khr_fp16)\n\n"
        "Write-write data race at local memory address 0x1000000000002\n\tKernel: local_race\n\t\n"
        "\tFirst entity:  Global(1,0,0)\n\tAt line 77 (column 13) of input.cl:\n\t  slot[0] = 1;\n"
    )
    first, second = parse_oclgrind_log(text)
    assert (first.kernel, first.line, first.file) == ("fill_oob", 5, "tests/templates/planted_oob.mako")
    assert "#if defined" not in first.text  # the echoed source line is the compiled file's, not the template's
    assert (second.kernel, second.line, second.file) == ("local_race", 77, None)
    assert second.kind.startswith("Write-write data race")


def test_checks_can_be_switched_off():
    out = run_xgpu("devices", "--json", env={"XGPU_OCLGRIND_CHECKS": "0"}).stdout
    on = run_xgpu("devices", "--json").stdout
    import json

    def oclgrind(text):
        return [d for d in json.loads(text)["devices"] if "oclgrind" in (d["name"] + d["platform"]).lower()]

    if not oclgrind(on):
        pytest.skip("Oclgrind is not installed here")
    assert all(d["checks_memory"] for d in oclgrind(on))
    assert not any(d["checks_memory"] for d in oclgrind(out))
    # uninitialized-value checks build without optimisation; the option is part of the device's identity,
    # so the compile cache never hands such a device an optimised binary
    everything = run_xgpu("devices", "--json", env={"XGPU_OCLGRIND_CHECKS": "all"}).stdout
    assert all(d["extra"]["build_options"] == "-cl-opt-disable" for d in oclgrind(everything))
    assert not any("build_options" in d["extra"] for d in oclgrind(on))


@pytest.mark.parametrize("where", ["missing-folder", "a-folder", "read-only-file"])
def test_an_unwritable_oclgrind_log_never_turns_the_checks_off(tmp_path, where):
    # Oclgrind drops its reports silently when it cannot write OCLGRIND_LOG: xgpu warns and uses its own file
    if where == "missing-folder":
        log = tmp_path / "no" / "such" / "folder.log"
    elif where == "a-folder":
        log = tmp_path / "folder.log"
        log.mkdir()
    else:
        log = tmp_path / "ro.log"
        log.write_text("")
        log.chmod(0o400)
        if os.access(log, os.W_OK):
            pytest.skip("this user can write any file (root): a read-only file cannot be tried")
    code = f"""
import warnings, numpy as np, xgpu
from xgpu import errors
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    dev = next(d for d in xgpu.devices() if d.checks_memory)
print("WARNED:", any("OCLGRIND_LOG" in str(w.message) and "cannot be written" in str(w.message) for w in seen))
program = xgpu.compile({str(PLANTED)!r}, dev)
try:
    program.fill_oob(xgpu.empty(10, np.float32, dev), 10, global_size=10)
    print("CAUGHT: False")
except errors.MemoryCheckError as exc:
    print("CAUGHT:", "planted_oob.mako:5" in str(exc))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OCLGRIND_LOG": str(log)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WARNED: True" in proc.stdout and "CAUGHT: True" in proc.stdout, proc.stdout + proc.stderr[-2000:]
