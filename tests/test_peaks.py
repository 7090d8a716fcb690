"""Published peak figures: the table (xgpu/tools/gpu_peaks.json), matching a device to its row by
identity, `xgpu devices --peaks`, and `xgpu compare` on merged `xgpu bench device --json` reports."""

from __future__ import annotations

import json
import re

import pytest

import xgpu
from xgpu.tools import hwbench
from xgpu.tools.peaks import FIGURES, match, normalise, table

from .conftest import run_xgpu

GB = 10**9
VENDOR_SITES = {"NVIDIA": ("nvidia.com",), "AMD": ("amd.com",), "Intel": ("intel.com",)}


def test_every_row_has_a_vendor_source_and_figures_in_consistent_units():
    rows = table()
    assert len(rows) >= 35
    for r in rows:
        assert r["vendor"] in VENDOR_SITES, r["model"]
        assert r["source"].startswith("https://") and any(
            f"{site}/" in r["source"] for site in VENDOR_SITES[r["vendor"]]), r["model"]
        assert r["names"] and all(isinstance(n, str) and n for n in r["names"]), r["model"]
        for key in FIGURES:
            value = r[key]
            assert value is None or (isinstance(value, (int, float)) and value > 0), (r["model"], key, value)
        ranges = {"boost_clock_mhz": (900, 3500), "memory_gb": (8, 300), "bandwidth_gbps": (250, 10_000),
                  "fp32_tflops": (5, 150), "compute_units": (16, 400)}
        for key, (low, high) in ranges.items():  # units: MHz, GB, GB/s, TF/s; a misplaced unit lands outside
            assert r[key] is None or low <= r[key] <= high, (r["model"], key, r[key])
        # tensor/matrix units are never slower than the vector units; int8 never slower than float16 there
        if r["fp16_tensor_tflops"] and r["fp32_tflops"]:
            assert r["fp16_tensor_tflops"] > r["fp32_tflops"], r["model"]
        if r["fp16_tensor_tflops"] and r["fp16_tflops"]:
            assert r["fp16_tensor_tflops"] >= r["fp16_tflops"], r["model"]
        if r["int8_tops"] and r["fp16_tensor_tflops"]:
            assert r["int8_tops"] >= r["fp16_tensor_tflops"], r["model"]
        if r["fp16_tflops"] and r["fp32_tflops"]:
            assert r["fp16_tflops"] >= r["fp32_tflops"], r["model"]
        for pci in r["pci_ids"]:
            assert re.fullmatch(r"(10de|1002|8086):[0-9a-f]{4}", pci), (r["model"], pci)
    ids = [p for r in rows for p in r["pci_ids"]]
    assert len(ids) == len(set(ids)), "a PCI id listed on two rows cannot identify a model"
    # two rows may share a name only when their memory sizes tell them apart
    by_name: dict[str, list[dict]] = {}
    for r in rows:
        for n in {normalise(n) for n in r["names"]}:
            by_name.setdefault(n, []).append(r)
    for n, shared in by_name.items():
        sizes = [r["memory_gb"] for r in shared]
        assert len(sizes) == len(set(sizes)) and all(sizes), (n, [r["model"] for r in shared])


# device names as drivers report them (CUDA's cuDeviceGetName, OpenCL's CL_DEVICE_NAME, AMD's board name),
# each with the row it must match, or None
DRIVER_NAMES = [
    ("NVIDIA A100-SXM4-40GB", {}, 40, "A100 SXM4 40GB"),
    ("NVIDIA A100-SXM4-80GB", {}, 80, "A100 SXM4 80GB"),
    ("NVIDIA A100-PCIE-40GB", {}, 40, "A100 PCIe 40GB"),
    ("NVIDIA A100 80GB PCIe", {}, 80, "A100 PCIe 80GB"),
    ("NVIDIA RTX A1000", {}, 8, None),  # not an A100
    ("NVIDIA RTX A1000 Laptop GPU", {}, 4, None),
    ("NVIDIA A10", {}, 24, "A10"),
    ("NVIDIA A10G", {}, 24, None),  # AWS's part: not the A10's figures
    ("NVIDIA A100", {}, 40, None),  # which A100? the name alone does not say
    ("Tesla V100-SXM2-16GB", {}, 16, "Tesla V100 SXM2 16GB"),
    ("Tesla V100-PCIE-32GB", {}, 32, "Tesla V100 PCIe 32GB"),
    ("Tesla V100S-PCIE-32GB", {}, 32, None),
    ("Tesla T4", {}, 16, "Tesla T4"),
    ("NVIDIA L4", {}, 24, "L4"),
    ("NVIDIA L40", {}, 48, None),  # not the L40S
    ("NVIDIA L40S", {}, 48, "L40S"),
    ("NVIDIA H100 80GB HBM3", {}, 80, "H100 SXM5 80GB"),
    ("NVIDIA H100 PCIe", {}, 80, "H100 PCIe 80GB"),
    ("NVIDIA H100 NVL", {}, 94, None),
    ("NVIDIA H200", {}, 141, "H200 SXM 141GB"),
    ("NVIDIA H200 NVL", {}, 141, None),
    ("NVIDIA B200", {}, 180, "B200"),
    ("NVIDIA GeForce RTX 2080 Ti", {}, 11, "GeForce RTX 2080 Ti"),
    ("GeForce RTX 2080 Ti", {}, 11, "GeForce RTX 2080 Ti"),  # older drivers: no vendor word
    ("NVIDIA GeForce RTX 2080", {}, 8, None),
    ("NVIDIA GeForce RTX 3090", {}, 24, "GeForce RTX 3090"),
    ("NVIDIA GeForce RTX 3090 Ti", {}, 24, None),
    ("NVIDIA GeForce RTX 4090", {}, 24, "GeForce RTX 4090"),
    ("NVIDIA GeForce RTX 4090 Laptop GPU", {}, 16, None),
    ("NVIDIA GeForce RTX 4090 D", {}, 24, None),
    ("NVIDIA GeForce RTX 5090", {}, 32, "GeForce RTX 5090"),
    ("NVIDIA GeForce RTX 5090 D", {}, 32, None),
    # AMD's OpenCL driver names the architecture; the board name and PCI id say which card it is
    ("gfx90a:sramecc+:xnack-", {"board_name": "AMD Instinct MI210", "vendor_id": 0x1002}, 64, "Instinct MI210"),
    ("gfx90a:sramecc+:xnack-", {"vendor_id": 0x1002, "pci_device_id": 0x740F}, 64, "Instinct MI210"),
    ("gfx942:sramecc+:xnack-", {"board_name": "AMD Instinct MI300X", "vendor_id": 0x1002}, 192, "Instinct MI300X"),
    ("gfx942:sramecc+:xnack-", {"board_name": "AMD Instinct MI300A", "vendor_id": 0x1002}, 128, None),
    ("gfx908:sramecc+:xnack-", {"vendor_id": 0x1002, "pci_device_id": 0x738C}, 32, "Instinct MI100"),
    ("gfx90a:sramecc+:xnack-", {"board_name": "AMD Instinct MI250X / MI250", "vendor_id": 0x1002}, 64, None),
    ("gfx1100", {"board_name": "AMD Radeon RX 7900 XTX", "vendor_id": 0x1002, "pci_device_id": 0x744C}, 24,
     "Radeon RX 7900 XTX"),
    ("gfx1100", {"board_name": "AMD Radeon RX 7900 XT", "vendor_id": 0x1002, "pci_device_id": 0x744C}, 20,
     "Radeon RX 7900 XT"),
    ("gfx1100", {"board_name": "AMD Radeon RX 7900 GRE", "vendor_id": 0x1002, "pci_device_id": 0x744C}, 16, None),
    ("gfx1030", {"board_name": "AMD Radeon RX 6800 XT", "vendor_id": 0x1002}, 16, "Radeon RX 6800 XT"),
    ("gfx1030", {"board_name": "AMD Radeon RX 6800", "vendor_id": 0x1002}, 16, None),
    ("gfx1100", {}, 24, None),
    ("AMD Radeon RX 7900 XTX", {}, 24, "Radeon RX 7900 XTX"),
    ("Radeon RX 7900 XTX", {}, 24, "Radeon RX 7900 XTX"),
    # Intel's names; the A770's two cards share one, and the memory size tells them apart
    ("Intel(R) Arc(TM) A770 Graphics", {"vendor_id": 0x8086}, 16, "Arc A770 16GB"),
    ("Intel(R) Arc(TM) A770 Graphics", {"vendor_id": 0x8086}, 8, "Arc A770 8GB"),
    ("Intel(R) Arc(TM) A770 Graphics", {"vendor_id": 0x8086}, 12, None),
    ("Intel(R) Arc(TM) A770M Graphics", {"vendor_id": 0x8086}, 16, None),
    ("Intel(R) Arc(TM) A750 Graphics", {"vendor_id": 0x8086}, 8, "Arc A750"),
    ("Intel(R) Arc(TM) B580 Graphics", {"vendor_id": 0x8086}, 12, "Arc B580"),
    ("Intel(R) Arc(TM) B570 Graphics", {"vendor_id": 0x8086}, 10, None),
    ("Intel(R) Data Center GPU Max 1550", {"vendor_id": 0x8086}, 128, "Data Center GPU Max 1550"),
    ("Intel(R) Data Center GPU Max 1100", {"vendor_id": 0x8086}, 48, "Data Center GPU Max 1100"),
    ("Intel(R) Data Center GPU Max 1110", {"vendor_id": 0x8086}, 24, None),
    ("Intel(R) UHD Graphics 770", {"vendor_id": 0x8086}, 16, None),
    # a part of a model: one die of a two-die module, one stack of a two-stack GPU
    ("gfx90a:sramecc+:xnack-", {"board_name": "AMD Instinct MI250X", "vendor_id": 0x1002}, 64, None),
    ("Intel(R) Data Center GPU Max 1550", {"vendor_id": 0x8086}, 64, None),
]


@pytest.mark.parametrize("name, extra, memory_gb, model", DRIVER_NAMES, ids=[f"{n}-{e.get('board_name', '')}-{m}"
                                                                             for n, e, m, _ in DRIVER_NAMES])
def test_match_by_identity_not_by_substring(name, extra, memory_gb, model):
    found = match(name, type="gpu", extra=extra, memory_bytes=memory_gb * GB)
    assert (found["model"] if found else None) == model


def test_a_pci_id_beats_a_misleading_name_and_cpus_match_nothing():
    found = match("some renamed board", extra={"vendor_id": 0x10DE, "pci_device_id": 0x20B0}, memory_bytes=40 * GB)
    assert found and found["model"] == "A100 SXM4 40GB"
    assert match("NVIDIA A100-SXM4-40GB", type="cpu") is None
    assert match("AMD EPYC 7763 64-Core Processor", type="cpu") is None
    assert normalise("Intel(R) Arc(TM) A770 Graphics") == "arc a770"
    assert normalise("NVIDIA A100-SXM4-40GB") == "a100 sxm4 40gb"


def test_devices_peaks_says_no_published_figures_for_the_cpus_here():
    out = run_xgpu("devices", "--peaks", env={"COLUMNS": "200"}).stdout
    for d in xgpu.devices():
        line = next(li for li in out.splitlines() if d.id in li)
        assert "no published figures" in line, line
        why = "a simulator" if d.is_simulator else "a CPU" if d.type == "cpu" else "not in the table"
        assert why in line, line
    listed = json.loads(run_xgpu("devices", "--peaks", "--json").stdout)
    assert [e["id"] for e in listed] == [d.id for d in xgpu.devices()]
    assert all(e["published"] is None for e in listed)


def _cuda_a100_row() -> dict:
    """A report row as `xgpu bench device --json` writes it on an A100 machine (figures typical of one)."""
    return {
        "device": "cuda:0", "name": "NVIDIA A100-SXM4-40GB", "platform": "CUDA 12.4", "type": "gpu",
        "driver_version": "12.4", "host": "gpu-node-7", "compute_units": 108, "global_mem_bytes": 42_505_273_344,
        "peaks": {"gbps": 1555.2, "float32": 19491.8, "float64": 9745.9},
        "bandwidth": {"bytes": 536870912, "seconds": 0.000389, "gbps": 1380.1, "method": "copy kernel"},
        "float32": {"flops": 1e12, "seconds": 0.0541, "gflops": 18484.3, "kernel": "fma_peak"},
        "float64": {"flops": 5e11, "seconds": 0.0532, "gflops": 9398.5, "kernel": "fma_peak"},
        "float16": {"flops": 1e12, "seconds": 0.0541, "gflops": 18484.3, "kernel": "half_peak",
                    "arithmetic": "float32 (float16 storage)"},
        "int8": {"ops": 4e12, "seconds": 0.0631, "gops": 63391.4, "kernel": "int8_peak",
                 "method": "4 x int8 dot product in 32-bit integer arithmetic"},
        "latency": {"us": 7.9, "launches": 200},
    }


def _cpu_row() -> dict:
    return {
        "device": "opencl:1:0", "name": "pthread-skylake-avx512-AMD EPYC", "platform": "Portable Computing Language",
        "type": "cpu", "driver_version": "3.1", "host": "laptop", "compute_units": 2, "global_mem_bytes": 22 * GB,
        "peaks": {"gbps": None, "float32": None, "float64": None}, "published": None,
        "bandwidth": {"gbps": 55.3, "method": "driver copy"}, "float32": {"gflops": 231.3, "kernel": "fma_peak_vec"},
        "float16": {"gflops": 115.0, "kernel": "half_peak", "arithmetic": "float32 (float16 storage)"},
        "int8": {"gops": 150.2, "kernel": "int8_peak", "method": "4 x int8 dot product in 32-bit integer arithmetic"},
    }


def test_compare_puts_synthetic_reports_of_two_machines_side_by_side(tmp_path):
    a, b = tmp_path / "gpu-node-7.json", tmp_path / "laptop.json"
    a.write_text(json.dumps([_cuda_a100_row()]))
    b.write_text(json.dumps([_cpu_row()]))
    markdown = tmp_path / "compare.md"
    proc = run_xgpu("compare", str(a), str(b), "--markdown", str(markdown))
    assert "cuda:0" in proc.stdout and "opencl:1:0" in proc.stdout and f"Markdown table: {markdown}" in proc.stdout
    header, _rule, gpu_line, cpu_line = markdown.read_text().splitlines()  # the table's cells, unwrapped
    assert header.startswith("| device | host |")
    assert "| gpu-node-7 |" in gpu_line and "18484.3 (95% of peak)" in gpu_line  # the driver's peak first
    assert "NVIDIA A100 SXM4 40GB" in gpu_line and "624 TOPS" in gpu_line and "1555 GB/s" in gpu_line
    assert "63391.4 (10% of published peak)" in gpu_line  # int8: of the tensor figure, 624 TOPS
    assert "| laptop |" in cpu_line and "231.3" in cpu_line and "no published figures (a CPU)" in cpu_line
    rows = json.loads(run_xgpu("compare", str(a), str(b), "--json").stdout)
    assert [r["host"] for r in rows] == ["gpu-node-7", "laptop"]
    assert rows[0]["published"]["model"] == "A100 SXM4 40GB"  # matched again from the name in the report
    assert rows[0]["int8"]["fraction_of_peak"] == pytest.approx(63391.4 / 624000)


def test_compare_refuses_what_is_not_a_bench_report(tmp_path):
    bad = tmp_path / "parity.json"
    bad.write_text(json.dumps({"machine": {}, "devices": [], "results": []}))
    proc = run_xgpu("compare", str(bad), check=False)
    assert proc.returncode == 1 and "not a report of `xgpu bench device --json`" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_xgpu("compare", str(tmp_path / "missing.json"), check=False)
    assert proc.returncode == 1 and "no such file" in proc.stderr


def test_published_fraction_when_the_driver_gives_no_peak():
    row = {"peaks": {}, "published": hwbench.published_peaks(match("NVIDIA L4")),
           "bandwidth": {"gbps": 240.0}, "float16": {"gflops": 30300.0, "arithmetic": "float32 (float16 storage)"}}
    hwbench.add_fractions(row)
    assert row["bandwidth"]["fraction_of_peak"] == pytest.approx(0.8) and row["bandwidth"]["peak_source"] == "published"
    assert row["float16"]["fraction_of_peak"] == pytest.approx(1.0)  # float16 in float32: of the FP32 peak
    assert hwbench.cell(row, "bandwidth", "gbps", ".1f") == "240.0 (80% of published peak)"


def test_the_table_in_the_docs_is_the_data():
    from xgpu.tools.peaks import markdown

    from .conftest import ROOT

    docs = (ROOT / "docs" / "hardware.md").read_text()
    for line in markdown().splitlines():
        assert line in docs, f"docs/hardware.md differs from gpu_peaks.json at: {line}"


def test_devices_peaks_shows_a_matched_gpu_with_its_figures(capsys):
    """The table of `xgpu devices --peaks` for devices as an A100 machine's CUDA backend and a Radeon
    machine's OpenCL driver list them (stand-ins: no such GPU here)."""
    import argparse
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from xgpu.tools import cli

    a100 = SimpleNamespace(id="cuda:0", name="NVIDIA A100-SXM4-40GB", type="gpu", is_simulator=False,
                           global_mem_bytes=42_505_273_344, extra={"compute_capability": "8.0"})
    radeon = SimpleNamespace(id="opencl:0:0", name="gfx1100", type="gpu", is_simulator=False,
                             global_mem_bytes=25_753_026_560,
                             extra={"vendor_id": 0x1002, "pci_device_id": 0x744C, "board_name": "AMD Radeon RX 7900 XTX"})
    console = Console(width=400, record=True, file=io.StringIO())
    cli.cmd_devices_peaks([a100, radeon], argparse.Namespace(json=False), console)
    text = console.export_text()
    assert ("NVIDIA A100 SXM4 40GB: 108 SMs, 1410 MHz, 40 GB, 1555 GB/s; TF/s: FP32 19.5, FP16 78 vector / "
            "312 tensor, BF16 312 tensor; INT8 624 TOPS tensor") in text
    assert "AMD Radeon RX 7900 XTX: 96 CUs, 2500 MHz, 24 GB, 960 GB/s; TF/s: FP32 61.4, FP16 122.8 vector / - tensor" in text
    cli.cmd_devices_peaks([a100], argparse.Namespace(json=True), console)
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["published"]["model"] == "A100 SXM4 40GB"
    assert listed[0]["published"]["source"].startswith("https://www.nvidia.com/")
