"""Quantized linear and conv2d (issue 20): bit for bit PyTorch's quantized results on every device.

PyTorch's outputs are stored in tests/data/quantized_torch.npz (scripts/quantized_golden.py writes it
with torch.ao's x86 engine), so these run with or without torch installed; the int32 and float32
outputs and non-zero weight zero points are checked against an exact numpy model of the arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xgpu
from xgpu.errors import InvalidArgumentError, ShapeError, UnsupportedDtypeError

from .test_gemm_int import quick_devices

GOLDEN = np.load(Path(__file__).with_name("data") / "quantized_torch.npz")


def case(name):
    return {key.split(".", 1)[1]: GOLDEN[key] for key in GOLDEN.files if key.startswith(name + ".")}


def host_requantize(acc, bias, sx, sw, sy, zy, qmin=0, qmax=255):
    """PyTorch's (fbgemm's) requantization: float32 throughout, round half to even."""
    act = (np.float32(sx) * np.asarray(sw).astype(np.float32)).astype(np.float32)
    v = (acc.astype(np.float32) + (bias / act).astype(np.float32)) * (act / np.float32(sy)).astype(np.float32)
    return np.clip(np.rint(v) + zy, qmin, qmax)


@pytest.mark.parametrize("name", ["linear_tensor", "linear_channel"])
def test_linear_equals_pytorch(xgpu_device, name):
    c = case(name)
    sx, zx, sy, zy = c["params"]
    got = xgpu.quantized.linear(xgpu.asarray(c["x"], xgpu_device), xgpu.asarray(c["w"], xgpu_device), c["bias"],
                                x_scale=sx, x_zero_point=int(zx), w_scale=c["w_scale"], out="uint8",
                                out_scale=sy, out_zero_point=int(zy))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got.get(), c["y"])


@pytest.mark.parametrize("name", ["conv_channel", "conv_tensor"])
def test_conv2d_equals_pytorch(xgpu_device, name):
    c = case(name)
    sx, zx, sy, zy = c["params"]
    sh, sw, ph, pw, dh, dw = (int(v) for v in c["conv"])
    got = xgpu.quantized.conv2d(xgpu.asarray(c["x"], xgpu_device), xgpu.asarray(c["w"], xgpu_device), c["bias"],
                                x_scale=sx, x_zero_point=int(zx), w_scale=c["w_scale"], stride=(sh, sw),
                                padding=(ph, pw), dilation=(dh, dw), out="uint8", out_scale=sy,
                                out_zero_point=int(zy))
    assert got.shape == c["y"].shape
    np.testing.assert_array_equal(got.get(), c["y"])


def test_int32_float32_int8_outputs_and_weight_zero_points(rng):
    """Outputs other than PyTorch's, per-channel non-zero weight zero points and int8 activations, against
    the exact numpy model (int32 exact, float32 within a few ulp, int8 requantized exactly)."""
    dev = quick_devices()[0]
    m, k, n = 19, 77, 11
    x = rng.integers(-128, 128, (m, k)).astype(np.int8)
    w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    zx, zw = -5, rng.integers(-3, 4, n)
    sx, sw, bias = 0.02, rng.uniform(0.001, 0.01, n), rng.standard_normal(n).astype(np.float32)
    acc = (x.astype(np.int64) - zx) @ (w.astype(np.int64) - zw[:, None]).T
    args = dict(x_scale=sx, x_zero_point=zx, w_scale=sw, w_zero_point=zw)
    xa, wa = xgpu.asarray(x, dev), xgpu.asarray(w, dev)
    np.testing.assert_array_equal(xgpu.quantized.linear(xa, wa, bias, out="int32", **args).get(), acc)
    got = xgpu.quantized.linear(xa, wa, bias, out="float32", **args).get()
    want = acc * (np.float32(sx) * sw.astype(np.float32)).astype(np.float64) + bias
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
    got = xgpu.quantized.linear(xa, wa, bias, out="int8", out_scale=0.3, out_zero_point=-7, **args).get()
    np.testing.assert_array_equal(got, host_requantize(acc, bias, sx, sw, 0.3, -7, -128, 127))


def test_conv2d_int32_matches_direct_sum(rng):
    """Padding reads as the input's zero point: the int32 output is the exact sum of (x - zx) w."""
    dev = quick_devices()[0]
    x = rng.integers(0, 256, (1, 2, 5, 4)).astype(np.uint8)
    w = rng.integers(-128, 128, (3, 2, 2, 3)).astype(np.int8)
    zx = 9
    got = xgpu.quantized.conv2d(xgpu.asarray(x, dev), xgpu.asarray(w, dev), x_scale=1.0, x_zero_point=zx,
                                w_scale=1.0, padding=1, out="int32").get()
    xp = np.pad(x.astype(np.int64) - zx, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((1, 3, 6, 4), np.int64)
    for p in range(6):
        for q in range(4):
            want[0, :, p, q] = np.tensordot(w.astype(np.int64), xp[0, :, p:p + 2, q:q + 3], axes=3)
    np.testing.assert_array_equal(got, want)


def test_bad_input_says_what_to_do():
    dev = quick_devices()[0]
    x = xgpu.asarray(np.zeros((2, 4), np.uint8), dev)
    w = xgpu.asarray(np.zeros((3, 4), np.int8), dev)
    q = dict(x_scale=0.1, x_zero_point=0, w_scale=0.1)
    with pytest.raises(InvalidArgumentError, match="out_scale and out_zero_point"):
        xgpu.quantized.linear(x, w, **q)
    with pytest.raises(UnsupportedDtypeError, match="'int32'"):
        xgpu.quantized.linear(x, w, out="float16", **q)
    with pytest.raises(InvalidArgumentError, match=r"\[0, 255\]"):
        xgpu.quantized.linear(x, w, out="int32", x_scale=0.1, x_zero_point=300, w_scale=0.1)
    with pytest.raises(ShapeError, match="one per output channel"):
        xgpu.quantized.linear(x, w, out="int32", x_scale=0.1, x_zero_point=0, w_scale=[0.1, 0.2])
    with pytest.raises(ShapeError, match="expects 4"):
        xgpu.quantized.linear(xgpu.asarray(np.zeros((2, 5), np.uint8), dev), w, out="int32", **q)
    with pytest.raises(UnsupportedDtypeError, match="int_repr"):
        xgpu.quantized.linear(xgpu.asarray(np.zeros((2, 4), np.float32), dev), w, **q)
    with pytest.raises(InvalidArgumentError, match="groups=1"):
        xgpu.quantized.conv2d(xgpu.asarray(np.zeros((1, 2, 3, 3), np.uint8), dev),
                              xgpu.asarray(np.zeros((2, 1, 1, 1), np.int8), dev), groups=2, out="int32", **q)


@pytest.mark.filterwarnings("ignore:.*quantized tensor creation:UserWarning")
def test_live_pytorch_linear_when_installed(rng):
    """With torch installed, a fresh random layer against torch.ao's quantized Linear in the same run."""
    torch = pytest.importorskip("torch", reason="torch not installed (make bench-deps); stored results cover it")
    torch.backends.quantized.engine = "x86"
    dev = quick_devices()[0]
    layer = torch.ao.nn.quantized.Linear(50, 9)
    wq = torch.quantize_per_tensor(torch.from_numpy(rng.standard_normal((9, 50)).astype(np.float32) * 0.1),
                                   0.002, 0, torch.qint8)
    bias = torch.from_numpy(rng.standard_normal(9).astype(np.float32))
    layer.set_weight_bias(wq, bias)
    layer.scale, layer.zero_point = 0.07, 33
    xq = torch.quantize_per_tensor(torch.from_numpy(rng.standard_normal((23, 50)).astype(np.float32)), 0.03, 77,
                                   torch.quint8)
    got = xgpu.quantized.linear(xgpu.asarray(xq.int_repr().numpy(), dev), xgpu.asarray(wq.int_repr().numpy(), dev),
                                bias.numpy(), x_scale=0.03, x_zero_point=77, w_scale=0.002, out="uint8",
                                out_scale=0.07, out_zero_point=33)
    np.testing.assert_array_equal(got.get(), layer(xq).int_repr().numpy())
