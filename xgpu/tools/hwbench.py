"""``xgpu bench device``: measured hardware figures (bandwidth, FMA ceilings, float16 and int8 arithmetic
ceilings, launch latency, the library's GEMM and conv2d) per device beside the model's published peaks
(:mod:`xgpu.tools.peaks`), a comparison table, and a roofline chart."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from xgpu.errors import InvalidArgumentError
from xgpu.tools import peaks as _peaks
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


def half_arithmetic(device) -> bool:
    """Whether the float16 ceiling computes in float16: the device lists cl_khr_fp16 among its extensions."""
    return "cl_khr_fp16" in device.extra.get("extensions", ())


def integer_dot_product(device) -> bool:
    """Whether the int8 ceiling may use the packed dot-product builtin: the device lists
    cl_khr_integer_dot_product and compiles OpenCL C 3.0 (where the builtins are declared)."""
    return ("cl_khr_integer_dot_product" in device.extra.get("extensions", ())
            and str(device.extra.get("opencl_version", "")).startswith("OpenCL 3"))


def _lowp_program(device) -> tuple[Any, bool]:
    """The float16/int8 ceilings' program for ``device``, and whether it uses the dot-product builtin
    (a compiler that refuses the builtin gets the portable form instead)."""
    import xgpu
    from xgpu.errors import CompileError
    from xgpu.kernels.bench import LOWP, lowp_defines

    half = half_arithmetic(device)
    if integer_dot_product(device):
        try:  # the extension's builtins are declared for OpenCL C 3.0 (the default language version is 1.2)
            return xgpu.compile(LOWP, device, defines=lowp_defines(half, "builtin"), options=["-cl-std=CL3.0"]), True
        except CompileError:
            pass
    return xgpu.compile(LOWP, device, defines=lowp_defines(half, "portable")), False


def _timed_chains(launch, target_s: float) -> tuple[int, float]:
    """(iterations, seconds): iterations grow until one launch takes ``target_s`` of device time."""
    iterations = 64
    while True:
        seconds = _event_seconds(lambda it=iterations: launch(it), repeats=3)
        if seconds > target_s or iterations >= 2**16:
            return iterations, seconds
        iterations *= 2 if seconds > target_s / 5 else 8


def half_reference(work_items: int, chains: int, a: float, b: float, iterations: int) -> np.ndarray:
    """What ``half_peak`` computes, in float64."""
    gid = np.arange(work_items)
    total = np.zeros(work_items)
    for c in range(chains):
        x = ((gid + c) % 1024) * 1e-4
        for _ in range(iterations):
            x = x * a + b
        total += x
    return total


def dot4_reference(x: np.ndarray, w: int, b: int) -> np.ndarray:
    """b + the dot product of the four signed bytes of each x with those of w (what ``bench_dot4`` does)."""
    xb = x.astype("<i4").view(np.int8).reshape(-1, 4).astype(np.int64)
    wb = np.array([w], "<i4").view(np.int8).astype(np.int64)
    return (b + xb @ wb).astype(np.int32)


def int8_reference(work_items: int, chains: int, w: int, b: int, iterations: int) -> np.ndarray:
    """What ``int8_peak`` computes."""
    gid = np.arange(work_items, dtype=np.int64)
    total = np.zeros(work_items, np.int64)
    for c in range(chains):
        x = (((gid + c) % 4096) * 40503).astype(np.int32)
        for _ in range(iterations):
            x = dot4_reference(x, w, b)
        total += x
    return total.astype(np.int32)


HALF_A, HALF_B = 0.999, 1e-3
INT8_W, INT8_B = 0x03FD02FF, 7  # the bytes -1, 2, -3, 3 (lowest first)


def _chain_ceiling(device, dtype: Any, kernel: str, args: tuple[Any, ...], check_iterations: int,
                   check: Any, work_items: int | None, target_s: float) -> tuple[Any, int, float, int]:
    """Run ``kernel`` (lowp.mako) once for ``check_iterations`` and ``check(out)`` its values, then time it
    (_timed_chains); returns (out, iterations, seconds, work-items)."""
    import xgpu

    program, _dot = _lowp_program(device)
    n = work_items or max(device.compute_units * 2048, 65536)
    out = xgpu.empty(n, dtype, device)

    def launch(iterations):
        return program.kernel(kernel)(out, *args, np.int32(iterations), global_size=n)

    launch(check_iterations).wait()
    check(out)
    iterations, seconds = _timed_chains(launch, target_s)
    return out, iterations, seconds, n


def measure_float16(device, work_items: int | None = None, target_s: float = 0.05) -> dict[str, Any]:
    """The float16 ceiling: independent multiply-add chains in float16 where the device lists cl_khr_fp16;
    elsewhere float16 storage with the chains computed in float32 (what xgpu's kernels do there).
    The kernel's results are first checked against float64 on a short run."""
    from xgpu.kernels.bench import CHAINS

    def check(out):
        want = half_reference(min(out.size, 4096), CHAINS, HALF_A, HALF_B, 37)
        got = out.get()[: len(want)].astype(np.float64)
        if not np.allclose(got, want, rtol=2e-2, atol=0.05):
            raise AssertionError(f"the half_peak kernel computed wrong values (largest error {np.abs(got - want).max():.3g})")

    out, iterations, seconds, n = _chain_ceiling(device, np.float16, "half_peak", (np.float32(HALF_A), np.float32(HALF_B)),
                                                 37, check, work_items, target_s)
    if not np.isfinite(out.get()).all():
        raise AssertionError("the half_peak kernel produced non-finite values")
    flops = 2.0 * CHAINS * iterations * n
    return {"flops": flops, "seconds": seconds, "gflops": flops / seconds / 1e9, "kernel": "half_peak",
            "arithmetic": "float16" if half_arithmetic(device) else "float32 (float16 storage)"}


def measure_int8(device, work_items: int | None = None, target_s: float = 0.05) -> dict[str, Any]:
    """The int8 ceiling: chains of packed 4 x int8 dot products with accumulation (8 operations each), by
    cl_khr_integer_dot_product's builtin where the device lists it, else spelt out in 32-bit integer
    arithmetic. The kernel's results are first checked exactly on a short run."""
    from xgpu.kernels.bench import CHAINS

    def check(out):
        want = int8_reference(min(out.size, 4096), CHAINS, INT8_W, INT8_B, 5)
        if not np.array_equal(out.get()[: len(want)], want):
            raise AssertionError("the int8_peak kernel computed wrong values")

    _out, iterations, seconds, n = _chain_ceiling(device, np.int32, "int8_peak", (np.int32(INT8_W), np.int32(INT8_B)),
                                                  5, check, work_items, target_s)
    ops = 8.0 * CHAINS * iterations * n
    _program, dot = _lowp_program(device)
    return {"ops": ops, "seconds": seconds, "gops": ops / seconds / 1e9, "kernel": "int8_peak",
            "method": "cl_khr_integer_dot_product" if dot else "4 x int8 dot product in 32-bit integer arithmetic"}


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


def _scaled(value: float | None, factor: float) -> float | None:
    return value * factor if value else None


def published_peaks(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A row of the published figures in the bench's units (GB/s, GF/s, GOPS), with its model and source."""
    if row is None:
        return None
    return {"model": row["model"], "vendor": row["vendor"], "source": row["source"],
            "gbps": row["bandwidth_gbps"], "float32": _scaled(row["fp32_tflops"], 1e3),
            "float16": _scaled(row["fp16_tflops"], 1e3), "float16_tensor": _scaled(row["fp16_tensor_tflops"], 1e3),
            "bfloat16_tensor": _scaled(row["bf16_tensor_tflops"], 1e3), "int8_tensor": _scaled(row["int8_tops"], 1e3),
            "memory_gb": row["memory_gb"], "compute_units": row["compute_units"], "unit_kind": row["unit_kind"],
            "boost_clock_mhz": row["boost_clock_mhz"]}


#: figure -> (the key of its value, the peaks it is a fraction of: driver's first, then published)
FRACTIONS = {
    "bandwidth": ("gbps", "gbps"),
    "float32": ("gflops", "float32"),
    "float64": ("gflops", "float64"),
    "float16": ("gflops", "float16"),
    "int8": ("gops", "int8_tensor"),
}


def add_fractions(row: dict[str, Any]) -> None:
    """Each measured figure as a fraction of the peak it compares with: the driver's estimate where the
    backend gives one, else the model's published figure. float16 computed in float32 compares with the
    float32 peak; int8 with the published tensor/matrix figure (the bench's kernel uses no tensor units)."""
    published = row.get("published") or {}
    for key, (value_key, peak_key) in FRACTIONS.items():
        item = row.get(key)
        if not isinstance(item, dict) or value_key not in item:
            continue
        if key == "float16" and item.get("arithmetic") != "float16":
            peak_key = "float32"
        peak, source = row["peaks"].get(peak_key), "driver"
        if not peak:
            peak, source = published.get(peak_key), "published"
        if peak:
            item["fraction_of_peak"] = item[value_key] / peak
            item["peak"] = peak
            item["peak_source"] = source


def bench_device(device, progress=None) -> dict[str, Any]:
    """Every figure for one device; a figure that could not be measured holds its error instead."""
    from xgpu.tools.parity import machine_info

    row: dict[str, Any] = {"device": device.id, "name": device.name, "platform": device.platform,
                           "type": device.type, "driver_version": device.driver_version,
                           "host": machine_info()["hostname"], "compute_units": device.compute_units,
                           "global_mem_bytes": device.global_mem_bytes, "peaks": peaks(device),
                           "published": published_peaks(_peaks.match_device(device))}
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
    steps += [("float16", lambda: measure_float16(device)), ("int8", lambda: measure_int8(device)),
              ("latency", lambda: measure_latency(device)), ("gemm", lambda: measure_gemm(device)),
              ("conv2d", lambda: measure_conv2d(device))]
    for name, run in steps:
        if progress:
            progress(f"{device.id}: {name}")
        try:
            row[name] = run()
        except Exception as exc:  # one failing figure must not hide the others
            row[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    add_fractions(row)
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
        published = " published" if item.get("peak_source") == "published" else ""
        text += f" ({item['fraction_of_peak']:.0%} of{published} peak)"
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
        for peak, what in ((row["peaks"], "driver peak"), (row.get("published") or {}, "published peak")):
            if peak.get("float32") and peak.get("gbps"):
                ax.loglog(ai, np.minimum(peak["float32"], peak["gbps"] * ai), ":", color="black",
                          label=f"{what}: {peak['float32']:.0f} GF/s, {peak['gbps']:.0f} GB/s")
                break
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


def load_bench_reports(paths: list[str]) -> list[dict[str, Any]]:
    """The rows of several ``xgpu bench device --json`` reports, in order; a device measured twice on one
    host keeps its last report's row. A file that is not such a report is refused, naming it."""
    import json
    from pathlib import Path

    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidArgumentError(f"{path}: no such file (write one with `xgpu bench device --all --json > FILE`)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidArgumentError(f"{path}: not a JSON report of `xgpu bench device --json` ({exc})") from None
        rows = data if isinstance(data, list) else [data]
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("device"), str) or "name" not in row:
                raise InvalidArgumentError(f"{path}: not a report of `xgpu bench device --json` (each entry needs "
                                           "'device' and 'name'); write one with `xgpu bench device --all --json > FILE`")
            row = dict(row)
            row.setdefault("host", Path(path).stem)  # reports from before hosts were recorded
            row.setdefault("peaks", {})
            if "published" not in row:  # match again by the name in the report
                row["published"] = published_peaks(_peaks.match(
                    row["name"], type=row.get("type", "gpu"), memory_bytes=row.get("global_mem_bytes")))
            add_fractions(row)
            merged[(row["host"], row["device"])] = row
    return list(merged.values())


def _figure(value: float | None, unit: float = 1.0) -> str:
    if not value:
        return "-"
    value /= unit
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def published_text(published: dict[str, Any] | None, device_type: str = "gpu", simulator: bool = False) -> str:
    """The published peaks in one short line: model, FP32, FP16 vector / tensor, BF16 and INT8 tensor, GB/s."""
    if not published:
        why = "a simulator" if simulator else "a CPU" if device_type == "cpu" else "the model is not in the table"
        return f"no published figures ({why})"
    tf = lambda key: _figure(published.get(key), 1e3)  # noqa: E731  (GF/s to TF/s)
    return (f"{published['vendor']} {published['model']}: FP32 {tf('float32')}, FP16 {tf('float16')} / "
            f"{tf('float16_tensor')}, BF16 {tf('bfloat16_tensor')}, INT8 {tf('int8_tensor')} TOPS, "
            f"{_figure(published.get('gbps'))} GB/s")


def compare_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Columns and cells of the side-by-side view (``xgpu compare``): measured figures with their
    fraction of peak, then the published peaks of the matched model (TF/s; FP16 vector / tensor)."""
    columns = ["device", "host", "float32 GF/s", "float16 GF/s", "int8 GOPS", "copy GB/s", "published peaks (TF/s)"]
    cells = []
    for r in rows:
        float16 = cell(r, "float16", "gflops", ".1f")
        if r.get("float16", {}).get("arithmetic") == "float32 (float16 storage)":
            float16 += " (float32 math)"
        cells.append([
            f"{r['device']} {r['name']}", r["host"], cell(r, "float32", "gflops", ".1f"), float16,
            cell(r, "int8", "gops", ".1f"), cell(r, "bandwidth", "gbps", ".1f"),
            published_text(r.get("published"), r.get("type", "gpu"), bool(r.get("excluded"))),
        ])
    return columns, cells


def markdown_table(columns: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return "\n".join(lines) + "\n"
