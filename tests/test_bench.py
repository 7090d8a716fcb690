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


def measured(result: dict, tolerance: float) -> bool:
    """A contender's cell: timed with a right answer, or only a reason why it was not timed."""
    if "seconds" in result:
        assert result["err"] < tolerance and "error" not in result, result
        return True
    assert list(result) == ["error"] and result["error"].strip(), result
    return False


def test_bench_gemm_json():
    from xgpu._plugins import call_each
    from xgpu.hookspecs import PeerRegistry

    dev = fast_device()
    # the peers registered for this device's backend (CLBlast and reikna for OpenCL), no others
    peers = [p.name for p in call_each("xgpu_register_bench_peers", PeerRegistry()).for_backend(dev.backend, "gemm")]
    rows = json.loads(run_xgpu("bench", "gemm", "--device", dev.id, "--sizes", "64", "100", "--json").stdout)
    assert [r["n"] for r in rows] == [64, 100]
    for row in rows:
        assert set(row) == {"n", "dtype", "device", "xgpu", "numpy", *peers}
        assert measured(row["xgpu"], 1e-5) and measured(row["numpy"], 1e-5)
        assert "kernels" in row["numpy"]["variant"], row["numpy"]  # which OpenBLAS kernel ran (threadpoolctl)
        for peer in peers:
            measured(row[peer], 1e-4)


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
        assert measured(row["xgpu"], 1e-4) and measured(row["numpy"], 1e-4)
        if not measured(row["torch"], 1e-4):
            assert "torch" in row["torch"]["error"]


def test_bench_bad_input():
    proc = run_xgpu("bench", "gemm", "--sizes", "0", check=False)
    assert proc.returncode == 2 and "at least 1" in proc.stderr  # a usage error, as argparse reports them


def test_bench_gemm_skinny_bfloat16():
    """``--skinny``: x @ W.T with 1-8 rows, the dtype beside float32, right answers, medians and ratios."""
    dev = fast_device()
    rows = json.loads(run_xgpu("bench", "gemm", "--skinny", "--dtype", "bfloat16", "--device", dev.id,
                               "--sizes", "96", "--repeats", "2", "--json").stdout)
    assert [r["m"] for r in rows] == [1, 2, 4, 8]
    for row in rows:
        assert row["n"] == row["k"] == 96 and row["dtype"] == "bfloat16"
        assert row["bfloat16"]["err"] < 2.0**-7 and row["float32"]["err"] < 1e-5
        assert row["speedup"] == pytest.approx(row["float32"]["seconds"] / row["bfloat16"]["seconds"])
    out = run_xgpu("bench", "gemm", "--skinny", "--dtype", "bfloat16", "--device", dev.id, "--sizes", "64",
                   "--repeats", "1").stdout
    assert "x @ W.T" in out and "bfloat16 beside float32" in out and "median of 1 runs" in out
    proc = run_xgpu("bench", "gemm", "--skinny", "--sizes", "64", "128", "--device", dev.id, check=False)
    assert proc.returncode == 1 and "one size" in proc.stderr
