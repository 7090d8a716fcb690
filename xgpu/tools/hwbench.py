"""``xgpu bench device``: measured hardware figures (bandwidth, FMA ceilings, launch latency, the
library's GEMM and conv2d) per device, a comparison table, and a roofline chart."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from xgpu.errors import InvalidArgumentError
from xgpu.tools.bench import CONV_LAYERS, conv_flops, conv_operands, gemm_operands, median_time

GEMM_N = 1024
CONV_LAYER = CONV_LAYERS[0]  # N8 C64 56x56 K64 3x3 pad 1: ResNet's second stage


def _event_seconds(launch, repeats: int = 5) -> float:
    launch().wait()  # warm-up
    return float(np.median([launch().elapsed_s for _ in range(repeats)]))


def measure_bandwidth(device) -> dict[str, Any]:
    """Device-to-device copy, through a copy kernel and through the driver's copy (the faster counts):
    bytes read plus bytes written, per second."""
    import xgpu
    from xgpu.kernels.bench import TEMPLATE, defines

    limit = min(device.extra.get("max_mem_alloc_bytes", device.global_mem_bytes), device.global_mem_bytes // 8)
    n = int(min(64 * 2**20, limit // 4))
    program = xgpu.compile(TEMPLATE, device, defines=defines("float32"))
    src = xgpu.asarray(np.ones(n, np.float32), device)
    dst = xgpu.empty(n, np.float32, device)
    kernel_s = _event_seconds(lambda: program.copy(dst, src, n, global_size=n))
    if not (dst.get()[:: max(n // 1000, 1)] == 1).all():
        raise AssertionError("the copy kernel did not copy")

    def driver_copy():
        device._impl.copy(dst._buffer, src._buffer, 4 * n)
        device.synchronize()

    driver_s = median_time(driver_copy, repeats=3)
    seconds, method = min((kernel_s, "copy kernel"), (driver_s, "driver copy"))
    return {"bytes": 8 * n, "seconds": seconds, "gbps": 8 * n / seconds / 1e9, "method": method,
            "kernel_gbps": 8 * n / kernel_s / 1e9, "driver_gbps": 8 * n / driver_s / 1e9}


def measure_fma(device, dtype: str) -> dict[str, Any]:
    """The FMA ceiling: independent multiply-add chains, long enough to take tens of milliseconds; as
    scalars (which runtimes vectorise across work-items) and as short vectors, the better counts."""
    import xgpu
    from xgpu.kernels.bench import CHAINS, TEMPLATE, VCHAINS, VW, defines

    program = xgpu.compile(TEMPLATE, device, defines=defines(dtype))
    work_items = max(device.compute_units * 2048, 65536)
    out = xgpu.empty(work_items, dtype, device)
    scalar = np.dtype(dtype).type
    best: dict[str, Any] = {}
    for name, lanes in (("fma_peak", CHAINS), ("fma_peak_vec", VCHAINS * VW)):
        kernel = program.kernel(name)
        iterations = 64
        while True:
            seconds = _event_seconds(lambda it=iterations, k=kernel: k(out, scalar(0.999), scalar(1e-3), np.int32(it),
                                                                    global_size=work_items), repeats=3)
            if seconds > 0.05 or iterations >= 2**16:
                break
            iterations *= 2 if seconds > 0.01 else 8
        if not np.isfinite(out.get()).all():
            raise AssertionError(f"the {name} kernel produced non-finite values")
        flops = 2.0 * lanes * iterations * work_items
        if flops / seconds > best.get("flops", 0) / best.get("seconds", 1):
            best = {"flops": flops, "seconds": seconds, "gflops": flops / seconds / 1e9, "kernel": name}
    return best


def measure_latency(device, launches: int = 200) -> dict[str, Any]:
    """Wall time from launching an empty kernel to its completion, median over many launches."""
    import xgpu
    from xgpu.kernels.bench import TEMPLATE, defines

    program = xgpu.compile(TEMPLATE, device, defines=defines("float32"))
    out = xgpu.empty(1, np.float32, device)
    program.noop(out, global_size=1).wait()
    times = []
    for _ in range(launches):
        start = time.perf_counter()
        program.noop(out, global_size=1).wait()
        times.append(time.perf_counter() - start)
    return {"us": float(np.median(times)) * 1e6, "launches": launches}


def measure_gemm(device, n: int = GEMM_N) -> dict[str, Any]:
    import xgpu

    a, b = (xgpu.asarray(m, device) for m in gemm_operands(n, "float32"))
    c = xgpu.empty((n, n), np.float32, device)

    def run():
        xgpu.gemm(a, b, c)
        device.synchronize()

    seconds = median_time(run, repeats=3)
    flops = 2.0 * n**3
    return {"shape": f"{n}x{n}x{n} float32", "gflops": flops / seconds / 1e9,
            "intensity": flops / (3 * n * n * 4)}


def measure_conv2d(device) -> dict[str, Any]:
    import xgpu

    name, _n, _c, _h, _w, _k, _r, _s, stride, pad, groups = CONV_LAYER
    x, wt = conv_operands(CONV_LAYER, "float32")
    dx, dw = xgpu.asarray(x, device), xgpu.asarray(wt, device)
    out: list[Any] = []

    def run():
        out[:] = [xgpu.conv2d(dx, dw, stride=stride, padding=pad, groups=groups)]
        device.synchronize()

    seconds = median_time(run, repeats=3)
    flops = conv_flops(CONV_LAYER)
    bytes_moved = x.nbytes + wt.nbytes + out[0].nbytes
    return {"shape": f"{name} float32", "gflops": flops / seconds / 1e9, "intensity": flops / bytes_moved}


def peaks(device) -> dict[str, float | None]:
    """Peak figures the backend could estimate from the driver's numbers (``extra`` keys), or None."""
    extra = device.extra
    return {"gbps": extra.get("peak_gbps"), "float32": extra.get("peak_gflops_float32"),
            "float64": extra.get("peak_gflops_float64")}


def bench_device(device, progress=None) -> dict[str, Any]:
    """Every figure for one device; a figure that could not be measured holds its error instead."""
    row: dict[str, Any] = {"device": device.id, "name": device.name, "platform": device.platform,
                           "type": device.type, "driver_version": device.driver_version, "peaks": peaks(device)}
    if device.is_simulator:
        row["excluded"] = ("a simulator: it runs kernels thousands of times slower than hardware, so its "
                           "timings say nothing about any device")
        return row
    steps = [("bandwidth", lambda: measure_bandwidth(device)),
             ("float32", lambda: measure_fma(device, "float32"))]
    if device.fp64:
        steps.append(("float64", lambda: measure_fma(device, "float64")))
    else:
        row["float64"] = {"skipped": "no float64 on this device"}
    row["float16"] = {"skipped": "xgpu kernels store float16 and compute in float32: the float32 ceiling applies"}
    steps += [("latency", lambda: measure_latency(device)), ("gemm", lambda: measure_gemm(device)),
              ("conv2d", lambda: measure_conv2d(device))]
    for name, run in steps:
        if progress:
            progress(f"{device.id}: {name}")
        try:
            row[name] = run()
        except Exception as exc:  # one failing figure must not hide the others
            row[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    for key, peak_key, value_key in (("bandwidth", "gbps", "gbps"), ("float32", "float32", "gflops"),
                                     ("float64", "float64", "gflops")):
        peak = row["peaks"].get(peak_key)
        if peak and value_key in row.get(key, {}):
            row[key]["fraction_of_peak"] = row[key][value_key] / peak
    return row


def cell(row: dict[str, Any], key: str, value_key: str, fmt: str) -> str:
    item = row.get(key)
    if row.get("excluded"):
        return "excluded"
    if not item:
        return "-"
    if "error" in item:
        return "error"
    if "skipped" in item:
        return "n/a"
    text = format(item[value_key], fmt)
    if "fraction_of_peak" in item:
        text += f" ({item['fraction_of_peak']:.0%} of peak)"
    return text


def roofline(rows: list[dict[str, Any]], path: str) -> None:
    """One roofline chart per measured device: the measured bandwidth and compute ceilings, the
    driver's peaks where known, and the library's GEMM and conv2d as points."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise InvalidArgumentError(f"--plot needs matplotlib ({exc}): pip install 'xgpu[plot]'") from None
    measured = [r for r in rows if "gbps" in r.get("bandwidth", {}) and "gflops" in r.get("float32", {})]
    if not measured:
        raise InvalidArgumentError("no device has both a bandwidth and a compute figure to draw a roofline from")
    fig, axes = plt.subplots(1, len(measured), figsize=(6.5 * len(measured), 5.2), squeeze=False)
    ai = np.logspace(-2, 3, 200)
    for ax, row in zip(axes[0], measured):
        bw = row["bandwidth"]["gbps"]
        for key, style in (("float32", "-"), ("float64", "--")):
            if "gflops" not in row.get(key, {}):
                continue
            top = row[key]["gflops"]
            ax.loglog(ai, np.minimum(top, bw * ai), style, color="tab:blue" if key == "float32" else "tab:gray",
                      label=f"measured {key}: {top:.0f} GF/s, {bw:.0f} GB/s")
        peak = row["peaks"]
        if peak.get("float32") and peak.get("gbps"):
            ax.loglog(ai, np.minimum(peak["float32"], peak["gbps"] * ai), ":", color="black",
                      label=f"driver peak: {peak['float32']:.0f} GF/s, {peak['gbps']:.0f} GB/s")
        for key, marker, color in (("gemm", "o", "tab:red"), ("conv2d", "s", "tab:green")):
            item = row.get(key, {})
            if "gflops" in item:
                ax.loglog([item["intensity"]], [item["gflops"]], marker, color=color, markersize=9,
                          label=f"{key} {item['shape']}: {item['gflops']:.0f} GF/s")
        ax.set_title(f"{row['device']}: {row['name']}\n{row['platform']}", fontsize=10)
        ax.set_xlabel("arithmetic intensity (FLOP per byte of memory traffic)")
        ax.set_ylabel("GF/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        ymax = max(row["float32"]["gflops"], *(r.get("gflops", 0) for r in (row.get("gemm", {}), row.get("conv2d", {}))))
        ax.set_ylim(bottom=max(bw * 0.01, 0.1), top=10 ** math.ceil(math.log10(ymax * 1.5)))
    fig.suptitle("xgpu roofline: measured ceilings and the library's kernels")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
