"""`xgpu bench device`: figures for every device, simulators excluded with a reason, a roofline chart."""

from __future__ import annotations

import json
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
        if dev.is_simulator:
            assert "simulator" in row["excluded"]
            continue
        # every figure was measured (a failing step leaves {"error": ...} in its place); speed itself is
        # for the benchmark to report, not for a test to judge
        figures = ["bandwidth", "float32", "latency", "gemm", "conv2d"] + (["float64"] if dev.fp64 else [])
        for key in figures:
            assert "error" not in row[key], (key, row[key])
        assert row["bandwidth"]["method"] in ("copy kernel", "driver copy")
        assert row["float32"]["kernel"] in ("fma_peak", "fma_peak_vec")
        if dev.fp64:
            assert row["float64"]["kernel"] in ("fma_peak", "fma_peak_vec")
        else:
            assert "skipped" in row["float64"]
        assert "skipped" in row["float16"]
        assert row["latency"]["launches"] == 200
        assert row["gemm"]["shape"] == "1024x1024x1024 float32"
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


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
