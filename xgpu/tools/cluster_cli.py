"""The cluster side of the ``xgpu`` command: ``parity --scheduler/--cluster``, ``worker`` and ``test``.

Kept apart from ``cli.py`` so that the command table stays one page; ``cli.py`` adds these options
and commands with :func:`add_parity_options` and :func:`add_commands`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from xgpu.errors import InvalidArgumentError, XgpuError


def add_parity_options(p: argparse.ArgumentParser) -> None:
    """``xgpu parity``'s cluster options."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="tcp://HOST:8786",
                       help="run the matrix on every worker of this Dask scheduler; one merged report (docs/cluster.md)")
    where.add_argument("--cluster", metavar="local:N",
                       help="start N local Dask workers, each seeing one OpenCL implementation in turn, and run there")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="with --scheduler/--cluster: a worker still running this long after its first case is "
                        "reported as timed out (default: no limit)")
    p.add_argument("--skip-mismatched", action="store_true",
                   help="with --scheduler/--cluster: leave out workers whose xgpu or plugins differ (a column says "
                        "so) instead of refusing the run")


def add_commands(sub: Any) -> None:
    """``xgpu worker`` and ``xgpu test``."""
    p = sub.add_parser("worker", help="a Dask worker that runs xgpu's parity matrix and tests on this machine's devices",
                       description="Join a Dask scheduler as a worker advertising this machine's devices as resources.")
    p.add_argument("scheduler", metavar="tcp://HOST:8786", help="the scheduler's address (`dask scheduler` prints it)")
    p.add_argument("--devices", action="append", metavar="SPEC",
                   help="expose only the devices this spec names (repeatable); two workers on one host can split "
                        "its devices this way")
    p.add_argument("--name", help="the worker's name in reports (default: HOST-PID)")
    p.add_argument("--nthreads", type=int, default=1, help="threads of the worker (default: 1; cases run one at a time)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("test", help="run your device-parametrised pytest tests on every worker of a Dask cluster",
                       description="Send the test files named after `--` to every worker, run pytest there on the "
                                   "worker's devices, and merge the results (docs/testing.md).")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--scheduler", metavar="tcp://HOST:8786", help="the Dask scheduler's address")
    where.add_argument("--cluster", metavar="local:N", help="N local workers, one OpenCL implementation each")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="per worker: pytest is stopped past it")
    p.add_argument("--skip-mismatched", action="store_true",
                   help="leave out workers whose xgpu or plugins differ instead of refusing the run")
    p.add_argument("--junitxml", metavar="FILE.xml", help="write the merged result as JUnit XML (a suite per worker)")
    p.add_argument("--output", "-o", metavar="FILE.json", help="write the merged result as JSON")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, metavar="-- PYTEST ARGS",
                   help="test files or folders (sent to the workers) and pytest options")
    p.set_defaults(func=cmd_test)


def _progress_view(progress, tasks: dict[str, Any]):
    def show(states) -> None:
        for w in states:
            if w.name not in tasks:
                tasks[w.name] = progress.add_task(w.name, total=w.cases_total or None)
            state = w.status if w.status != "running" else f"{w.failures} failure(s)"
            progress.update(tasks[w.name], total=w.cases_total or 1, completed=w.cases_done if w.cases_total else 1,
                            description=f"{w.name} ({w.host}): {state}")
    return show


def cmd_parity_cluster(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from xgpu.tools import cluster
    from xgpu.tools.output import _check_writable, _print_matrix, _write_outputs
    from xgpu.tools.parity import collect_cases

    cases = collect_cases(quick=args.quick, kernels=args.kernel or (), dtypes=args.dtype or ())
    if args.timeout is not None and args.timeout <= 0:
        raise InvalidArgumentError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    rows = [(c.kernel, c.case, c.dtype) for c in cases]
    selection = {"quick": bool(args.quick), "kernel": sorted(args.kernel or []), "device": list(args.device or []),
                 "backend": list(args.backend or []), "exclude": list(args.exclude or [])}
    output = Path(args.output or "parity-cluster.json")
    _check_writable(output, args.html, args.markdown)
    client = cluster.connect(args.scheduler, args.cluster)
    where = args.scheduler or f"{args.cluster} ({client.scheduler.address})"
    console.print(f"{len(cluster.workers_of(client))} worker(s) at {where}; {len(rows)} case(s) "
                  f"each; partial report: {output}", highlight=False)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True) as progress:
            data = cluster.run_cluster_parity(client, rows, selection, seed=args.seed, timeout=args.timeout,
                                              output=output, skip_mismatched=args.skip_mismatched,
                                              progress=_progress_view(progress, {}))
    except KeyboardInterrupt:
        console.print(f"interrupted: what was measured is in {output}", highlight=False)
        return 130
    finally:
        cluster.close(client)
    matrix = cluster.cluster_matrix(data)
    _print_matrix(matrix, console, f"xgpu parity on {len(data['workers'])} worker(s) "
                                   f"({'quick' if args.quick else 'full'} grid)")
    for w in data["workers"]:
        console.print(f"worker {w['name']} ({w['host']}, {w['address']}): {w['status']}, {w['cases_done']} of "
                      f"{w['cases_total']} case(s), {w['failures']} failure(s)" + (f": {w['detail']}" if w["detail"]
                                                                                     else ""),
                      highlight=False, markup=False)
    console.print(f"JSON report: {output} (a report per worker; xgpu parity merge reads it)", highlight=False)
    _write_outputs(matrix, args, console)
    unfinished = any(w["status"] != cluster.DONE for w in data["workers"])
    return 1 if matrix.counts()["fail"] or unfinished else 0


def cmd_worker(args: argparse.Namespace, console: Console) -> int:
    import asyncio

    from xgpu.tools import cluster

    distributed = cluster._distributed()
    if args.devices:
        os.environ[cluster.WORKER_DEVICES_ENV] = ",".join(args.devices)
    try:
        devices = cluster.worker_devices()
    except XgpuError as exc:
        if args.devices:
            raise
        console.print(f"no devices here ({exc}); joining anyway: the reports will say so", highlight=False,
                      markup=False)
        devices = []
    if args.devices and not devices:
        raise InvalidArgumentError(f"--devices {' '.join(args.devices)} names no device here: see `xgpu devices`")
    resources: dict[str, float] = {"xgpu-devices": len(devices)}
    for d in devices:
        resources[f"xgpu-{d.backend}"] = resources.get(f"xgpu-{d.backend}", 0) + 1
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    console.print(f"xgpu worker {name}: {', '.join(f'{d.id} {d.name}' for d in devices) or 'no device'}; resources "
                  f"{resources}; joining {args.scheduler}", highlight=False, markup=False)

    async def serve() -> None:
        async with distributed.Worker(args.scheduler, nthreads=args.nthreads, resources=resources, name=name,
                                     dashboard_address=":0") as w:
            print(f"xgpu worker {name}: joined as {w.address}", flush=True)
            await w.finished()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


def cmd_test(args: argparse.Namespace, console: Console) -> int:
    from xgpu.tools import cluster, cluster_pytest

    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]
    if args.timeout is not None and args.timeout <= 0:
        raise InvalidArgumentError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    archive = cluster_pytest.pack(pytest_args, Path.cwd())
    from xgpu.tools.output import _check_writable

    _check_writable(args.junitxml, args.output)
    client = cluster.connect(args.scheduler, args.cluster)
    try:
        data = cluster_pytest.run_tests(client, archive, pytest_args, timeout=args.timeout,
                                        skip_mismatched=args.skip_mismatched,
                                        progress=lambda text: print(text, file=sys.stderr, flush=True))
    finally:
        cluster.close(client)
    console.print(cluster_pytest.table(data))
    for w in data["workers"]:
        console.print(f"worker {w['name']} ({w['host']}): {w['status']}" + (f": {w['detail']}" if w["detail"] else ""),
                      highlight=False, markup=False)
        for t in w["tests"]:
            if t["outcome"] in ("failed", "error"):
                console.print(f"  {t['outcome'].upper()} {t['id']}: {t['message']}", highlight=False, markup=False)
    if args.junitxml:
        Path(args.junitxml).write_text(cluster_pytest.junit_xml(data))
        console.print(f"JUnit XML: {args.junitxml}", highlight=False)
    if args.output:
        Path(args.output).write_text(json.dumps(data, indent=1))
        console.print(f"JSON: {args.output}", highlight=False)
    totals = data["totals"]
    print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped "
          f"on {len(data['workers'])} worker(s)")
    ok = all(w["status"] == "done" for w in data["workers"]) and not totals["failed"]
    return 0 if ok else 1


def reports_in(path: str, load_report) -> list[dict[str, Any]]:
    """The parity reports a file holds: one (``xgpu parity``), or one per worker (a cluster run)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("reports"), list):
        from xgpu.tools.cluster import load_cluster_report

        return list(load_cluster_report(path)["reports"])
    return [load_report(path)]
