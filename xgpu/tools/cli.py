"""The ``xgpu`` command: ``devices``, ``plugins``, ``render``, ``compile``, ``bench``, ``compare``, ``parity``,
``cache``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape

from xgpu import _devices, _plugins, _program
from xgpu.errors import InvalidArgumentError, UnsupportedDtypeError, XgpuError
from xgpu.template import parse_define
from xgpu.tools import cluster_cli
from xgpu.tools.output import Table, _check_writable, _print_matrix, _write_atomic, _write_outputs


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a size, a batch), else a usage error naming it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a size: give a whole number of at least 1")
    return value


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _defines(items: list[str] | None) -> dict[str, Any]:
    return dict(parse_define(item) for item in items or [])


def cmd_devices(args: argparse.Namespace, console: Console) -> int:
    devs = _devices.devices()
    if args.peaks:
        return cmd_devices_peaks(devs, args, console)
    status = _devices.list_backends()
    try:
        default, why = _devices.default_device_reason()
    except XgpuError as exc:
        default, why = None, str(exc).splitlines()[0]
    if args.json:
        payload = {
            "devices": [{**d.as_dict(), "default": d is default} for d in devs],
            "default": {"id": default.id if default else None, "reason": why},
            "backends": {name: s.as_dict() for name, s in status.items()},
        }
        print(json.dumps(payload, indent=2))
        return 0
    # by default what tells devices apart, in 80 columns: the device's name over its platform in the one
    # column that wraps; --wide adds every other column (the text columns wrap to fit the width)
    wide = getattr(args, "wide", False)
    text_cols = ("name", "vendor / platform", "driver") if wide else ("name / platform",)
    cols = ["id", *text_cols[:2], "type", "CUs", "memory"]
    cols += ["clock", "local mem", "max WG", "fp64", "fp16", "driver"] if wide else ["fp64", "fp16"]
    rows = []
    for d in devs:
        fp16 = "compute" if d.fp16_arithmetic else ("storage" if d.fp16_storage else "no")
        sim = " (simulator)" if d.is_simulator else ""
        row = {"id": d.id + (" *" if d is default else ""), "name": d.name + sim,
               "vendor / platform": f"{d.vendor} / {d.platform}", "name / platform": f"{d.name}{sim}\n{d.platform}",
               "type": d.type, "CUs": str(d.compute_units), "memory": _size(d.global_mem_bytes),
               "clock": f"{d.clock_mhz} MHz" if d.clock_mhz else "?", "local mem": _size(d.local_mem_bytes),
               "max WG": str(d.max_work_group_size), "fp64": "yes" if d.fp64 else "no", "fp16": fp16,
               "driver": d.driver_version}
        rows.append([row[c] for c in cols])
    # the short columns keep their width; the text columns share what is left of the console's width
    # (each at least 10), in proportion to their longest line
    longest = [max([len(line) for r in rows for line in r[i].split("\n")] + [len(col)]) for i, col in enumerate(cols)]
    fixed = sum(w for w, c in zip(longest, cols) if c not in text_cols)
    left = console.width - fixed - 3 * len(cols) - 1  # each column: its padding and a divider
    text_total = sum(w for w, c in zip(longest, cols) if c in text_cols)
    table = Table(title="xgpu devices", title_justify="left", box=box.SIMPLE_HEAD)
    for width, col in zip(longest, cols):
        if col in text_cols and text_total > left:
            width = max(10, left * width // text_total)
        table.add_column(col, width=width,
                         justify="right" if col in ("CUs", "memory", "clock", "local mem", "max WG") else "left")
    for r in rows:
        table.add_row(*(escape(c) for c in r))
    console.print(table)
    if not wide:
        console.print("more columns: xgpu devices --wide", style="dim", highlight=False)
    if default is not None:
        console.print(f"* default device: {default.id} ({why})", markup=False)
    else:
        console.print(f"no default device: {why}", markup=False)
    unavailable = [s for s in status.values() if not s.available]
    if unavailable:
        console.print("\nUnavailable backends:")
        for s in unavailable:
            console.print(f"  {s.name}: {s.reason}", highlight=False, markup=False)
    return 0


def cmd_plugins(args: argparse.Namespace, console: Console) -> int:
    _run_registration_hooks()
    rows = _plugins.plugin_table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="xgpu plugins", title_justify="left")
    for col in ("name", "package", "version", "status", "hooks"):
        table.add_column(col, overflow="fold")
    for row in rows:
        status = "ok" if row["status"] == "ok" else f"broken: {row['reason']}"
        hooks = row["hooks"]
        table.add_row(str(row["name"]), str(row["package"]), str(row["version"]), status,
                      ", ".join(hooks) if isinstance(hooks, list) else str(hooks))
    console.print(table)
    blocked = sorted(_plugins.disabled_plugins())
    if blocked:
        console.print(f"disabled by {_plugins.DISABLE_ENV}: {', '.join(blocked)}")
    return 0


def _run_registration_hooks() -> None:
    """Call every plugin's registration hooks once, so that a plugin whose hook raises or registers
    something invalid is listed as broken (not only once something asks for its backends or cases)."""
    from xgpu.hookspecs import CaseRegistry, PeerRegistry, TargetRegistry, TunableRegistry

    _plugins.collect_backends()
    for hook, registry in (("xgpu_register_parity_cases", CaseRegistry()), ("xgpu_register_bench_peers",
                           PeerRegistry()), ("xgpu_register_tunables", TunableRegistry()),
                           ("xgpu_register_targets", TargetRegistry())):
        _plugins.call_each(hook, registry)


def cmd_render(args: argparse.Namespace, console: Console) -> int:
    rendered = _program.render(args.file, args.backend, _defines(args.define))
    sys.stdout.write(rendered.text + "\n")
    return 0


def cmd_compile(args: argparse.Namespace, console: Console) -> int:
    defines = _defines(args.define)
    if args.device:
        program = _program.compile(args.file, args.device, defines=defines, options=args.option or ())
        console.print(f"compiled {args.file} for {program.device.id} ({program.device.name}): ok")
        if program.build_log:
            console.print(program.build_log, highlight=False, markup=False)
        return 0
    wanted = list(args.target or []) + ([args.arch] if args.arch else [])
    if wanted == ["all"]:
        wanted = [t.name for t in _program.offline_targets().values()
                  if t.available and (args.backend is None or t.backend == args.backend)]
    failed = 0
    for target in wanted or [None]:
        found = _program.resolve_target(target, args.backend)
        try:
            build = _program.compile_offline(args.file, found.backend, found.name, defines=defines,
                                             options=args.option or ())
        except XgpuError as exc:
            if len(wanted) < 2:
                raise
            failed += 1  # one target's failure (float64 on a GPU without it, say) does not hide the others
            console.print(f"{found.name}: failed: {exc}", highlight=False, markup=False)
            continue
        console.print(f"compiled {args.file} for {found.name} ({found.toolchain}): ok ({len(build.binary)} bytes)",
                      highlight=False)
        for kernel, res in build.resources.items():
            common = ("registers", "shared_bytes", "spill_bytes")
            vendor = ", ".join(f"{k}={v}" for k, v in res.items() if k not in common)  # vendor keys (docs/offline.md)
            console.print(
                f"  {kernel}: {res['registers']} registers, {res['shared_bytes']} bytes shared memory, "
                f"{res['spill_bytes']} bytes spilled" + (f"; {vendor}" if vendor else ""), highlight=False
            )
        if build.log:
            console.print(build.log, highlight=False, markup=False)
    return 1 if failed else 0


def cmd_targets(args: argparse.Namespace, console: Console) -> int:
    targets = sorted(_program.offline_targets().values(), key=lambda t: (t.backend, t.name))
    if args.json:
        print(json.dumps([{**t.__dict__, "arch": t.arch} for t in targets], indent=2))
        return 0
    table = Table(title="offline compile targets", title_justify="left")
    for col in ("target", "backend", "toolchain", "status"):
        table.add_column(col, overflow="fold")
    for t in targets:
        status = ("available" if t.available else f"unavailable: {t.reason}") + (" (default)" if t.default else "")
        table.add_row(t.name, t.backend, t.toolchain, status)
    console.print(table)
    return 0


def _with_progress(work):
    """Run ``work(report)`` behind a spinner on stderr; ``report(text)`` says what runs now."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("starting", total=None)
        return work(lambda text: progress.update(task, description=text))


def cmd_bench_conv(args: argparse.Namespace, console: Console) -> int:
    from xgpu.tools import bench as _bench

    if args.network:
        return cmd_sweep(args, console, "conv2d")
    device = _devices.get_device(args.device)
    dtype = str(np.dtype(args.dtype))
    rows = _with_progress(lambda report: _bench.bench_conv2d(device, dtype, report, quick=args.quick))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"conv2d {dtype}, NCHW, on {device.id} {device.name} ({device.platform})", title_justify="left")
    for col in ("layer", "GFLOP", "xgpu GF/s", "torch GF/s", "numpy GF/s", "xgpu / torch", "xgpu / numpy",
                "kernel", "NHWC GF/s", "GEMM GF/s", "NHWC / GEMM"):
        table.add_column(col, justify="left" if col in ("layer", "kernel") else "right")

    def gf(r, key="gflops"):
        return f"{r[key]:.1f}" if key in r else "-"

    def ratio(a, b, ka="gflops", kb="gflops"):
        return f"{a[ka] / b[kb]:.2f}x" if ka in a and kb in b else "-"

    for row in rows:
        ours = row["xgpu"]
        table.add_row(row["layer"], f"{row['gflop']:.2f}", gf(ours), gf(row["torch"]), gf(row["numpy"]),
                      ratio(ours, row["torch"]), ratio(ours, row["numpy"]), ours.get("variant", ours.get("error", "")),
                      gf(ours, "nhwc_gflops"), gf(ours, "gemm_gflops"), ratio(ours, ours, "nhwc_gflops", "gemm_gflops"))
    console.print(table)
    for row in rows:
        for kind in ("xgpu", "torch", "numpy"):
            if "error" in row[kind]:
                console.print(f"  {kind} on {row['layer']}: not measured: {row[kind]['error']}", markup=False)
    worst = max((r["xgpu"].get("err", 0) for r in rows), default=0)
    console.print(f"  xgpu's worst relative error against a float64 im2col reference: {worst:.1e}; NHWC / GEMM: "
                  "the layer in NHWC (no layout change; on CPUs the padding is still copied in) against xgpu's GEMM "
                  "on the same matrix product",
                  highlight=False)
    return 0


def cmd_sweep(args: argparse.Namespace, console: Console, kind: str) -> int:
    """``bench gemm --sweep`` and ``bench conv2d --network``: per-shape table, geometric mean, a figure."""
    from xgpu.tools import sweep

    _check_writable(args.plot)
    device = _devices.get_device(args.device)
    if device.is_simulator:
        raise InvalidArgumentError(f"{device.id} ({device.name}) is a simulator: its timings say nothing about "
                                   "hardware; pick a real device (--device SPEC)")
    if kind == "gemm":
        dtypes: tuple[str, ...] = (str(np.dtype(args.dtype)),) if args.dtype else ("float32", "float64")
        dtypes = tuple(d for d in dtypes if device.supports(d)) or dtypes
        items: list = sweep.gemm_shapes(dtypes)
        layout = ""
    else:
        if any(b < 1 for b in args.batch or ()):
            raise InvalidArgumentError(f"--batch must be at least 1, got {args.batch}")
        items = sweep.conv_layers(args.network, tuple(args.batch or (1, 8)))
        layout = args.layout
    result = _with_progress(lambda report: sweep.sweep(kind, device, items, layout or "NCHW", rounds=args.rounds,
                                                       progress=report))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        peer = result["peer"]
        table = Table(title=f"{kind} sweep on {device.id} ({device.name}){' ' + layout if layout else ''}: "
                            f"xgpu beside {peer}, each in its own process, "
                            + ("the median of one round" if args.rounds == 1 else f"best of {args.rounds} medians"),
                      title_justify="left")
        for col in ("shape", "xgpu GF/s", f"{peer} GF/s", "ratio", ""):
            table.add_column(col, overflow="fold", justify="left" if col == "shape" else "right")
        for r in result["rows"]:
            table.add_row(r["shape"], f"{r['xgpu_gflops']:.1f}", f"{r[peer + '_gflops']:.1f}", f"{r['ratio']:.2f}",
                          "launch-bound" if r["launch_bound"] else "")
        console.print(table)
        worst = result["worst"]
        console.print(f"geometric mean xgpu/{peer}: {result['geomean']:.2f} over the shapes that are not "
                      f"launch-bound ({result['geomean_all']:.2f} over all); worst "
                      f"{worst['ratio']:.2f} ({worst['shape']}); launch latency "
                      f"{result['launch_latency_s'] * 1e6:.1f} us", highlight=False)
    if args.plot:
        sweep.plot([result], args.plot)
        console.print(f"figure: {args.plot}", highlight=False)
    return 0


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from xgpu.tools import bench as _bench

    if args.sweep:
        return cmd_sweep(args, console, "gemm")
    device = _devices.get_device(args.device)
    dtype = str(np.dtype(args.dtype or "float32"))
    if args.skinny:
        return cmd_bench_skinny(args, console, device, dtype)
    sizes = args.sizes or list(_bench.GEMM_SIZES)
    if any(n < 1 for n in sizes):
        raise InvalidArgumentError(f"sizes must be at least 1, got {sizes}")
    rows = _with_progress(lambda report: _bench.bench_gemm(device, sizes, dtype, report))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    contenders = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    table = Table(title=f"GEMM {dtype}, C = A @ B (n x n), on {device.id} {device.name} ({device.platform})",
                  title_justify="left")
    table.add_column("n", justify="right")
    for name in contenders:
        table.add_column(f"{name} GF/s", justify="right")
    for name in contenders[1:]:
        table.add_column(f"xgpu / {name}", justify="right")
    for row in rows:
        ours = row["xgpu"].get("gflops")
        cells = [str(row["n"])]
        cells += [f"{row[c]['gflops']:.1f}" if "gflops" in row[c] else "-" for c in contenders]
        cells += [f"{ours / row[c]['gflops']:.2f}x" if ours and "gflops" in row[c] else "-" for c in contenders[1:]]
        table.add_row(*cells)
    console.print(table)
    notes = {}
    for row in rows:
        for c in contenders:
            r = row[c]
            if "error" in r:
                notes[c] = f"{c}: not measured: {r['error']}"
            elif c not in notes:
                notes[c] = f"{c}: {r.get('variant') or 'default'}; max relative error {r['err']:.1e} at n={row['n']}"
    for line in notes.values():
        console.print("  " + line, highlight=False, markup=False)
    console.print(f"  numpy ran with {', '.join(_bench.OPENBLAS_VARS)} unset (OpenBLAS's native kernels); "
                  "each contender in its own process, median of 5 runs after a warm-up", highlight=False)
    return 0


def cmd_bench_skinny(args: argparse.Namespace, console: Console, device: Any, dtype: str) -> int:
    """``bench gemm --skinny``: x @ W.T with 1-8 rows, in --dtype beside float32 on the same device."""
    from xgpu.tools import bench as _bench

    if device.is_simulator:
        raise InvalidArgumentError(f"{device.id} ({device.name}) is a simulator: its timings say nothing about "
                                   "hardware; pick a real device (--device SPEC)")
    sizes = args.sizes or [4096]
    if len(sizes) != 1 or sizes[0] < 1:
        raise InvalidArgumentError(f"--skinny takes one size (N = K), got {sizes}")
    rows = _with_progress(lambda report: _bench.bench_skinny(device, dtype, sizes[0], repeats=args.repeats,
                                                             progress=report))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"GEMM x @ W.T, W {sizes[0]} x {sizes[0]}, {dtype} beside float32, on {device.id} "
                        f"{device.name} ({device.platform})", title_justify="left")
    for col in ("M", f"{dtype} us", "float32 us", f"{dtype} weights GB/s", "float32 weights GB/s",
                f"{dtype} / float32 speed", f"{dtype} max rel err"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["m"]), f"{r[dtype]['seconds'] * 1e6:.0f}", f"{r['float32']['seconds'] * 1e6:.0f}",
                      f"{r[dtype]['weights_gbps']:.1f}", f"{r['float32']['weights_gbps']:.1f}", f"{r['speedup']:.2f}x",
                      f"{r[dtype]['err']:.1e}")
    console.print(table)
    console.print(f"  median of {args.repeats} runs of each after a warm-up, the two dtypes alternating",
                  highlight=False)
    return 0


def cmd_cache(args: argparse.Namespace, console: Console) -> int:
    from xgpu import _cache

    if args.action == "clear":
        report = _cache.clear_report()
        console.print(f"removed {report['removed']} cached binaries from {report['location']}", highlight=False)
        if report["temporary_removed"]:
            console.print(f"removed {report['temporary_removed']} temporary file(s) that killed writers left",
                          highlight=False)
        if report["left"]:
            console.print(f"left {len(report['left'])} file(s) xgpu did not write: {', '.join(report['left'])}",
                          highlight=False, markup=False)
        return 0
    data = _cache.info()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    state = "on" if data["enabled"] else "off (XGPU_CACHE=0)"
    console.print(f"location: {data['location']}\nenabled: {state}\nentries: {data['entries']}\n"
                  f"size: {_size(data['bytes'])} of {_size(data['max_bytes'])} (least recently used evicted past it)",
                  highlight=False, markup=False)
    if data["temporary"]:
        stale = sum(1 for t in data["temporary"] if t["stale"])
        console.print(f"temporary files: {len(data['temporary'])} ({stale} left by killed writers, removed by the "
                      "next write or `xgpu cache clear`)", highlight=False, markup=False)
    if data["foreign"]:
        console.print(f"not xgpu's (never counted or deleted): {', '.join(data['foreign'])}", highlight=False,
                      markup=False)
    return 0


def cmd_bench_cache(args: argparse.Namespace, console: Console) -> int:
    from xgpu.tools import bench as _bench

    device = _devices.get_device(args.device)
    result = _bench.bench_cache(device, args.size)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console.print(f"first GEMM call (n={args.size}, float32) in a new process on {device.id} ({device.name}):",
                  highlight=False)
    console.print(f"  cold cache: {result['cold_s'] * 1e3:.1f} ms\n  warm cache: {result['warm_s'] * 1e3:.1f} ms\n"
                  f"  warm is {result['speedup']:.1f}x faster", highlight=False)
    return 0


def cmd_parity(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from xgpu.tools.parity import (
        collect_cases,
        machine_info,
        merge_reports,
        run_compiles,
        run_parity,
        select_targets,
    )

    if args.scheduler or args.cluster:  # every worker of a Dask cluster (docs/cluster.md)
        from xgpu.tools.cluster_cli import cmd_parity_cluster

        return cmd_parity_cluster(args, console)
    devices = _devices.select_devices(args.device or (), args.backend or (), args.exclude or ())
    if not devices:
        raise InvalidArgumentError("no device selected: see `xgpu devices` for the ids and names to select by")
    cases = collect_cases(quick=args.quick, kernels=args.kernel or (), dtypes=args.dtype or ())
    targets = select_targets(args.targets or ())
    output = Path(args.output or f"parity-{machine_info()['hostname']}.json")
    _check_writable(output, args.html, args.markdown)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("parity", total=len(cases) * len(devices))

        def step(case, device, result):
            progress.update(task, advance=1, description=f"{device.id} {case.kernel} {case.case} {case.dtype}")

        report = run_parity(devices, cases, seed=args.seed, progress=step)
        if targets:  # compile rows: every library variant through every chosen target's compiler
            task = progress.add_task("compiles", total=None)

            def built(name, target, result):
                progress.update(task, advance=1, description=f"{target.name} {name}")

            target_devices, compiles = run_compiles(targets, args.kernel or (), args.dtype or (), args.quick, built)
            report["devices"] += target_devices
            report["results"] += compiles
    _write_atomic(output, json.dumps(report, indent=1))
    matrix = merge_reports([report])
    _print_matrix(matrix, console, f"xgpu parity ({'quick' if args.quick else 'full'} grid)")
    console.print(f"JSON report: {output} (merge reports of several machines: xgpu parity merge A.json B.json)",
                  highlight=False)
    _write_outputs(matrix, args, console)
    return 1 if matrix.counts()["fail"] else 0


def cmd_parity_merge(args: argparse.Namespace, console: Console) -> int:
    from xgpu.tools.parity import load_report, merge_reports

    _check_writable(args.html, args.markdown)
    # a cluster run's file holds a report per worker (docs/cluster.md)
    matrix = merge_reports([r for p in args.reports for r in cluster_cli.reports_in(p, load_report)])
    _print_matrix(matrix, console, f"xgpu parity: {len(args.reports)} report(s) merged")
    _write_outputs(matrix, args, console)
    return 1 if matrix.counts()["fail"] else 0


def cmd_bench_device(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from xgpu.tools import hwbench as hw

    if args.all:
        devices = _devices.devices()
    else:
        devices = [_devices.get_device(args.device)]
    _check_writable(args.plot)
    rows = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=Console(stderr=True),
                  transient=True) as progress:
        task = progress.add_task("measuring")
        for device in devices:
            rows.append(hw.bench_device(device, lambda what: progress.update(task, description=what)))
    if args.plot:
        hw.roofline(rows, args.plot)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="xgpu bench device", title_justify="left")
    for col in ("device", "copy GB/s", "float32 GF/s (FMA)", "float64 GF/s (FMA)", "float16 GF/s", "int8 GOPS",
                "launch µs", f"GEMM {hw.GEMM_N}³ GF/s", "conv2d 3x3 GF/s"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(f"{r['device']} {r['name']} ({r['platform']})"), hw.cell(r, "bandwidth", "gbps", ".1f"),
                      hw.cell(r, "float32", "gflops", ".1f"), hw.cell(r, "float64", "gflops", ".1f"),
                      hw.cell(r, "float16", "gflops", ".1f"), hw.cell(r, "int8", "gops", ".1f"),
                      hw.cell(r, "latency", "us", ".1f"), hw.cell(r, "gemm", "gflops", ".1f"),
                      hw.cell(r, "conv2d", "gflops", ".1f"))
    console.print(table)
    for r in rows:
        if r.get("excluded"):
            console.print(f"{r['device']} excluded from timing: {r['excluded']}", highlight=False)
        for key, item in r.items():
            if isinstance(item, dict) and "error" in item:
                console.print(f"{r['device']} {key}: {item['error']}", highlight=False, markup=False)
        console.print(f"{r['device']}: {_published_line(r['published'], r['type'], bool(r.get('excluded')))}",
                      highlight=False, markup=False)
        if not r.get("excluded") and not any(v for v in r["peaks"].values()) and not r["published"]:
            console.print(f"{r['device']}: no fraction of peak: the driver reports no figures to estimate a peak from "
                          "(memory clock, bus width, FLOP per cycle) and no published figures match it",
                          highlight=False)
        if "arithmetic" in r.get("float16", {}):
            console.print(f"{r['device']}: float16 computed in {r['float16']['arithmetic']}; int8 by "
                          f"{r['int8'].get('method', '-') if isinstance(r.get('int8'), dict) else '-'}",
                          highlight=False, markup=False)
    console.print("copy: 64M floats (less where memory is short) device to device, by a copy kernel and by the "
                  "driver, the faster, counting bytes read and written; FMA: 16 scalar chains or 8 chains of 16-wide "
                  "vectors per work-item, the faster; float16: 16 multiply-add chains per work-item in float16 where "
                  "the device lists cl_khr_fp16, else stored as float16 and computed in float32; int8: 16 chains of "
                  "4 x int8 dot products with accumulation (8 operations each); launch: an empty kernel, launch to "
                  f"completion (median of 200); GEMM: {hw.GEMM_N}³ float32; conv2d: {hw.CONV_LAYER[0]} float32; "
                  "fractions: of the driver's peak where the backend estimates one, else of the published peak "
                  "(int8: of the tensor/matrix units' figure, which this kernel does not use)", highlight=False)
    if args.plot:
        console.print(f"roofline chart: {args.plot}", highlight=False)
    return 0


def _published_line(published: dict[str, Any] | None, device_type: str, simulator: bool = False) -> str:
    """A device's published peaks in one line (xgpu devices --peaks, xgpu bench device)."""
    from xgpu.tools import hwbench as hw

    if not published:
        return hw.published_text(None, device_type, simulator)

    def fig(key: str, unit: str, scale: float = 1e3) -> str:
        value = published.get(key)
        return f"{value / scale:g}{unit}" if value else "-"

    units = f" {published.get('unit_kind') or 'CU'}s"
    return (f"{published['vendor']} {published['model']}: {fig('compute_units', units, 1)}, "
            f"{fig('boost_clock_mhz', ' MHz', 1)}, {fig('memory_gb', ' GB', 1)}, {fig('gbps', ' GB/s', 1)}; "
            f"TF/s: FP32 {fig('float32', '')}, FP16 {fig('float16', '')} vector / {fig('float16_tensor', '')} tensor, "
            f"BF16 {fig('bfloat16_tensor', '')} tensor; INT8 {fig('int8_tensor', ' TOPS')} tensor")


def cmd_devices_peaks(devs: list[Any], args: argparse.Namespace, console: Console) -> int:
    """``xgpu devices --peaks``: each device beside the published figures of the model it is."""
    from xgpu.tools import hwbench as hw
    from xgpu.tools import peaks as _peaks

    found = {d.id: hw.published_peaks(_peaks.match_device(d)) for d in devs}
    if args.json:
        print(json.dumps([{"id": d.id, "name": d.name, "type": d.type, "published": found[d.id]} for d in devs],
                         indent=2))
        return 0
    table = Table(title="xgpu devices: published peaks", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("id", no_wrap=True)
    table.add_column("name", ratio=1)
    table.add_column("published figures", ratio=2)
    for d in devs:
        table.add_row(d.id, escape(d.name), escape(_published_line(found[d.id], d.type, d.is_simulator)))
    console.print(table)
    console.print("figures from the vendors' datasheets (`xgpu devices --peaks --json` gives each row's source); "
                  "tensor figures dense; '-': not published or not known for certain; docs/hardware.md",
                  highlight=False)
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    """``xgpu compare A.json B.json ...``: devices of several machines side by side."""
    from xgpu.tools import hwbench as hw

    _check_writable(args.markdown)
    rows = hw.load_bench_reports(args.reports)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns, cells = hw.compare_table(rows)
    table = Table(title=f"xgpu compare: {len(args.reports)} report(s)", title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in cells:
        table.add_row(*(escape(c) for c in row))
    console.print(table)
    console.print("measured: xgpu bench device (percentages: of the driver's peak, else of the published peak; "
                  "int8 of the tensor/matrix figure); peaks: vendors' datasheets, tensor figures dense",
                  highlight=False)
    if args.markdown:
        _write_atomic(args.markdown, hw.markdown_table(columns, cells))
        console.print(f"Markdown table: {args.markdown}", highlight=False, markup=False)
    return 0


def tunables() -> dict[str, Any]:
    """The kernels ``xgpu tune`` can search, as plugins registered them: name -> factory."""
    from xgpu.hookspecs import TunableRegistry

    return _plugins.call_each("xgpu_register_tunables", TunableRegistry()).factories


def cmd_tune(args: argparse.Namespace, console: Console) -> int:
    from xgpu import tuning
    from xgpu.tools import tune as search

    if args.clear:
        n = tuning.clear()
        console.print(f"forgot {n} tuning result(s) ({tuning.store_path()})", highlight=False)
        return 0
    if args.show or not args.kernel:
        found = tuning.entries()
        if args.json:
            print(json.dumps({"path": str(tuning.store_path()), "entries": found}, indent=2))
            return 0
        table = Table(title=f"tuning results in {tuning.store_path()}", title_justify="left")
        for col in ("kernel", "device", "dtype", "shape class", "variant", "GF/s", "default GF/s", "tuned", "applies"):
            table.add_column(col)
        devices = _devices.devices()
        def num(x: Any) -> str:
            return f"{x:.1f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "?"

        from rich.markup import escape

        for e in found:  # the store's entries are validated; the figures beside them may still be anything
            current = tuning.is_current(e, devices)
            table.add_row(*(escape(str(x)) for x in (
                e["kernel"], f"{e.get('device_id', '?')} {e['device'].get('name', '')}", e["dtype"], e["shape_class"],
                e.get("label", ""), num(e.get("gflops")), num(e.get("default_gflops")), e.get("tuned", ""),
                "yes" if current else "no (other device, driver or xgpu version)")))
        console.print(table)
        if not found:
            console.print("nothing tuned yet: xgpu tune gemm --device SPEC --budget 120", highlight=False)
        return 0
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    known = tunables()
    if args.kernel not in known:
        raise InvalidArgumentError(f"no tunable kernel named {args.kernel!r}; known: {', '.join(sorted(known))}")
    device = _devices.get_device(args.device)
    if device.is_simulator:
        raise InvalidArgumentError(f"{device.id} ({device.name}) is a simulator: its timings say nothing about "
                                   "hardware; tune a real device (--device SPEC)")
    if not device.supports(args.dtype):
        raise UnsupportedDtypeError(f"{device.id} ({device.name}) does not support {args.dtype}")
    if args.budget <= 0:
        raise InvalidArgumentError(f"--budget must be a positive number of seconds, not {args.budget}")
    t = known[args.kernel](device, args.dtype, args.size)
    console.print(f"tuning {t.kernel} on {device.id} ({device.name}), {t.shape}, budget {args.budget:.0f} s; "
                  f"default {t.label(t.default)}", highlight=False)
    lines: list[str] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                  transient=True) as progress:
        task = progress.add_task("measuring the default", total=args.budget)

        def step(label, gflops, why, elapsed):
            text = f"{gflops:8.1f} GF/s  {label}" if gflops is not None else f"{'-':>8}       {label}: {why}"
            lines.append(text)
            progress.console.print(text, highlight=False, markup=False)
            progress.update(task, completed=min(elapsed, args.budget), description=f"{len(lines)} tried, last {label}")

        result = search.tune(t, args.budget, progress=step)
    entry = tuning.record(t.kernel, device, args.dtype, t.shape_class, t.as_dict(result.best),
                            label=t.label(result.best), gflops=round(result.best_gflops, 2),
                            default_label=t.label(result.default), default_gflops=round(result.default_gflops, 2),
                            shape=t.shape, candidates=len(result.tried), seconds=round(result.seconds, 1))
    discarded = sum(1 for _, g, _ in result.tried if g is None)
    console.print(f"\n{len(result.tried)} measurements ({discarded} discarded) in {result.seconds:.1f} s; stopped: "
                  f"{result.stop}", highlight=False)
    console.print(f"default {t.label(result.default)}: {result.default_gflops:.1f} GF/s\n"
                  f"best    {t.label(result.best)}: {result.best_gflops:.1f} GF/s ({result.speedup:.2f}x the default)",
                  highlight=False)
    console.print(f"stored for {device.id}, {entry['dtype']}, {t.shape_class} in {tuning.store_path()}: "
                  "used from now on (xgpu tune --show lists it, --clear forgets it)", highlight=False)
    if args.json:
        print(json.dumps({**entry, "tried": result.tried, "stop": result.stop}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xgpu", description="Write a GPU kernel once, run it everywhere.")
    parser.add_argument("--version", action="store_true", help="print the xgpu version")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("devices", help="list devices, their capabilities and the default")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--wide", action="store_true",
                   help="every column (vendor, clock, local memory, max work-group, driver), not only those that fit 80")
    p.add_argument("--peaks", action="store_true",
                   help="the published peak figures of each device's model (FP32, FP16, BF16, INT8, bandwidth)")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("plugins", help="list loaded plugins with versions and hooks")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("render", help="print a template rendered for a backend (no device needed)")
    p.add_argument("file", help="the .mako template")
    p.add_argument("--backend", help="a registered backend, such as opencl or cuda (default: the default device's)")
    p.add_argument("--define", "-D", action="append", metavar="NAME=VALUE", help="a template variable")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("targets", help="list the offline compile targets the backends offer, with their toolchains")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_targets)

    p = sub.add_parser("compile", help="compile a template for a device, or offline for a target (xgpu targets)")
    p.add_argument("file", help="the .mako template")
    p.add_argument("--device", help="compile on this device (any device spec)")
    p.add_argument("--target", action="append", metavar="VENDOR:ARCH",
                   help="offline target, such as nvidia:sm_90 (repeatable; 'all': every available target; "
                        "default: the default target of --backend or of the first backend that declares one)")
    p.add_argument("--backend", help="offline: the backend whose default target is used")
    p.add_argument("--arch", help="offline: an architecture, the same as --target (sm_90 = nvidia:sm_90)")
    p.add_argument("--define", "-D", action="append", metavar="NAME=VALUE", help="a template variable")
    p.add_argument("--option", action="append", help="a compiler option (repeatable)")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("bench", help="benchmarks against peers measured in the same run")
    bench = p.add_subparsers(dest="what", required=True)
    g = bench.add_parser("gemm", help="GEMM GF/s beside numpy/OpenBLAS, CLBlast and reikna")
    g.add_argument("--device", help="device spec (default: the default device)")
    g.add_argument("--sizes", type=_positive_int, nargs="+", metavar="N", help="matrix sizes (default: 1024 2048)")
    g.add_argument("--dtype", help="float32 (default), float64, float16 or bfloat16 (--sweep: float32 and float64)")
    g.add_argument("--skinny", action="store_true",
                   help="x @ W.T with M = 1, 2, 4, 8 rows and W of --sizes N x N (default 4096), in --dtype beside "
                        "float32 on the same device (the memory-bound GEMM of inference)")
    g.add_argument("--repeats", type=_positive_int, default=25, help="with --skinny: timed runs of each (median)")
    g.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    g.add_argument("--sweep", action="store_true",
                   help="the shapes research code calls (squares 64-4096, transposes, skinny, small K, batched) "
                        "beside numpy (cuBLAS on a CUDA GPU), with the geometric mean")
    g.add_argument("--plot", metavar="FILE.png", help="with --sweep: a figure of the ratios per shape")
    g.add_argument("--rounds", type=_positive_int, default=2, help="with --sweep: rounds each contender runs, "
                   "taking turns (default 2; the best median counts)")
    g.set_defaults(func=cmd_bench)
    cv = bench.add_parser("conv2d", help="conv2d GF/s on ResNet-style layers beside PyTorch CPU and numpy im2col")
    cv.add_argument("--device", help="device spec (default: the default device)")
    cv.add_argument("--dtype", default="float32", help="float32 (default), float64 or float16")
    cv.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    cv.add_argument("--quick", action="store_true", help="small versions of the layers (batch 1, quarter images)")
    cv.add_argument("--network", choices=("resnet50", "mobilenetv2", "others", "all"),
                    help="every layer of a network (others: grouped, dilated, strided, high-resolution) beside "
                         "PyTorch CPU (cuDNN on a CUDA GPU), with the geometric mean")
    cv.add_argument("--batch", type=_positive_int, action="append", metavar="N", help="with --network: batch sizes "
                    "(repeatable; default 1 and 8)")
    cv.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW", help="with --network (default NCHW)")
    cv.add_argument("--plot", metavar="FILE.png", help="with --network: a figure of the ratios per layer")
    cv.add_argument("--rounds", type=_positive_int, default=2, help="with --network: rounds each contender runs, "
                    "taking turns (default 2; the best median counts)")
    cv.set_defaults(func=cmd_bench_conv)
    bd = bench.add_parser("device", help="bandwidth, FMA, float16 and int8 ceilings, launch latency, GEMM and "
                                        "conv2d, beside published peaks: the hardware")
    which = bd.add_mutually_exclusive_group()
    which.add_argument("--device", help="device spec (default: the default device)")
    which.add_argument("--all", action="store_true", help="every device, in one table")
    bd.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    bd.add_argument("--plot", metavar="FILE.png", help="draw a roofline chart per device (needs matplotlib)")
    bd.set_defaults(func=cmd_bench_device)
    p = sub.add_parser("compare", help="devices of several machines side by side: xgpu bench device reports merged")
    p.add_argument("reports", nargs="+", metavar="REPORT.json", help="written by `xgpu bench device --all --json`")
    p.add_argument("--json", action="store_true", help="print the merged rows as JSON")
    p.add_argument("--markdown", metavar="FILE.md", help="also write the table as Markdown")
    p.set_defaults(func=cmd_compare)
    cb = bench.add_parser("cache", help="first GEMM call in a new process, cold cache against warm")
    cb.add_argument("--device", help="device spec (default: the default device)")
    cb.add_argument("--size", type=_positive_int, default=256, help="matrix size (default: 256)")
    cb.add_argument("--json", action="store_true", help="print JSON")
    cb.set_defaults(func=cmd_bench_cache)

    p = sub.add_parser("parity", help="the kernel library on every device against float64 references: a matrix",
                       description="Run the parity matrix, or `xgpu parity merge A.json B.json` to join reports.")
    p.add_argument("--device", action="append", metavar="SPEC", help="a device spec (repeatable; default: all)")
    p.add_argument("--backend", action="append", metavar="NAME", help="only devices of this backend (repeatable)")
    p.add_argument("--exclude", action="append", metavar="SPEC", help="leave out these devices (repeatable)")
    p.add_argument("--kernel", action="append", metavar="NAME", help="only this kernel's cases (repeatable)")
    p.add_argument("--dtype", action="append", metavar="DTYPE", help="only cases of this dtype (repeatable)")
    p.add_argument("--quick", action="store_true", help="the quick grid (minutes, simulators included)")
    p.add_argument("--targets", action="append", metavar="SPEC",
                   help="also compile every library variant for these offline targets, as columns of the report "
                        "(amd:gfx90a, sm_90, a vendor such as intel, all; repeatable or comma-separated)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the inputs (default: 0)")
    p.add_argument("--output", "-o", metavar="FILE.json", help="the JSON report (default: parity-HOSTNAME.json)")
    p.add_argument("--html", metavar="FILE.html", help="also write the matrix as HTML")
    p.add_argument("--markdown", metavar="FILE.md", help="also write the matrix as Markdown")
    cluster_cli.add_parity_options(p)
    p.set_defaults(func=cmd_parity)
    cluster_cli.add_commands(sub)  # xgpu worker, xgpu test

    p = sub.add_parser("tune", help="search a kernel's variants on a device within a time budget; store the best")
    p.add_argument("kernel", nargs="?", help="the kernel to tune (gemm, conv2d, or one a plugin registers)")
    p.add_argument("--device", help="device spec (default: the default device)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64", "float16"), help="default: float32")
    p.add_argument("--budget", type=float, default=120.0, metavar="SECONDS", help="time budget (default: 120)")
    p.add_argument("--size", type=_positive_int, help="gemm: n of the n x n x n product timed (default 2048); conv2d: batch")
    p.add_argument("--show", action="store_true", help="list the stored tuning results")
    p.add_argument("--clear", action="store_true", help="forget every stored tuning result")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("cache", help="the on-disk compile cache: where it is, what it holds; clear it")
    p.add_argument("action", nargs="?", choices=("info", "clear"), default="info")
    p.add_argument("--json", action="store_true", help="print JSON (info)")
    p.set_defaults(func=cmd_cache)
    return parser


def merge_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xgpu parity merge",
                                description="Join parity reports of several machines into one matrix.")
    p.add_argument("reports", nargs="+", metavar="REPORT.json", help="reports written by `xgpu parity`")
    p.add_argument("--html", metavar="FILE.html", help="write the merged matrix as HTML")
    p.add_argument("--markdown", metavar="FILE.md", help="write the merged matrix as Markdown")
    p.set_defaults(func=cmd_parity_merge, version=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `xgpu parity merge ...` is a command of its own (`xgpu parity` takes options, not a subcommand)
    if argv[:2] == ["parity", "merge"]:
        parser, argv = merge_parser(), argv[2:]
    else:
        parser = build_parser()
    args = parser.parse_args(argv)
    # the width is the terminal's, also when piped (rich asks stdin, stdout and stderr), or COLUMNS;
    # 80 when there is neither
    console = Console()
    if args.version:
        from xgpu import __version__

        print(f"xgpu {__version__}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = args.func(args, console)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's flush at exit
        return status
    except XgpuError as exc:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {type(exc).__name__}: ", end="")
        print(exc, file=sys.stderr)
        return 1
    except BrokenPipeError:  # `xgpu ... | head -1`: the reader has what it wanted; end quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, ValueError, TypeError, KeyError, IndexError, RecursionError, MarkupError) as exc:
        # no traceback for a file or a value the command could not use: one line naming it
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
