"""float64 numpy references for the kernel library: what parity tests compare device results with."""

from __future__ import annotations

import numpy as np

__all__ = ["conv2d_reference", "gemm_reference"]


def gemm_reference(a, b, *, alpha=1.0, beta=0.0, c=None, trans_a=False, trans_b=False) -> np.ndarray:
    """``alpha * op(a) @ op(b) + beta * c`` in float64 (batches broadcast as in ``np.matmul``)."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    out = alpha * (np.swapaxes(a64, -1, -2) if trans_a else a64) @ (np.swapaxes(b64, -1, -2) if trans_b else b64)
    if c is not None and beta:
        out = out + beta * np.asarray(c, np.float64)
    return out


def conv2d_reference(x, w, bias=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1) -> np.ndarray:
    """PyTorch's conv2d (cross-correlation) in float64: NCHW ``x``, (K, C/groups, R, S) ``w``,
    ``pads`` = (top, bottom, left, right). Returns NCHW."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    sh, sw = stride
    dh, dw = dilation
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    hp, wp = xp.shape[2:]
    p = (hp - dh * (r - 1) - 1) // sh + 1
    q = (wp - dw * (s - 1) - 1) // sw + 1
    kg = k // groups
    out = np.zeros((n, k, p, q))
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg]
        for i in range(r):
            for j in range(s):
                patch = xg[:, :, i * dh: i * dh + sh * (p - 1) + 1: sh, j * dw: j * dw + sw * (q - 1) + 1: sw]
                out[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", patch, wg[:, :, i, j])
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out
