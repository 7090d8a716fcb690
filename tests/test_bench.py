"""The benchmark commands run end to end (speed itself is measured by them, not by tests)."""

from __future__ import annotations

import json

import pytest

import xgpu

from .conftest import run_xgpu


def fast_device():
    devs = [d for d in xgpu.devices() if not d.is_simulator]
    if not devs:
        pytest.skip("no non-simulator device")
    return devs[0]


def test_bench_gemm_json():
    dev = fast_device()
    rows = json.loads(run_xgpu("bench", "gemm", "--device", dev.id, "--sizes", "64", "100", "--json").stdout)
    assert [r["n"] for r in rows] == [64, 100]
    for row in rows:
        assert row["xgpu"]["gflops"] > 0 and row["xgpu"]["err"] < 1e-5
        assert row["numpy"]["gflops"] > 0
        assert "kernels" in row["numpy"]["variant"], row["numpy"]  # which OpenBLAS kernel ran (threadpoolctl)
        for peer in ("clblast", "reikna"):  # measured, or a reason why not
            assert "gflops" in row[peer] or row[peer]["error"]


def test_bench_gemm_table():
    dev = fast_device()
    out = run_xgpu("bench", "gemm", "--device", dev.id, "--sizes", "33").stdout
    assert "xgpu GF/s" in out and "xgpu / numpy" in out and "OPENBLAS_CORETYPE" in out


def test_bench_conv2d_quick():
    dev = fast_device()
    out = run_xgpu("bench", "conv2d", "--device", dev.id, "--quick").stdout
    assert "implicit-gemm" in out and "direct" in out and "xgpu / numpy" in out
    rows = json.loads(run_xgpu("bench", "conv2d", "--device", dev.id, "--quick", "--json").stdout)
    assert len(rows) == 5
    for row in rows:
        assert row["xgpu"]["err"] < 1e-4 and row["numpy"]["gflops"] > 0
        assert "gflops" in row["torch"] or "torch" in row["torch"]["error"]


def test_bench_bad_input():
    proc = run_xgpu("bench", "gemm", "--sizes", "0", check=False)
    assert proc.returncode == 1 and "at least 1" in proc.stderr
