"""Time offline compiles of every float32 library kernel variant, one compiler at a time, per target.

    flock /tmp/xgpu-bench.lock python docs/snippets/offline_compile_times.py [TARGET ...]

Prints, per target, how many variants compiled, and the median, slowest and total compile time, in
CPU seconds (this process and its compiler children: NVRTC runs in-process, clang and ocloc as child
processes), which other work on the machine changes far less than wall time; the total wall time too.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time

import xgpu
from tests.test_cuda_compile import VARIANTS


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


targets = sys.argv[1:] or ["nvidia:sm_90", "amd:gfx90a", "amd:gfx1030", "intel:dg2", "intel:pvc"]
chosen = [v for v in VARIANTS if "float32" in v[0]]
print(f"{len(chosen)} float32 variants, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
print("| target | compiled | median (CPU s) | slowest (CPU s) | total CPU s | total wall s |")
print("|---|---|---|---|---|---|")
for target in targets:
    times, slowest, failed = [], ("", 0.0), []
    wall = time.perf_counter()
    for name, template, defines in chosen:
        start = cpu_seconds()
        try:
            xgpu.compile_offline(template, target=target, defines=defines)
        except xgpu.errors.XgpuError as exc:
            failed.append(f"{name}: {str(exc).splitlines()[0]}")
            continue
        took = cpu_seconds() - start
        times.append(took)
        slowest = max(slowest, (name, took), key=lambda x: x[1])
    wall = time.perf_counter() - wall
    print(f"| {target} | {len(times)}/{len(chosen)} | {statistics.median(times):.2f} | "
          f"{slowest[1]:.2f} ({slowest[0]}) | {sum(times):.1f} | {wall:.1f} |", flush=True)
    for line in failed[:3]:
        print("  failed:", line)
