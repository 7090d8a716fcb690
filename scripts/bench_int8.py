"""int8 GEMM beside xgpu's float32 GEMM and PyTorch's quantized linear (fbgemm), in one run.

    .venv/bin/python scripts/bench_int8.py --device intel --sizes 512 1024 2048

Each row: an M x K activation times an N x K weight transposed (x @ W.T, the layout of a linear layer),
M = N = K = size; xgpu float32 runs the same layout. Best of --repeat runs after a warm-up, in GOPS
(2 M N K / s). PyTorch runs on the host's cores with its own threads (torch.get_num_threads()).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import xgpu


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dev = xgpu.get_device(args.device)
    rng = np.random.default_rng(0)
    try:
        import torch
        warnings.filterwarnings("ignore", category=UserWarning)
        torch.backends.quantized.engine = "x86"
    except ImportError:
        torch = None
    print(f"{dev.id} ({dev.name}); torch {torch.__version__ if torch else 'not installed'}"
          f"{f', {torch.get_num_threads()} threads' if torch else ''}")
    print(f"{'size':>6} {'xgpu f32':>9} {'xgpu u8s8':>10} {'xgpu s8s8':>10} {'torch q':>8} {'u8s8/f32':>9}")
    for n in args.sizes:
        ops = 2.0 * n**3
        xf = xgpu.asarray(rng.random((n, n), dtype=np.float32), dev)
        wf = xgpu.asarray(rng.random((n, n), dtype=np.float32), dev)
        xu = xgpu.asarray(rng.integers(0, 128, (n, n)).astype(np.uint8), dev)
        xs = xgpu.asarray(rng.integers(-128, 128, (n, n)).astype(np.int8), dev)
        ws = xgpu.asarray(rng.integers(-128, 128, (n, n)).astype(np.int8), dev)
        f32 = ops / best(lambda: xgpu.gemm(xf, wf, trans_b=True).get(), args.repeat) / 1e9
        u8 = ops / best(lambda: xgpu.gemm(xu, ws, trans_b=True).get(), args.repeat) / 1e9
        s8 = ops / best(lambda: xgpu.gemm(xs, ws, trans_b=True).get(), args.repeat) / 1e9
        tq = float("nan")
        if torch is not None:
            xq = torch.quantize_per_tensor(torch.rand(n, n), 1 / 127, 0, torch.quint8)
            wq = torch.quantize_per_tensor(torch.rand(n, n) - 0.5, 1 / 255, 0, torch.qint8)
            packed = torch.ops.quantized.linear_prepack(wq, None)
            tq = ops / best(lambda: torch.ops.quantized.linear(xq, packed, 1.0, 0), args.repeat) / 1e9
        print(f"{n:>6} {f32:>9.1f} {u8:>10.1f} {s8:>10.1f} {tq:>8.1f} {u8 / f32:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
