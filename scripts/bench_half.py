"""float16 and bfloat16 storage beside float32 on the memory-bound layers: how much faster half the bytes run.

    .venv/bin/python scripts/bench_half.py --device intel [--dtype float16|bfloat16] [--rounds 3] [--all]

The layers whose cost is reading and writing memory, not multiplying: MobileNetV2's depthwise 3x3 layers
(stride 1 and 2, planes from 7x7 to 112x112, batch 1 and 8) and the matrix-vector products of inference
(x @ W.T with 1 to 8 rows and a 4096 x 4096 W). Each row times xgpu in float32 and in the half dtype in one
process, taking turns (--rounds rounds, the best median of each counting), and prints both times and the
speed of the half dtype relative to float32 (above 1: faster).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import xgpu

# (label, N, C, H=W, stride): depthwise 3x3, padding 1, as MobileNetV2 has them
DEPTHWISE = [
    ("dw 32 @112 N8", 8, 32, 112, 1), ("dw 96 @112/2 N1", 1, 96, 112, 2), ("dw 144 @56/2 N8", 8, 144, 56, 2),
    ("dw 192 @28 N8", 8, 192, 28, 1), ("dw 192 @28/2 N8", 8, 192, 28, 2), ("dw 384 @14 N1", 1, 384, 14, 1),
    ("dw 576 @14 N8", 8, 576, 14, 1), ("dw 576 @14/2 N8", 8, 576, 14, 2), ("dw 960 @7 N8", 8, 960, 7, 1),
]
# (label, M, N = K): x (M x K) @ W.T (W: N x K)
SKINNY = [("x @ W.T 1x4096x4096", 1), ("x @ W.T 8x4096x4096", 8)]
# --all: layers bound by arithmetic, not memory, where half storage saves nothing and costs its conversions:
# (label, N, C, H=W, K, window) convolutions and (label, M, N, K) products
DENSE_CONV = [("3x3 64 @56 N8", 8, 64, 56, 64, 3), ("1x1 64 @56 N8", 8, 64, 56, 64, 1),
              ("1x1 96->24 @56 N8", 8, 96, 56, 24, 1)]
DENSE_GEMM = [("gemm 1024^3", 1024, 1024, 1024), ("gemm 64x4096x4096 B^T", 64, 4096, 4096)]


def median_time(run, device, reps: int) -> float:
    run()
    device.synchronize()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            run()
        device.synchronize()
        times.append((time.perf_counter() - t) / reps)
    return sorted(times)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="device spec (default: the default device)")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--all", action="store_true",
                        help="also the layers bound by arithmetic (dense 3x3 and 1x1 convolutions, square GEMMs)")
    args = parser.parse_args()
    device = xgpu.get_device(args.device)
    half = np.dtype(xgpu.bfloat16) if args.dtype == "bfloat16" else np.dtype(np.float16)
    rng = np.random.default_rng(0)
    print(f"{device.id} ({device.name}): {args.dtype} storage against float32, best of {args.rounds} medians")
    print(f"{'layer':24s} {'float32 us':>11s} {args.dtype + ' us':>12s} {'speed':>7s}")
    speeds: dict[str, list[float]] = {"memory-bound": [], "arithmetic-bound (--all)": []}
    cases = []
    for label, n, c, hw, stride in DEPTHWISE:
        x = rng.uniform(-1, 1, (n, c, hw, hw)).astype(np.float32)
        w = rng.uniform(-1, 1, (c, 1, 3, 3)).astype(np.float32)
        cases.append((label, x, w, lambda x, w, s=stride, g=c: xgpu.conv2d(x, w, stride=s, padding=1, groups=g)))
    for label, m in SKINNY:
        x = rng.uniform(-1, 1, (m, 4096)).astype(np.float32)
        w = rng.uniform(-1, 1, (4096, 4096)).astype(np.float32)
        cases.append((label, x, w, lambda x, w: xgpu.gemm(x, w, trans_b=True)))
    bound = len(cases)  # the memory-bound layers come first, then --all's
    if args.all:
        for label, n, c, hw, k, r in DENSE_CONV:
            x = rng.uniform(-1, 1, (n, c, hw, hw)).astype(np.float32)
            w = rng.uniform(-1, 1, (k, c, r, r)).astype(np.float32)
            cases.append((label, x, w, lambda x, w, pad=r // 2: xgpu.conv2d(x, w, padding=pad)))
        for label, m, n, k in DENSE_GEMM:
            x = rng.uniform(-1, 1, (m, k)).astype(np.float32)
            w = rng.uniform(-1, 1, (n, k)).astype(np.float32)
            cases.append((label, x, w, lambda x, w: xgpu.gemm(x, w, trans_b=True)))
    for index, (label, x, w, op) in enumerate(cases):
        arrays = {dt: (xgpu.asarray(x.astype(dt), device), xgpu.asarray(w.astype(dt), device))
                  for dt in (np.dtype(np.float32), half)}
        best = {dt: math.inf for dt in arrays}
        for _ in range(args.rounds):
            for dt, (xa, wa) in arrays.items():
                best[dt] = min(best[dt], median_time(lambda xa=xa, wa=wa, op=op: op(xa, wa), device, 10))
        t32, t16 = best[np.dtype(np.float32)], best[half]
        speeds["memory-bound" if index < bound else "arithmetic-bound (--all)"].append(t32 / t16)
        print(f"{label:24s} {t32 * 1e6:11.0f} {t16 * 1e6:12.0f} {t32 / t16:7.2f}")
    for group, values in speeds.items():
        if values:
            geo = math.exp(sum(map(math.log, values)) / len(values))
            print(f"{group}: geometric mean of the speed {geo:.2f}, lowest {min(values):.2f}")


if __name__ == "__main__":
    main()
