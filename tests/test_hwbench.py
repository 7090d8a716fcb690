"""`xgpu bench device`: figures for every device, simulators excluded with a reason, a roofline chart."""

from __future__ import annotations

import json
import math
import sys

import pytest

import xgpu
from xgpu.errors import InvalidArgumentError
from xgpu.tools import hwbench as _hwbench

from .conftest import run_xgpu


def test_bench_device_all_with_plot(tmp_path):
    chart = tmp_path / "roofline.png"
    proc = run_xgpu("bench", "device", "--all", "--json", "--plot", str(chart))
    rows = json.loads(proc.stdout)
    assert [r["device"] for r in rows] == [d.id for d in xgpu.devices()]
    for row, dev in zip(rows, xgpu.devices()):
        assert row["host"] and row["published"] is None  # no GPU model here: CPUs and simulators
        if dev.is_simulator:
            assert "simulator" in row["excluded"]
            continue
        # every figure was measured (a failing step leaves {"error": ...} in its place); speed itself is
        # for the benchmark to report, not for a test to judge
        figures = ["bandwidth", "float32", "float16", "int8", "latency", "gemm", "conv2d"]
        figures += ["float64"] if dev.fp64 else []
        for key in figures:
            assert "error" not in row[key], (key, row[key])
        assert row["float16"]["gflops"] > 0 and math.isfinite(row["float16"]["gflops"])
        assert row["int8"]["gops"] > 0 and math.isfinite(row["int8"]["gops"])
        assert row["bandwidth"]["method"] in ("copy kernel", "driver copy")
        assert row["float32"]["kernel"] in ("fma_peak", "fma_peak_vec")
        if dev.fp64:
            assert row["float64"]["kernel"] in ("fma_peak", "fma_peak_vec")
        else:
            assert "skipped" in row["float64"]
        fp16 = "cl_khr_fp16" in dev.extra.get("extensions", ())
        assert row["float16"]["arithmetic"] == ("float16" if fp16 else "float32 (float16 storage)")
        assert row["latency"]["launches"] == 200
        assert row["gemm"]["shape"] == "1024x1024x1024 float32"
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    # the report goes straight into `xgpu compare`, beside another machine's
    here, there = tmp_path / "here.json", tmp_path / "there.json"
    here.write_text(proc.stdout)
    there.write_text(json.dumps([{**rows[-1], "host": "other-machine"}]))
    markdown = tmp_path / "compare.md"
    run_xgpu("compare", str(here), str(there), "--markdown", str(markdown))
    lines = markdown.read_text().splitlines()[2:]
    assert len(lines) == len(rows) + 1
    for line, row in zip(lines, rows + rows[-1:]):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == f"{row['device']} {row['name']}"
        if row.get("excluded"):
            assert cells[2:6] == ["excluded"] * 4
        else:
            assert cells[2] == f"{row['float32']['gflops']:.1f}" and cells[4] == f"{row['int8']['gops']:.1f}"
        assert cells[6].startswith("no published figures")
    assert lines[-1].split("|")[2].strip() == "other-machine"


@pytest.mark.parametrize("which", ["float16", "int8"])
def test_float16_and_int8_ceilings(xgpu_device, which):
    """The kernels compute the right values (checked inside, against float64 and exactly) on every device,
    simulators included; the figure is positive and finite where timings mean something (simulators are
    excluded from timing by `xgpu bench device`, as here: their event times say nothing about hardware)."""
    measure = _hwbench.measure_float16 if which == "float16" else _hwbench.measure_int8
    result = measure(xgpu_device, work_items=64 if xgpu_device.is_simulator else 4096, target_s=0.002)
    figure = result["gflops" if which == "float16" else "gops"]
    if not xgpu_device.is_simulator:
        assert figure > 0 and math.isfinite(figure)
    extensions = xgpu_device.extra.get("extensions", ())
    if which == "float16":
        assert result["arithmetic"] == ("float16" if "cl_khr_fp16" in extensions else "float32 (float16 storage)")
    else:
        # the builtin wherever the device lists the extension and compiles OpenCL C 3.0 (Intel's CPU runtime here)
        assert (result["method"] == "cl_khr_integer_dot_product") == _hwbench.integer_dot_product(xgpu_device)


def test_int8_reference_is_the_dot_product_of_bytes():
    import numpy as np

    x = np.array([0x01020304, -1, 0x7F80FF00], np.int32)
    # bytes lowest first: (4, 3, 2, 1), (-1, -1, -1, -1), (0, -1, -128, 127); w = (-1, 2, -3, 3)
    assert _hwbench.dot4_reference(x, _hwbench.INT8_W, 5).tolist() == [5 + (-4 + 6 - 6 + 3), 5 + (1 - 2 + 3 - 3),
                                                                       5 + (0 - 2 + 384 + 381)]


def test_table_names_what_was_excluded_and_why():
    sims = [d for d in xgpu.devices() if d.is_simulator]
    if not sims:
        pytest.skip("no simulator here")
    out = run_xgpu("bench", "device", "--device", sims[0].id).stdout
    assert "excluded from timing: a simulator" in out


def test_peaks_from_driver_figures():
    from xgpu.backends.cuda._runtime import peak_figures

    a100 = peak_figures((8, 0), 108, 1410000, 1215000, 5120)  # NVIDIA's figures: 19.5 TF/s, 9.7, 1555 GB/s
    assert a100["peak_gflops_float32"] == pytest.approx(19492, rel=1e-3)
    assert a100["peak_gflops_float64"] == pytest.approx(9746, rel=1e-3)
    assert a100["peak_gbps"] == pytest.approx(1555.2, rel=1e-3)
    row = {"bandwidth": {"gbps": 10.0, "fraction_of_peak": 0.5}}
    assert _hwbench.cell(row, "bandwidth", "gbps", ".1f") == "10.0 (50% of peak)"


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(InvalidArgumentError, match=r"pip install 'xgpu\[plot\]'"):
        _hwbench.roofline([], str(tmp_path / "x.png"))


def test_unwritable_plot_is_refused_before_measuring(tmp_path):
    target = tmp_path / "no-such-folder" / "roofline.png"
    proc = run_xgpu("bench", "device", "--all", "--plot", str(target), check=False)
    assert proc.returncode == 1 and f"cannot write {target}" in proc.stderr and "Traceback" not in proc.stderr
