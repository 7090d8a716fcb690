"""``xgpu bench gemm``: GF/s of xgpu beside its peers, each measured in its own process, in one run.

Peers: numpy (OpenBLAS, with its native kernels: ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are
unset in the numpy child only), and whatever the device's backend offers in an optional
``xgpu.backends.<backend>.peers`` module (CLBlast and reikna for OpenCL). One contender per child
process: some OpenCL runtimes misbehave with a second context for a device in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

GEMM_SIZES = (1024, 2048)
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def median_time(run, repeats: int = 5) -> float:
    run()  # warm-up: compilation, first-touch
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def gemm_operands(n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    return (rng.uniform(-1, 1, (n, n)).astype(dtype), rng.uniform(-1, 1, (n, n)).astype(dtype))


def relative_error(result: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ref = a.astype(np.float64) @ b.astype(np.float64)
    return float(np.abs(result.astype(np.float64) - ref).max() / np.abs(ref).max())


def _child_xgpu(spec: str, n: int, dtype: str) -> dict[str, Any]:
    import xgpu
    from xgpu.kernels.gemm import _kernel
    from xgpu.kernels.gemm.tuning import shape_class

    dev = xgpu.get_device(spec)
    a, b = gemm_operands(n, dtype)
    ga, gb = xgpu.asarray(a, dev), xgpu.asarray(b, dev)
    gc = xgpu.empty((n, n), dtype, dev)

    def run():
        xgpu.gemm(ga, gb, gc)
        dev.synchronize()

    seconds = median_time(run)
    _, config = _kernel(dev, np.dtype(dtype), False, False, None, shape_class(n, n, n))
    return {"seconds": seconds, "err": relative_error(gc.get(), a, b), "variant": config.label}


def _child_numpy(n: int, dtype: str) -> dict[str, Any]:
    a, b = gemm_operands(n, dtype)
    info = ""
    try:
        from threadpoolctl import threadpool_info

        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if blas:
            p = blas[0]
            info = f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')} kernels, {p.get('num_threads')} threads"
    except ImportError:
        info = "threadpoolctl not installed: kernel unknown"
    return {"seconds": median_time(lambda: a @ b), "err": relative_error(a @ b, a, b), "variant": info}


# ResNet-style layers: (name, N, C, H, W, K, R, S, stride, padding, groups)
CONV_LAYERS = [
    ("N8 C64 56x56 K64 3x3 p1", 8, 64, 56, 56, 64, 3, 3, 1, 1, 1),
    ("N1 C3 224x224 K64 7x7 s2 p3", 1, 3, 224, 224, 64, 7, 7, 2, 3, 1),
    ("N32 C256 14x14 K256 3x3 p1", 32, 256, 14, 14, 256, 3, 3, 1, 1, 1),
    ("N8 C128 28x28 K128 1x1", 8, 128, 28, 28, 128, 1, 1, 1, 0, 1),
    ("N8 C128 56x56 depthwise 3x3 p1", 8, 128, 56, 56, 128, 3, 3, 1, 1, 128),
]


# medians of 7: the layers take milliseconds, and a median of 3 let one stall on this 2-core machine through
# (a 7x7 first-layer run once read 48 against 103-107 GF/s)
CONV_REPEATS = 7


def conv_operands(layer, dtype: str):
    _name, n, c, h, w, k, r, s, _stride, _pad, groups = layer
    rng = np.random.default_rng(n * c + k)
    return (rng.uniform(-1, 1, (n, c, h, w)).astype(dtype), rng.uniform(-1, 1, (k, c // groups, r, s)).astype(dtype))


def conv_flops(layer) -> int:
    _name, n, c, h, w, k, r, s, stride, pad, groups = layer
    p, q = (h + 2 * pad - r) // stride + 1, (w + 2 * pad - s) // stride + 1
    return 2 * n * k * p * q * (c // groups) * r * s


def conv_numpy(x, w, stride, pad, groups):
    """The im2col + matmul baseline (float64-free: the dtype of x)."""
    n, c, _h, _w = x.shape
    k, cg, r, s = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (r, s), axis=(2, 3))[:, :, ::stride, ::stride]
    p, q = win.shape[2:4]
    kg = k // groups
    out = np.empty((n, k, p, q), x.dtype)
    for g in range(groups):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * p * q, cg * r * s)
        res = cols @ w[g * kg:(g + 1) * kg].reshape(kg, cg * r * s).T
        out[:, g * kg:(g + 1) * kg] = res.reshape(n, p, q, kg).transpose(0, 3, 1, 2)
    return out


def quick_layer(layer):
    """A small version of a layer (batch 1, a quarter of the image) for smoke runs."""
    name, _n, c, h, w, k, r, s, stride, pad, groups = layer
    return (name + " (quick)", 1, c, max(h // 4, r), max(w // 4, s), k, r, s, stride, pad, groups)


def conv_layers(quick: bool = False):
    return [quick_layer(layer) for layer in CONV_LAYERS] if quick else list(CONV_LAYERS)


def _child_conv(kind: str, spec: str, index: int, dtype: str, quick: bool = False) -> dict[str, Any]:
    layer = conv_layers(quick)[index]
    _name, n, c, h, w, k, r, s, stride, pad, groups = layer
    x, wt = conv_operands(layer, dtype)

    def err(y):
        # the float64 reference comes after all timing: numpy's BLAS threads, once started, change the
        # timings of the other contenders in the process (PyTorch's 7x7 first layer: 1.2 against 3.2 ms)
        ref = conv_numpy(x.astype(np.float64), wt.astype(np.float64), stride, pad, groups)
        return float(np.abs(y.astype(np.float64) - ref).max() / np.abs(ref).max())

    if kind == "numpy":
        seconds = median_time(lambda: conv_numpy(x, wt, stride, pad, groups), 3)
        return {"seconds": seconds, "err": err(conv_numpy(x, wt, stride, pad, groups)), "variant": "im2col + matmul"}
    if kind == "torch":
        try:
            import torch
        except ImportError:
            return {"error": "torch not installed: pip install torch==2.13.0 (CPU)"}
        torch.set_num_threads(2)
        tx, tw = torch.from_numpy(x), torch.from_numpy(wt)

        def torch_conv():
            return torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad, groups=groups)

        seconds = median_time(torch_conv, CONV_REPEATS)
        return {"seconds": seconds, "err": err(torch_conv().numpy()), "variant": f"torch {torch.__version__}, 2 threads"}
    import xgpu
    from xgpu.kernels.conv2d import is_pointwise, plan

    dev = xgpu.get_device(spec)
    gx, gw = xgpu.asarray(x, dev), xgpu.asarray(wt, dev)
    out = {}

    def go():
        out["y"] = xgpu.conv2d(gx, gw, stride=stride, padding=pad, groups=groups)
        dev.synchronize()

    seconds = median_time(go, CONV_REPEATS)
    y = out["y"].get()
    chosen = plan(dev, dtype, c // groups, k // groups, (r, s),
                  pointwise=is_pointwise((r, s), (stride, stride), (pad,) * 4, groups, False))
    result = {"seconds": seconds, "variant": chosen.label}
    if chosen.kernel == "implicit-gemm" and groups == 1:
        # the same layer in NHWC (no layout change: the implicit-GEMM kernel alone) and the matrix
        # product it amounts to, through xgpu's own GEMM
        nx, nw = xgpu.asarray(x.transpose(0, 2, 3, 1), dev), xgpu.asarray(wt.transpose(2, 3, 1, 0), dev)
        def nhwc_conv():
            xgpu.conv2d(nx, nw, stride=stride, padding=pad, layout="NHWC")
            dev.synchronize()

        nhwc = median_time(nhwc_conv, CONV_REPEATS)
        p, q = (h + 2 * pad - r) // stride + 1, (w + 2 * pad - s) // stride + 1
        a = xgpu.asarray(np.ones((n * p * q, c * r * s), dtype), dev)
        b = xgpu.asarray(np.ones((c * r * s, k), dtype), dev)
        cm = xgpu.empty((n * p * q, k), dtype, dev)
        def gemm():
            xgpu.gemm(a, b, cm)
            dev.synchronize()

        gemm_s = median_time(gemm, CONV_REPEATS)
        result.update(nhwc_seconds=nhwc, gemm_seconds=gemm_s)
    result["err"] = err(y)
    return result


def _child_first_gemm(spec: str, n: int) -> dict[str, Any]:
    start = time.perf_counter()
    import xgpu

    dev = xgpu.get_device(spec)
    a = xgpu.asarray(np.ones((n, n), np.float32), dev)
    t0 = time.perf_counter()
    xgpu.gemm(a, a)
    dev.synchronize()
    return {"seconds": time.perf_counter() - t0, "import_and_setup_s": t0 - start}


def bench_cache(device, n: int) -> dict[str, Any]:
    """The first GEMM call of a new process with an empty cache, then with the cache it left."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "XGPU_CACHE_DIR": folder, "XGPU_CACHE": "1"}
        args = ["-m", "xgpu.tools.bench", "--child", "first-gemm", device.id, str(n)]
        cold = _run_child(args, env)
        warm = _run_child(args, env)
    if "seconds" not in cold or "seconds" not in warm:
        raise RuntimeError(f"benchmark child failed: {cold.get('error') or warm.get('error')}")
    return {"device": device.id, "n": n, "cold_s": cold["seconds"], "warm_s": warm["seconds"],
            "speedup": cold["seconds"] / warm["seconds"]}


def child_main(argv: list[str]) -> int:
    if argv[0] == "first-gemm":
        print("RESULT " + json.dumps(_child_first_gemm(argv[1], int(argv[2]))))
        return 0
    if argv[0] == "conv":
        result = _child_conv(argv[1], argv[2], int(argv[3]), argv[4], quick=argv[5:6] == ["quick"])
    else:
        kind, spec, n, dtype = argv[0], argv[1], int(argv[2]), argv[3]
        result = _child_numpy(n, dtype) if kind == "numpy" else _child_xgpu(spec, n, dtype)
    print("RESULT " + json.dumps(result))
    return 0


def bench_conv2d(device, dtype: str, progress=None, quick: bool = False) -> list[dict[str, Any]]:
    """One row per layer: xgpu, PyTorch's CPU conv2d (2 threads) and numpy im2col + matmul."""
    numpy_env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    rows = []
    for index, layer in enumerate(conv_layers(quick)):
        flops = conv_flops(layer)
        row: dict[str, Any] = {"layer": layer[0], "dtype": dtype, "device": device.id, "gflop": flops / 1e9}
        for kind, env in (("xgpu", None), ("torch", None), ("numpy", numpy_env)):
            if progress:
                progress(f"{layer[0]}: {kind}")
            result = _run_child(["-m", "xgpu.tools.bench", "--child", "conv", kind, device.id, str(index), dtype,
                                 "quick" if quick else "full"], env)
            for key in ("seconds", "nhwc_seconds", "gemm_seconds"):
                if key in result:
                    result[key.replace("seconds", "gflops")] = flops / result[key] / 1e9
            row[kind] = result
        rows.append(row)
    return rows


def _run_child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=1800,
                          env=env or dict(os.environ))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return {"error": (lines[-1] if lines else f"exit status {proc.returncode}")[:200]}


def bench_gemm(device, sizes, dtype: str, progress=None) -> list[dict[str, Any]]:
    """One row per size: seconds and GF/s of every contender (or its error), measured in this run."""
    from xgpu._plugins import call_each
    from xgpu.hookspecs import PeerRegistry

    peers = call_each("xgpu_register_bench_peers", PeerRegistry()).for_backend(device.backend, "gemm")
    numpy_env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    rows = []
    for n in sizes:
        flops = 2 * n**3
        row: dict[str, Any] = {"n": n, "dtype": dtype, "device": device.id}
        jobs = [("xgpu", ["-m", "xgpu.tools.bench", "--child", "xgpu", device.id, str(n), dtype], None),
                ("numpy", ["-m", "xgpu.tools.bench", "--child", "numpy", "-", str(n), dtype], numpy_env)]
        jobs += [(p.name, ["-m", p.module, p.name, device.platform, device.name, str(n), dtype], None) for p in peers]
        for name, args, env in jobs:
            if progress:
                progress(f"n={n}: {name}")
            result = _run_child(args, env)
            if "seconds" in result:
                result["gflops"] = flops / result["seconds"] / 1e9
            row[name] = result
        rows.append(row)
    return rows


SKINNY_ROWS = (1, 2, 4, 8)


def bench_skinny(device, dtype: str, size: int = 4096, rows=SKINNY_ROWS, repeats: int = 25,
                 progress=None) -> list[dict[str, Any]]:
    """``x @ W.T`` with a few rows of x and an N x K weight matrix (N = K = ``size``): the memory-bound GEMM
    of inference, in ``dtype`` and in float32 on the same device, alternately (a busy machine slows both).
    Per row count: the median seconds of each, the weights' GB/s and float32's time over ``dtype``'s."""
    import xgpu

    rng = np.random.default_rng(size)
    w32 = rng.uniform(-1, 1, (size, size)).astype(np.float32)
    out = []
    for m in rows:
        x32 = rng.uniform(-1, 1, (m, size)).astype(np.float32)
        runs = {}
        for dt in (dtype, "float32"):
            x, w = xgpu.asarray(x32.astype(dt), device), xgpu.asarray(w32.astype(dt), device)
            runs[dt] = (x, w, x @ w.T)
        times: dict[str, list[float]] = {dtype: [], "float32": []}
        for i in range(repeats + 1):  # the first round is a warm-up (compiles, first touch)
            for dt in (dtype, "float32") if i % 2 else ("float32", dtype):
                x, w, c = runs[dt]
                device.synchronize()
                start = time.perf_counter()
                xgpu.gemm(x, w, c, trans_b=True)
                device.synchronize()
                if i:
                    times[dt].append(time.perf_counter() - start)
            if progress:
                progress(f"m={m}: round {i} of {repeats}")
        med = {dt: sorted(t)[len(t) // 2] for dt, t in times.items()}
        ref = x32.astype(np.float64) @ w32.astype(np.float64).T
        row: dict[str, Any] = {"m": m, "n": size, "k": size, "dtype": dtype, "device": device.id, "repeats": repeats}
        for dt in (dtype, "float32"):
            x, w, c = runs[dt]
            got = c.get().astype(np.float64)
            row[dt] = {"seconds": med[dt], "weights_gbps": w.nbytes / med[dt] / 1e9,
                       "err": float(np.abs(got - ref).max() / np.abs(ref).max())}
        row["speedup"] = med["float32"] / med[dtype]
        out.append(row)
    return out


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        return child_main(sys.argv[2:])
    return 2


if __name__ == "__main__":
    sys.exit(main())
