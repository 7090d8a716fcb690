"""``python -m xgpu.tools.bench_reduce``: a float32 sum of many elements with ``xgpu.sum`` beside numpy's
``sum``, and as a fraction of the device's measured copy bandwidth (``xgpu bench device``'s figure).

A sum reads each element once, so its bandwidth is ``4 * n`` bytes over its time; the copy bandwidth
counts bytes read plus written. Usage: ``python -m xgpu.tools.bench_reduce [--n N] [DEVICE ...]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import xgpu
from xgpu.tools.hwbench import measure_bandwidth


def _median_s(run, repeats: int) -> float:
    run()  # warm-up: compilation, first touch
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure(device: xgpu.Device, host: np.ndarray, repeats: int = 5) -> dict[str, float]:
    a = xgpu.asarray(host, device)
    got = float(xgpu.sum(a))  # checked against float64 before it is timed
    want = float(host.sum(dtype=np.float64))
    if abs(got - want) > 1e-5 * float(np.abs(host).sum(dtype=np.float64)):
        raise AssertionError(f"xgpu.sum on {device.id} gave {got}, numpy (float64) {want}")

    def run() -> None:
        xgpu.sum(a)
        device.synchronize()

    seconds = _median_s(run, repeats)
    copy = measure_bandwidth(device)
    return {"seconds": seconds, "gbps": host.nbytes / seconds / 1e9, "copy_gbps": copy["gbps"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("devices", nargs="*", help="device specs (default: every device that is not a simulator)")
    parser.add_argument("--n", type=int, default=10**8, help="elements (default 10**8)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    host = np.random.default_rng(0).uniform(-1, 1, args.n).astype(np.float32)
    numpy_s = _median_s(lambda: host.sum(), args.repeats)
    print(f"float32 sum of {args.n} elements ({host.nbytes / 1e6:.0f} MB), median of {args.repeats}")
    print(f"{'who':<34} {'ms':>8} {'GB/s':>7} {'copy GB/s':>10} {'of copy':>8}")
    print(f"{'numpy':<34} {numpy_s * 1e3:8.1f} {host.nbytes / numpy_s / 1e9:7.1f} {'':>10} {'':>8}")
    devices = [xgpu.get_device(d) for d in args.devices] or [d for d in xgpu.devices() if not d.is_simulator]
    for device in devices:
        r = measure(device, host, args.repeats)
        name = f"xgpu.sum {device.id} ({device.platform})"[:34]
        print(f"{name:<34} {r['seconds'] * 1e3:8.1f} {r['gbps']:7.1f} {r['copy_gbps']:10.1f} "
              f"{r['gbps'] / r['copy_gbps']:8.0%}")


if __name__ == "__main__":
    main()
