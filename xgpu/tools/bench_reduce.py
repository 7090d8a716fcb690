"""``python -m xgpu.tools.bench_reduce``: the reduction and scan generators
on large float32 inputs beside numpy, as GB/s and as a fraction of the device's copy bandwidth
(``xgpu bench device``'s figure, measured between the repeats in the same conditions).

Each case reads its input once, so its bandwidth is the input's bytes over its time (a scan also writes
as many: it counts both); the copy bandwidth counts bytes read plus written. Usage:
``python -m xgpu.tools.bench_reduce [--n N] [--cases sum,max,...] [DEVICE ...]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import xgpu
from xgpu.tools.bench import median_time
from xgpu.tools.hwbench import measure_bandwidth

#: name -> (what xgpu runs, what numpy runs, bytes moved per input byte). ``a`` is 1-D of n elements;
#: the axis cases see it as (n / 1000, 1000).
CASES: dict[str, tuple[Callable[[Any], Any], Callable[[np.ndarray], Any], int]] = {
    "sum": (lambda a: xgpu.sum(a), lambda h: h.sum(), 1),
    "max": (lambda a: xgpu.max(a), lambda h: h.max(), 1),
    "mean": (lambda a: xgpu.mean(a), lambda h: h.mean(), 1),
    "sum axis=-1": (lambda a: xgpu.sum(a.reshape(-1, 1000), axis=-1), lambda h: h.reshape(-1, 1000).sum(-1), 1),
    "sum axis=0": (lambda a: xgpu.sum(a.reshape(-1, 1000), axis=0), lambda h: h.reshape(-1, 1000).sum(0), 1),
    "cumsum": (lambda a: xgpu.cumsum(a), lambda h: np.cumsum(h), 2),
}
DEFAULT_CASES = ("sum", "max", "mean", "sum axis=-1", "sum axis=0", "cumsum")


def _check(name: str, device: xgpu.Device, got: Any, host: np.ndarray) -> None:
    """Each case is checked against float64 numpy before it is timed."""
    want = CASES[name][1](host.astype(np.float64))
    got = np.asarray(got.get(), np.float64)
    scale = float(np.abs(host).sum(dtype=np.float64)) if name != "max" else 1.0
    if np.abs(got - want).max() > 1e-5 * scale:
        raise AssertionError(f"{name} on {device.id} differs from numpy (float64) by {np.abs(got - want).max()}")


def measure(device: xgpu.Device, host: np.ndarray, name: str, repeats: int = 5) -> dict[str, float]:
    """Median seconds of ``name`` on ``device``, with the copy bandwidth measured after each repeat."""
    run_xgpu, _, traffic = CASES[name]
    a = xgpu.asarray(host, device)
    _check(name, device, run_xgpu(a), host)
    run_xgpu(a)
    device.synchronize()  # warm-up: compilation, first touch of the output
    times, copies = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        run_xgpu(a)
        device.synchronize()
        times.append(time.perf_counter() - start)
        copies.append(measure_bandwidth(device)["gbps"])
    seconds, copy = statistics.median(times), statistics.median(copies)
    gbps = traffic * host.nbytes / seconds / 1e9
    return {"seconds": seconds, "gbps": gbps, "copy_gbps": copy, "of_copy": gbps / copy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xgpu.tools.bench_reduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("devices", nargs="*", help="device specs (default: every device that is not a simulator)")
    parser.add_argument("--n", type=int, default=10**8, help="elements (default 10**8, a multiple of 1000)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES),
                        help=f"comma-separated, of: {', '.join(CASES)} (default: all)")
    args = parser.parse_args(argv)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown or args.n < 1000 or args.n % 1000 or args.repeats < 1:
        parser.error(f"unknown case(s) {unknown}" if unknown else "--n must be a positive multiple of 1000 and "
                     "--repeats positive")
    host = np.random.default_rng(0).uniform(-1, 1, args.n).astype(np.float32)
    devices = [xgpu.get_device(d) for d in args.devices] or [d for d in xgpu.devices() if not d.is_simulator]
    print(f"float32, {args.n} elements ({host.nbytes / 1e6:.0f} MB), median of {args.repeats}; GB/s counts bytes "
          "read (and written, for cumsum); copy: bytes read plus written")
    print(f"{'case':<12} {'who':<30} {'ms':>8} {'GB/s':>6} {'copy GB/s':>9} {'of copy':>7} {'numpy ms':>9} "
          f"{'numpy/xgpu':>10}")
    for name in names:
        run_numpy, traffic = CASES[name][1], CASES[name][2]
        numpy_s = median_time(lambda f=run_numpy: f(host), args.repeats)
        print(f"{name:<12} {'numpy':<30} {numpy_s * 1e3:8.1f} {traffic * host.nbytes / numpy_s / 1e9:6.1f}")
        for device in devices:
            r = measure(device, host, name, args.repeats)
            who = f"xgpu {device.id} ({device.platform})"[:30]
            print(f"{'':<12} {who:<30} {r['seconds'] * 1e3:8.1f} {r['gbps']:6.1f} {r['copy_gbps']:9.1f} "
                  f"{r['of_copy']:7.0%} {numpy_s * 1e3:9.1f} {numpy_s / r['seconds']:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
