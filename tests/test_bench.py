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
