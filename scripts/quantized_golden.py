"""Write tests/data/quantized_torch.npz: PyTorch's quantized linear and conv2d (torch.ao, x86 engine) on
small random layers, inputs and outputs as 8-bit values, so that tests/test_quantized.py compares xgpu
with PyTorch's own results on every device without needing PyTorch installed.

    .venv/bin/python scripts/quantized_golden.py      # needs torch (make bench-deps installs it)
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "quantized_torch.npz"


def weights(rng, shape, per_channel):
    wf = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    n = shape[0]
    if per_channel:
        scales = torch.from_numpy((np.abs(wf).reshape(n, -1).max(1) / 127).astype(np.float64))
        wq = torch.quantize_per_channel(torch.from_numpy(wf), scales, torch.zeros(n, dtype=torch.int64), 0,
                                        torch.qint8)
        return wq, scales.numpy()
    wq = torch.quantize_per_tensor(torch.from_numpy(wf), float(np.abs(wf).max() / 127), 0, torch.qint8)
    return wq, np.float64(wq.q_scale())


def main() -> None:
    warnings.filterwarnings("ignore", category=UserWarning)  # quantized tensors are deprecated, still exact
    torch.backends.quantized.engine = "x86"
    rng = np.random.default_rng(20)
    data: dict[str, np.ndarray] = {}
    # name, (M, K, N), per_channel, x scale, x zero point, out scale, out zero point
    for name, (m, k, n), per_channel, sx, zx, sy, zy in [
        ("linear_tensor", (7, 127, 13), False, 0.02, 61, 0.04, 70),
        ("linear_channel", (37, 300, 29), True, 0.05, 64, 0.05, 3),
        # full-range activations: fbgemm's u8 x s8 pair sums saturate at 16 bits here (tests say how)
        ("linear_saturating", (37, 300, 29), True, 0.03, 128, 0.05, 3),
    ]:
        # PyTorch's x86 default qconfig quantizes activations to 7 bits (reduce_range): values 0..127, whose
        # products never saturate fbgemm's 16-bit pair sums; all but the saturating case stay in that range
        xf = rng.standard_normal((m, k)).astype(np.float32)
        if not name.endswith("saturating"):
            xf = np.clip(xf, -zx * sx, (127 - zx) * sx)
        xq = torch.quantize_per_tensor(torch.from_numpy(xf), sx, zx, torch.quint8)
        assert name.endswith("saturating") or int(xq.int_repr().max()) <= 127
        wq, ws = weights(rng, (n, k), per_channel)
        bias = rng.standard_normal(n).astype(np.float32)
        yq = torch.ops.quantized.linear(xq, torch.ops.quantized.linear_prepack(wq, torch.from_numpy(bias)), sy, zy)
        data.update({f"{name}.x": xq.int_repr().numpy(), f"{name}.w": wq.int_repr().numpy(),
                     f"{name}.bias": bias, f"{name}.w_scale": np.asarray(ws),
                     f"{name}.params": np.array([sx, zx, sy, zy], np.float64), f"{name}.y": yq.int_repr().numpy()})
    # name, x shape, (K, R, S), stride, padding, dilation, per_channel, sx, zx, sy, zy
    for name, xshape, (ko, r, s), stride, padding, dilation, per_channel, sx, zx, sy, zy in [
        ("conv_channel", (2, 5, 11, 9), (7, 3, 3), (2, 1), (1, 2), (1, 2), True, 0.04, 64, 0.1, 50),
        ("conv_tensor", (1, 3, 8, 8), (4, 3, 3), (1, 1), (1, 1), (1, 1), False, 0.05, 60, 0.08, 128),
    ]:
        xf = np.clip(rng.standard_normal(xshape).astype(np.float32), -zx * sx, (127 - zx) * sx)
        xq = torch.quantize_per_tensor(torch.from_numpy(xf), sx, zx, torch.quint8)
        assert int(xq.int_repr().max()) <= 127
        wq, ws = weights(rng, (ko, xshape[1], r, s), per_channel)
        bias = rng.standard_normal(ko).astype(np.float32)
        conv = torch.ao.nn.quantized.Conv2d(xshape[1], ko, (r, s), stride=stride, padding=padding, dilation=dilation)
        conv.set_weight_bias(wq, torch.from_numpy(bias))
        conv.scale, conv.zero_point = sy, zy
        data.update({f"{name}.x": xq.int_repr().numpy(), f"{name}.w": wq.int_repr().numpy(),
                     f"{name}.bias": bias, f"{name}.w_scale": np.asarray(ws),
                     f"{name}.params": np.array([sx, zx, sy, zy], np.float64),
                     f"{name}.conv": np.array([*stride, *padding, *dilation], np.int64),
                     f"{name}.y": conv(xq).int_repr().numpy()})
    OUT.parent.mkdir(exist_ok=True)
    np.savez_compressed(OUT, torch_version=np.array(torch.__version__), **data)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    main()
