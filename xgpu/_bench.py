"""``xgpu bench gemm``: GF/s of xgpu beside its peers, each measured in its own process, in one run.

Peers: numpy (OpenBLAS, with its native kernels: ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are
unset in the numpy child only), and whatever the device's backend offers in an optional
``xgpu.backends.<backend>.peers`` module (CLBlast and reikna for OpenCL). One contender per child
process: some OpenCL runtimes misbehave with a second context for a device in one process.
"""

from __future__ import annotations

import importlib
import importlib.util
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

    dev = xgpu.get_device(spec)
    a, b = gemm_operands(n, dtype)
    ga, gb = xgpu.asarray(a, dev), xgpu.asarray(b, dev)
    gc = xgpu.empty((n, n), dtype, dev)

    def run():
        xgpu.gemm(ga, gb, gc)
        dev.synchronize()

    seconds = median_time(run)
    _, config = _kernel(dev, np.dtype(dtype), False, False, None)
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


def child_main(argv: list[str]) -> int:
    kind, spec, n, dtype = argv[0], argv[1], int(argv[2]), argv[3]
    result = _child_numpy(n, dtype) if kind == "numpy" else _child_xgpu(spec, n, dtype)
    print("RESULT " + json.dumps(result))
    return 0


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
    peers_module = f"xgpu.backends.{device.backend}.peers"
    has_peers = importlib.util.find_spec(peers_module) is not None
    peer_names: list[str] = []
    if has_peers:
        peer_names = importlib.import_module(peers_module).PEERS
    numpy_env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    rows = []
    for n in sizes:
        flops = 2 * n**3
        row: dict[str, Any] = {"n": n, "dtype": dtype, "device": device.id}
        jobs = [("xgpu", ["-m", "xgpu._bench", "--child", "xgpu", device.id, str(n), dtype], None),
                ("numpy", ["-m", "xgpu._bench", "--child", "numpy", "-", str(n), dtype], numpy_env)]
        jobs += [(p, ["-m", peers_module, p, device.platform, device.name, str(n), dtype], None) for p in peer_names]
        for name, args, env in jobs:
            if progress:
                progress(f"n={n}: {name}")
            result = _run_child(args, env)
            if "seconds" in result:
                result["gflops"] = flops / result["seconds"] / 1e9
            row[name] = result
        rows.append(row)
    return rows


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        return child_main(sys.argv[2:])
    return 2


if __name__ == "__main__":
    sys.exit(main())
