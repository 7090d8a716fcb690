"""A float64 numpy reference for conv2d (PyTorch semantics), written for the tests."""

from __future__ import annotations

import numpy as np


def conv2d_reference(x, w, bias=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """NCHW x, (K, C/groups, R, S) w; pads = (top, bottom, left, right). Returns float64 NCHW."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
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
        out += bias.astype(np.float64)[None, :, None, None]
    return out
