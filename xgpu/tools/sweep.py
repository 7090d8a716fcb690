"""``xgpu bench gemm --sweep`` and ``xgpu bench conv2d --network``: xgpu beside its peer over the shapes
research code calls, not one size.

Each contender runs in a child process of its own (numpy's BLAS threads and PyTorch's pool would
otherwise share the cores with the OpenCL runtime), the contenders take turns over two rounds, and the
better median of each counts. The result is one row per shape with both figures and their ratio, the
geometric mean and the worst ratio, and which shapes are so small that the device's own launch latency
is over 40% of the peer's whole call (those are reported, not hidden).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from xgpu.errors import InvalidArgumentError

#: numpy runs with OpenBLAS's native kernels (these variables, set on some machines, slow it down)
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: a call whose peer time is under this multiple of the device's launch latency is launch-bound
LAUNCH_BOUND = 1 / 0.4

# (label, batch, m, n, k, trans_a, trans_b, dtype)
GemmShape = tuple[str, int, int, int, int, bool, bool, str]


def gemm_shapes(dtypes: tuple[str, ...] = ("float32", "float64")) -> list[GemmShape]:
    """Squares 64-4096, both transposes, skinny (M or N below a tile), small K, batched small."""
    shapes: list[GemmShape] = []
    for dt in dtypes:
        big = 4096 if dt == "float32" else 2048
        for n in (64, 128, 256, 512, 1000, 1024, 2048, big):
            shapes.append((f"{n}^3", 1, n, n, n, False, False, dt))
        for n in (512, 1024, 1536):
            shapes.append((f"{n}^3 A^T", 1, n, n, n, True, False, dt))
            shapes.append((f"{n}^3 B^T (x @ W.T)", 1, n, n, n, False, True, dt))
            shapes.append((f"{n}^3 A^T B^T", 1, n, n, n, True, True, dt))
        for m, n, k, tb in ((32, 4096, 4096, True), (64, 4096, 4096, False), (100, 1000, 1000, False),
                            (127, 1000, 1000, False), (256, 3072, 768, True), (4096, 64, 4096, False),
                            (1000, 100, 1000, False), (8, 1024, 1024, True), (1, 4096, 4096, True)):
            shapes.append((f"{m}x{n}x{k}{' B^T' if tb else ''}", 1, m, n, k, False, tb, dt))
        for m, n, k in ((2048, 2048, 32), (1024, 1024, 64), (4096, 4096, 16)):
            shapes.append((f"{m}x{n}x{k} (small K)", 1, m, n, k, False, False, dt))
        for b, n in ((64, 64), (256, 32), (16, 256), (32, 128)):
            shapes.append((f"{b} x {n}^3 batched", b, n, n, n, False, False, dt))
    # the dtype in every label but float32's: the float64 rows would otherwise read as repeats
    return [(label if dt == "float32" else f"{label} {dt}", b, m, n, k, ta, tb, dt)
            for label, b, m, n, k, ta, tb, dt in shapes]


# (label, n, c, h, w, k, r, s, stride, pad, dilation, groups)
ConvLayer = tuple[str, int, int, int, int, int, int, int, int, int, int, int]


def _resnet50(n: int) -> list[ConvLayer]:
    layers: list[ConvLayer] = [("conv1 7x7/2", n, 3, 224, 224, 64, 7, 7, 2, 3, 1, 1)]
    size, cin = 56, 64
    for stage, (mid, out, stride) in enumerate(((64, 256, 1), (128, 512, 2), (256, 1024, 2), (512, 2048, 2)), 1):
        hw_out = size // stride
        layers += [
            (f"s{stage} 1x1 {cin}->{mid}", n, cin, size, size, mid, 1, 1, 1, 0, 1, 1),
            (f"s{stage} 3x3/{stride} {mid}", n, mid, size, size, mid, 3, 3, stride, 1, 1, 1),
            (f"s{stage} 1x1 {mid}->{out}", n, mid, hw_out, hw_out, out, 1, 1, 1, 0, 1, 1),
            (f"s{stage} down 1x1/{stride} {cin}->{out}", n, cin, size, size, out, 1, 1, stride, 0, 1, 1),
            (f"s{stage} 1x1 {out}->{mid}", n, out, hw_out, hw_out, mid, 1, 1, 1, 0, 1, 1),
        ]
        if stride == 2:
            layers.append((f"s{stage} 3x3 {mid}", n, mid, hw_out, hw_out, mid, 3, 3, 1, 1, 1, 1))
        size, cin = hw_out, out
    return layers


def _mobilenetv2(n: int) -> list[ConvLayer]:
    layers: list[ConvLayer] = [("stem 3x3/2 3->32", n, 3, 224, 224, 32, 3, 3, 2, 1, 1, 1),
                               ("dw 3x3 32", n, 32, 112, 112, 32, 3, 3, 1, 1, 1, 32),
                               ("1x1 32->16", n, 32, 112, 112, 16, 1, 1, 1, 0, 1, 1)]
    size, cin = 112, 16
    for t, c, _repeat, s in ((6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                             (6, 320, 1, 1)):
        hidden = cin * t
        out_size = size // s
        layers += [(f"1x1 {cin}->{hidden} @{size}", n, cin, size, size, hidden, 1, 1, 1, 0, 1, 1),
                   (f"dw 3x3/{s} {hidden} @{size}", n, hidden, size, size, hidden, 3, 3, s, 1, 1, hidden),
                   (f"1x1 {hidden}->{c} @{out_size}", n, hidden, out_size, out_size, c, 1, 1, 1, 0, 1, 1)]
        if c != 320:  # the repeated blocks: expansion and depthwise at the output size
            h2 = c * t
            layers += [(f"1x1 {c}->{h2} @{out_size}", n, c, out_size, out_size, h2, 1, 1, 1, 0, 1, 1),
                       (f"dw 3x3 {h2} @{out_size}", n, h2, out_size, out_size, h2, 3, 3, 1, 1, 1, h2),
                       (f"1x1 {h2}->{c} @{out_size}", n, h2, out_size, out_size, c, 1, 1, 1, 0, 1, 1)]
        size, cin = out_size, c
    layers.append(("1x1 320->1280 @7", n, 320, 7, 7, 1280, 1, 1, 1, 0, 1, 1))
    return layers


def _others(n: int) -> list[ConvLayer]:
    """Grouped, dilated, strided and high-resolution layers that the two networks do not have."""
    return [
        ("ResNeXt 3x3 g32 128", n, 128, 56, 56, 128, 3, 3, 1, 1, 1, 32),
        ("grouped 3x3 g4 64", n, 64, 56, 56, 64, 3, 3, 1, 1, 1, 4),
        ("dilated 3x3 d2 256 @28", n, 256, 28, 28, 256, 3, 3, 1, 2, 2, 1),
        ("hi-res stem 3x3/2 3->32 @512", n, 3, 512, 512, 32, 3, 3, 2, 1, 1, 1),
        ("5x5/2 64->64 @56", n, 64, 56, 56, 64, 5, 5, 2, 2, 1, 1),
    ]


NETWORKS = {"resnet50": _resnet50, "mobilenetv2": _mobilenetv2, "others": _others}


def conv_layers(network: str, batches: tuple[int, ...] = (1, 8)) -> list[ConvLayer]:
    names = list(NETWORKS) if network == "all" else [network]
    for name in names:
        if name not in NETWORKS:
            raise InvalidArgumentError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}, all")
    layers: list[ConvLayer] = []
    for name in names:
        for n in batches:
            for layer in NETWORKS[name](n):
                labelled = (f"{name} N{n} {layer[0]}",) + layer[1:]
                if labelled not in layers:
                    layers.append(labelled)
    return layers


def gemm_flops(shape: GemmShape) -> float:
    _, b, m, n, k = shape[:5]
    return 2.0 * b * m * n * k


def conv_flops(layer: ConvLayer) -> float:
    _, n, c, h, w, k, r, s, stride, pad, dil, groups = layer
    p = (h + 2 * pad - dil * (r - 1) - 1) // stride + 1
    q = (w + 2 * pad - dil * (s - 1) - 1) // stride + 1
    return 2.0 * n * k * p * q * (c // groups) * r * s


# ---- the child processes -----------------------------------------------------------------------

def _time(run, sync, flops: float) -> float:
    """Median seconds of seven timed batches of calls (enough calls per batch for ~0.1 s)."""
    sync(run())
    t0 = time.perf_counter()
    sync(run())
    once = max(time.perf_counter() - t0, 1e-6)
    reps = max(1, min(50, int(0.1 / once)))
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(reps):
            r = run()
        sync(r)
        times.append((time.perf_counter() - t0) / reps)
    times.sort()
    return times[len(times) // 2]


def _xgpu_sync(device: Any) -> Callable[[Any], Any]:
    """How a timing waits for xgpu's result: a download of it where the device shares the host's memory (as
    a caller would read it), the device's synchronize() on a GPU (a download there times PCIe, not the kernel)."""
    if device.type == "gpu":
        return lambda r: device.synchronize()
    return lambda r: r.get()


def _torch_cuda(spec: str) -> Any:
    """torch and the CUDA device the xgpu device ``spec`` is (same ordinal): the GPU peers' library."""
    import torch

    return torch, torch.device("cuda", int(spec.split(":")[1]))


def _child_gemm(who: str, spec: str, shapes: list[GemmShape]) -> list[float]:
    rng = np.random.default_rng(0)
    out = []
    if who == "xgpu":
        import xgpu

        device = xgpu.get_device(spec)
        xsync = _xgpu_sync(device)
    elif who == "cublas":
        torch, tdev = _torch_cuda(spec)
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 products in float32, as xgpu computes them
    for _label, b, m, n, k, ta, tb, dt in shapes:
        a = rng.standard_normal((b, k, m) if ta else (b, m, k)).astype(dt)
        bb = rng.standard_normal((b, n, k) if tb else (b, k, n)).astype(dt)
        if who == "xgpu":
            if b == 1:
                A, B = xgpu.asarray(a[0], device), xgpu.asarray(bb[0], device)
                C = xgpu.empty((m, n), dt, device)

                def run(A=A, B=B, C=C, ta=ta, tb=tb):
                    return xgpu.gemm(A, B, C, trans_a=ta, trans_b=tb)

                runner: Callable[[], Any] = run
            else:
                A = xgpu.asarray(np.ascontiguousarray(np.swapaxes(a, 1, 2)) if ta else a, device)
                B = xgpu.asarray(np.ascontiguousarray(np.swapaxes(bb, 1, 2)) if tb else bb, device)

                def batched(A=A, B=B):
                    return xgpu.matmul(A, B)

                runner = batched
            sync = xsync
        elif who == "cublas":
            x = torch.from_numpy(a).to(tdev)
            y = torch.from_numpy(bb).to(tdev)
            x, y = (x.transpose(1, 2) if ta else x), (y.transpose(1, 2) if tb else y)
            x, y = (x[0], y[0]) if b == 1 else (x, y)

            def torch_run(x=x, y=y):
                return torch.matmul(x, y)

            runner = torch_run

            def sync(r):
                torch.cuda.synchronize(tdev)
        else:
            x = np.swapaxes(a, 1, 2) if ta else a
            y = np.swapaxes(bb, 1, 2) if tb else bb
            x, y = (x[0], y[0]) if b == 1 else (x, y)

            def numpy_run(x=x, y=y):
                return np.matmul(x, y)

            runner = numpy_run

            def sync(r):
                return r
        out.append(_time(runner, sync, 0))
    return out


def _child_conv(who: str, spec: str, layers: list[ConvLayer], layout: str) -> list[float]:
    rng = np.random.default_rng(0)
    out = []
    if who == "xgpu":
        import xgpu

        device = xgpu.get_device(spec)
        xsync = _xgpu_sync(device)
    elif who == "cudnn":
        torch, tdev = _torch_cuda(spec)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # cuDNN picks its best algorithm per layer, as a trainer would
    else:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        tdev = None
    for _label, n, c, h, w, k, r, s, stride, pad, dil, groups in layers:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = (rng.standard_normal((k, c // groups, r, s)) / math.sqrt(c // groups * r * s)).astype(np.float32)
        if who == "xgpu":
            xx = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x
            X, W = xgpu.asarray(xx, device), xgpu.asarray(wt, device)

            def run(X=X, W=W, stride=stride, pad=pad, dil=dil, groups=groups):
                return xgpu.conv2d(X, W, stride=stride, padding=pad, dilation=dil, groups=groups, layout=layout)

            sync = xsync
        else:
            tx = torch.from_numpy(x)
            if layout == "NHWC":
                tx = tx.contiguous(memory_format=torch.channels_last)
            tw = torch.from_numpy(wt)
            if tdev is not None:
                tx, tw = tx.to(tdev), tw.to(tdev)

            def run(tx=tx, tw=tw, stride=stride, pad=pad, dil=dil, groups=groups):
                with torch.no_grad():
                    return torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad, dilation=dil,
                                                      groups=groups)

            def sync(res):
                if tdev is not None:
                    torch.cuda.synchronize(tdev)
                return res
        out.append(_time(run, sync, 0))
    return out


def _child_latency(spec: str) -> float:
    import xgpu
    from xgpu.tools.hwbench import measure_latency

    return measure_latency(xgpu.get_device(spec))["us"] * 1e-6


def child_main(argv: list[str]) -> int:
    kind, who, spec = argv[0], argv[1], argv[2]
    if kind == "latency":
        result: Any = _child_latency(spec)
    elif kind == "gemm":
        result = _child_gemm(who, spec, [tuple(s) for s in json.loads(argv[3])])
    else:
        result = _child_conv(who, spec, [tuple(s) for s in json.loads(argv[3])], argv[4])
    print("RESULT " + json.dumps(result))
    return 0


def _run_child(args: list[str], env: dict[str, str] | None = None, timeout: float = 3600) -> Any:
    proc = subprocess.run([sys.executable, "-m", "xgpu.tools.sweep", "--child", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()
    raise InvalidArgumentError(f"the {args[1]} child process failed: {tail[-1] if tail else proc.returncode}")


# ---- the parent ----------------------------------------------------------------------------------

def _rows(labels: list[str], flops: list[float], ours: list[float], peer: list[float], latency: float,
          peer_name: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for label, f, t_x, t_p in zip(labels, flops, ours, peer):
        rows.append({"shape": label, "xgpu_gflops": f / t_x / 1e9, f"{peer_name}_gflops": f / t_p / 1e9,
                     "ratio": t_p / t_x, "launch_bound": t_p < LAUNCH_BOUND * latency,
                     "xgpu_seconds": t_x, f"{peer_name}_seconds": t_p})
    counted = [r["ratio"] for r in rows if not r["launch_bound"]]
    geo = math.exp(sum(math.log(r) for r in counted) / len(counted)) if counted else float("nan")
    worst = min(rows, key=lambda r: r["ratio"] if not r["launch_bound"] else math.inf) if counted else None
    return {"peer": peer_name, "rows": rows, "geomean": geo, "geomean_all": math.exp(
        sum(math.log(r["ratio"]) for r in rows) / len(rows)), "worst": worst, "launch_latency_s": latency}


def sweep(kind: str, device: Any, items: list, layout: str = "NCHW", rounds: int = 2,
          progress=None) -> dict[str, Any]:
    """Run the sweep (``kind`` "gemm" or "conv2d") on ``device``; each contender in its own process,
    ``rounds`` interleaved rounds, the better (lower) median of each counting. The peer is the host's
    library (numpy's BLAS, PyTorch's CPU conv2d) beside a CPU device, the vendor's library (cuBLAS,
    cuDNN through PyTorch) beside a CUDA GPU."""
    gpu_peer = device.type == "gpu" and "compute_capability" in device.extra  # a CUDA device: PyTorch reaches it
    peer = ("cublas" if kind == "gemm" else "cudnn") if gpu_peer else ("numpy" if kind == "gemm" else "torch")
    if peer != "numpy":
        try:
            import importlib.util

            if importlib.util.find_spec("torch") is None:
                raise ImportError
        except ImportError:
            raise InvalidArgumentError(f"the {kind} sweep on {device.id} compares with PyTorch's {peer}: install "
                                       "PyTorch (make bench-deps installs the CPU build; a CUDA device needs a "
                                       "CUDA build)") from None
    peer_env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    payload = json.dumps(items)
    extra = [layout] if kind == "conv2d" else []
    best: dict[str, list[float]] = {}
    for rnd in range(rounds):
        for who, env in (("xgpu", None), (peer, peer_env)):
            if progress:
                progress(f"round {rnd + 1}/{rounds}: {who} over {len(items)} shapes")
            times = _run_child([kind, who, device.id, payload, *extra], env)
            best[who] = [min(a, b) for a, b in zip(best[who], times)] if who in best else times
    latency = _run_child(["latency", "xgpu", device.id])
    flops = [gemm_flops(s) if kind == "gemm" else conv_flops(s) for s in items]
    result = _rows([s[0] for s in items], flops, best["xgpu"], best[peer], latency, peer)
    result.update(kind=kind, device=device.id, device_name=device.name, layout=layout if kind == "conv2d" else "")
    return result


def plot(results: list[dict[str, Any]], path: str) -> None:
    """A bar chart of the ratios per shape, one panel per device."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidArgumentError("--plot needs matplotlib: pip install 'xgpu[plot]'") from None
    fig, axes = plt.subplots(len(results), 1, figsize=(14, 4 * len(results)), squeeze=False)
    for ax, res in zip(axes[:, 0], results):
        rows = res["rows"]
        colors = ["#999999" if r["launch_bound"] else ("#2a7" if r["ratio"] >= 1 else "#d62") for r in rows]
        ax.bar(range(len(rows)), [r["ratio"] for r in rows], color=colors)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r["shape"] for r in rows], rotation=90, fontsize=6)
        ax.set_ylabel(f"xgpu / {res['peer']}")
        ax.set_title(f"{res['kind']} on {res['device']} ({res['device_name']}): geometric mean {res['geomean']:.2f}"
                     " (grey: launch-bound)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        return child_main(sys.argv[2:])
    return 2


if __name__ == "__main__":
    sys.exit(main())
