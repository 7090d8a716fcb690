"""The parity matrix on every worker of a Dask cluster: one merged report for a lab's machines.

``xgpu parity --scheduler tcp://HOST:8786`` (or ``--cluster local:N``) sends the case list to every
worker; each worker runs it on its own devices, one task per case, and the results come back as
they are measured. The client keeps one parity report per worker (the format ``xgpu parity``
writes) and writes them, with each worker's state, to one JSON file after every result, so an
interrupted run loses nothing already measured. A worker that leaves the cluster (dies), runs past
``--timeout``, lists no device, or raises is recorded with its state and is a column of the
matrix saying so; the other workers go on.

Workers must run the same xgpu and the same plugins (name, package, version) as the client:
:func:`check_versions` refuses a mismatch, naming the worker.

``xgpu worker tcp://HOST:8786 [--devices SPEC ...]`` starts a worker that advertises its devices
as Dask resources (``xgpu-devices``, ``xgpu-<backend>``) and exposes only the devices
``--devices`` names (:data:`WORKER_DEVICES_ENV`), so two workers on one host can split its devices.

``--cluster local:N`` starts N worker processes on this machine, worker i seeing only the i-th
OpenCL implementation that lists a device (``OCL_ICD_VENDORS`` naming a folder with that one ICD
file), cycling when N is larger: three local workers stand in for three machines.

Dask (``pip install 'xgpu[cluster]'``) is imported only here and only when used.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xgpu.errors import InvalidArgumentError, XgpuError
from xgpu.tools.parity import REPORT_FORMAT, Matrix, device_info, machine_info, merge_reports

__all__ = [
    "CLUSTER_FORMAT", "ClusterError", "VersionMismatchError", "WORKER_DEVICES_ENV", "WorkerState",
    "check_versions", "cluster_matrix", "connect", "load_cluster_report", "run_cluster_parity",
]

CLUSTER_FORMAT = "xgpu-parity-cluster/1"
#: Device specs (comma-separated) a worker exposes; unset: every device it lists.
WORKER_DEVICES_ENV = "XGPU_WORKER_DEVICES"
#: How long a connection waits for the first worker to join.
WAIT_FOR_WORKERS_S = 60.0

# Worker states as the report and the matrix name them.
DONE, RUNNING, LOST, TIMEOUT, NO_DEVICES, RAISED, REFUSED = (
    "done", "running", "lost", "timed out", "no devices", "raised", "refused")


class ClusterError(XgpuError):
    """The cluster could not be used: Dask missing, no scheduler at the address, no worker."""


class VersionMismatchError(ClusterError):
    """A worker runs another xgpu version or another set of plugins than the client."""


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(f"running on a cluster needs Dask ({exc}): pip install 'xgpu[cluster]'") from None
    return distributed


# --------------------------------------------------------------------------------------------------
# What runs on a worker. Module-level functions: Dask sends them by reference, so the worker runs
# its own installed copy of this module (which the version check compares with the client's).

_case_lock = threading.Lock()  # one case at a time per worker process, whatever its thread count
_case_cache: dict[str, dict[tuple[str, str, str], Any]] = {}


def _worker_specs() -> list[str]:
    return [s.strip() for s in os.environ.get(WORKER_DEVICES_ENV, "").split(",") if s.strip()]


def worker_devices(specs: Iterable[str] = (), backends: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[Any]:
    """The devices of this process the run uses: the client's selection within what the worker exposes."""
    from xgpu import _devices

    chosen = _devices.select_devices(tuple(specs), tuple(backends), tuple(exclude))
    own = _worker_specs()
    if own:
        allowed = {d.id for d in _devices.select_devices(own)}
        chosen = [d for d in chosen if d.id in allowed]
    return chosen


def plugin_versions() -> dict[str, dict[str, str]]:
    """name -> package, version and status of every plugin this process loads."""
    from xgpu import _plugins

    return {str(r["name"]): {"package": str(r["package"]), "version": str(r["version"]), "status": str(r["status"])}
            for r in _plugins.plugin_table()}


def worker_identity(selection: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a worker says about itself before it runs anything: versions, machine, devices."""
    from xgpu import __version__

    out: dict[str, Any] = {"xgpu": __version__, "plugins": plugin_versions(), "machine": machine_info(),
                           "pid": os.getpid(), "devices": [], "device_error": None,
                           "env": {k: os.environ[k] for k in (WORKER_DEVICES_ENV, "OCL_ICD_VENDORS") if k in os.environ}}
    sel = selection or {}
    try:
        out["devices"] = [device_info(d) for d in worker_devices(sel.get("device", ()), sel.get("backend", ()),
                                                                 sel.get("exclude", ()))]
    except XgpuError as exc:
        out["device_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return out


def _cases_here(selection: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    from xgpu.tools.parity import collect_cases

    key = json.dumps(selection, sort_keys=True)
    if key not in _case_cache:
        cases = collect_cases(quick=selection.get("quick", False), kernels=selection.get("kernel", ()))
        _case_cache[key] = {(c.kernel, c.case, c.dtype): c for c in cases}
    return _case_cache[key]


def run_case(selection: dict[str, Any], row: tuple[str, str, str], seed: int) -> list[dict[str, Any]]:
    """One case on each of this worker's devices (what ``xgpu parity`` does for one row)."""
    from xgpu.tools.parity import _run_one

    with _case_lock:
        devices = worker_devices(selection.get("device", ()), selection.get("backend", ()), selection.get("exclude", ()))
        case = _cases_here(selection).get((row[0], row[1], row[2]))
        if case is None:
            return [{"kernel": row[0], "case": row[1], "dtype": row[2], "device": d.id, "status": "skip",
                     "detail": "this worker has no such case (another plugin set)"} for d in devices]
        return [_run_one(case, d, seed) for d in devices]


# --------------------------------------------------------------------------------------------------
# The client side.


@dataclass
class WorkerState:
    """One worker of a run: who it is, how far it got, and its report so far."""

    address: str
    name: str
    host: str
    resources: dict[str, float] = field(default_factory=dict)
    status: str = RUNNING
    detail: str = ""
    identity: dict[str, Any] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    cases_total: int = 0
    cases_done: int = 0
    failures: int = 0
    started: float = 0.0

    def report(self, created: str) -> dict[str, Any]:
        """This worker's results as an ``xgpu parity`` report (the machine names the worker)."""
        ident = self.identity
        machine = {**(ident.get("machine") or {"hostname": self.host}), "worker": self.name, "address": self.address}
        return {"format": REPORT_FORMAT, "xgpu": ident.get("xgpu", "?"), "created": created, "machine": machine,
                "devices": ident.get("devices", []), "results": self.results}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "host": self.host, "status": self.status,
                "detail": self.detail, "cases_done": self.cases_done, "cases_total": self.cases_total,
                "failures": self.failures, "pid": self.identity.get("pid"), "resources": self.resources,
                "env": self.identity.get("env", {})}


def connect(scheduler: str | None = None, cluster: str | None = None, wait_s: float = WAIT_FOR_WORKERS_S,
            connect_s: float = 10.0):
    """A Dask client for ``--scheduler ADDRESS`` or ``--cluster local:N``; close it (and the cluster) after."""
    distributed = _distributed()
    if (scheduler is None) == (cluster is None):
        raise InvalidArgumentError("give one of --scheduler tcp://HOST:8786 and --cluster local:N")
    if cluster is not None:
        n = _parse_local(cluster)
        spec = local_cluster_spec(n)
        import logging

        local = distributed.SpecCluster(
            workers=spec, scheduler={"cls": distributed.Scheduler, "options": {"dashboard": False, "dashboard_address": ":0",
                                                                            "port": 0}},
            silence_logs=logging.ERROR)
        client = distributed.Client(local)
        try:
            client.wait_for_workers(n, timeout=wait_s)
        except Exception:
            client.close()
            local.close()
            raise ClusterError(f"the local cluster's {n} workers did not all start within {wait_s:.0f} s") from None
        client._xgpu_cluster = local
        return client
    try:
        client = distributed.Client(scheduler, timeout=connect_s)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"no Dask scheduler answers at {scheduler} ({exc}); start one with `dask scheduler` "
                           "and workers with `xgpu worker ADDRESS`") from None
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except Exception:
        client.close()
        raise ClusterError(f"no worker joined the scheduler at {scheduler} within {wait_s:.0f} s: start one on each "
                           f"machine with `xgpu worker {scheduler}`") from None
    return client


def close(client) -> None:
    cluster = getattr(client, "_xgpu_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _parse_local(text: str) -> int:
    kind, _, count = text.partition(":")
    if kind != "local" or not count.isdigit() or int(count) < 1:
        raise InvalidArgumentError(f"--cluster {text!r}: expected local:N with N >= 1 worker processes, e.g. local:3")
    return int(count)


def _icd_implementations() -> list[tuple[str, str]]:
    """(ICD file name, library) of every OpenCL implementation installed here; [] without the backend."""
    try:
        from xgpu.backends.opencl._icd import vendor_entries
    except ImportError:
        return []
    return sorted(vendor_entries().items())


# Run in a child process whose loader sees one ICD file: does that implementation list a device?
# (pyopencl alone: importing xgpu would cost seconds a probe on a loaded machine)
_PROBE = """
import json, pyopencl as cl
n = 0
for p in cl.get_platforms():
    try:
        n += len(p.get_devices())
    except cl.Error:
        pass
print(json.dumps([n]))
"""


def _single_icd_folders() -> list[tuple[str, str]]:
    """(implementation name, folder holding its one ICD file) for each implementation that lists a
    device when alone; the answer is kept in the cache folder (keyed on the implementations)."""
    from xgpu._paths import cache_dir

    entries = _icd_implementations()
    if not entries:
        return []
    root = cache_dir()
    digest = hashlib.sha256(repr(entries).encode()).hexdigest()[:16]
    known = root / f"icd-single-{digest}.json"
    folders = []
    for name, library in entries:
        folder = root / f"icd-single-{digest}" / Path(name).stem
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(library + "\n")
        folders.append((Path(name).stem, str(folder)))
    if known.exists():
        usable = json.loads(known.read_text())
    else:
        base = {k: v for k, v in os.environ.items() if k != "OCL_ICD_VENDORS"}
        procs = [subprocess.Popen([sys.executable, "-c", _PROBE], env={**base, "OCL_ICD_VENDORS": folder},
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for _, folder in folders]
        usable = []
        for (stem, _), proc in zip(folders, procs):
            try:
                out, _ = proc.communicate(timeout=120)
                if proc.returncode == 0 and json.loads(out.strip().splitlines()[-1])[0]:
                    usable.append(stem)
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                proc.kill()
        known.write_text(json.dumps(usable))
    return [(stem, folder) for stem, folder in folders if stem in usable]


def local_worker_envs(n: int) -> list[dict[str, str]]:
    """The environment of each of ``n`` local workers: one OpenCL implementation each, in turn."""
    folders = _single_icd_folders()
    if not folders:
        return [{} for _ in range(n)]  # no OpenCL implementation to split: each worker sees everything
    return [{"OCL_ICD_VENDORS": folders[i % len(folders)][1]} for i in range(n)]


def local_cluster_spec(n: int) -> dict[str, Any]:
    import logging

    distributed = _distributed()
    spec = {}
    for i, env in enumerate(local_worker_envs(n)):
        label = Path(env["OCL_ICD_VENDORS"]).name if env else "all"
        spec[f"local-{i}-{label}"] = {"cls": distributed.Nanny,
                                      "options": {"nthreads": 1, "env": env, "memory_limit": 0,
                                                  "silence_logs": logging.CRITICAL, "dashboard_address": ":0"}}
    return spec


def check_versions(states: list[WorkerState], mine: dict[str, Any]) -> list[tuple[WorkerState, str]]:
    """(worker, what differs) for each worker whose xgpu version or plugin set differs from ``mine``."""
    out = []
    for w in states:
        ident = w.identity
        diffs = []
        if ident.get("xgpu") != mine["xgpu"]:
            diffs.append(f"xgpu {ident.get('xgpu')} (here {mine['xgpu']})")
        theirs, ours = ident.get("plugins", {}), mine["plugins"]
        for name in sorted(set(theirs) | set(ours)):
            t, o = theirs.get(name), ours.get(name)
            if t is None:
                diffs.append(f"plugin {name!r} missing (here {o['package'] or name} {o['version']})")
            elif o is None:
                diffs.append(f"plugin {name!r} ({t['package'] or name} {t['version']}) not installed here")
            elif (t["package"], t["version"], t["status"]) != (o["package"], o["version"], o["status"]):
                diffs.append(f"plugin {name!r} {t['package']} {t['version']} {t['status']} "
                             f"(here {o['package']} {o['version']} {o['status']})")
        if diffs:
            out.append((w, "; ".join(diffs)))
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def bundle(states: list[WorkerState], scheduler: str, complete: bool, created: str) -> dict[str, Any]:
    """The JSON a cluster run writes: each worker's state and its parity report."""
    from xgpu import __version__

    return {"format": CLUSTER_FORMAT, "xgpu": __version__, "created": created, "updated": _now(),
            "scheduler": scheduler, "complete": complete, "client": socket.gethostname(),
            "workers": [w.as_dict() for w in states], "reports": [w.report(created) for w in states]}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_cluster_parity(client, rows: list[tuple[str, str, str]], selection: dict[str, Any], *, seed: int = 0,
                       timeout: float | None = None, output: Path | None = None, skip_mismatched: bool = False,
                       progress: Callable[[list[WorkerState]], None] | None = None) -> dict[str, Any]:
    """Run ``rows`` (kernel, case, dtype) on every worker of ``client``'s cluster; return the bundle.

    ``output`` is rewritten after each result (the partial report). ``timeout`` is per worker, in
    seconds from its first case. ``progress(states)`` is called after each change.
    """
    distributed = _distributed()
    created = _now()
    scheduler = client.scheduler.address
    info = workers_of(client)
    states = [WorkerState(address=a, name=str(w.get("name", a)), host=str(w.get("host", "?")),
                          resources=dict(w.get("resources") or {})) for a, w in sorted(info.items(),
                                                                                      key=lambda kv: str(kv[1].get("name")))]
    by_addr = {w.address: w for w in states}

    def save(complete: bool = False) -> dict[str, Any]:
        data = bundle(states, scheduler, complete, created)
        if output is not None:
            _write_atomic(output, json.dumps(data, indent=1))
        if progress:
            progress(states)
        return data

    # who each worker is: versions, machine, devices
    idents = {w.address: client.submit(worker_identity, selection, workers=[w.address], allow_other_workers=False,
                                       pure=False, key=f"xgpu-identity-{w.address}") for w in states}
    deadline = time.monotonic() + WAIT_FOR_WORKERS_S  # listing devices and loading plugins: seconds
    for addr, fut in idents.items():
        w = by_addr[addr]
        try:
            w.identity = fut.result(timeout=max(1.0, deadline - time.monotonic()))
        except (TimeoutError, distributed.TimeoutError):
            w.status, w.detail = TIMEOUT, f"did not say which xgpu and devices it has within {WAIT_FOR_WORKERS_S:.0f} s"
            fut.cancel()
        except Exception as exc:  # the worker could not even describe itself
            w.status, w.detail = RAISED, f"{type(exc).__name__}: {exc}"
            fut.cancel()
    mine = {"xgpu": _client_version(), "plugins": plugin_versions()}
    mismatched = check_versions([w for w in states if w.identity], mine)
    if mismatched and not skip_mismatched:
        lines = "\n".join(f"  worker {w.name} ({w.address}, host {w.host}): {why}" for w, why in mismatched)
        raise VersionMismatchError(
            f"{len(mismatched)} worker(s) do not run the same xgpu and plugins as this machine:\n{lines}\n"
            "install the same versions there (pip install xgpu==... and the same plugins), or leave those "
            "workers out with --skip-mismatched")
    for w, why in mismatched:
        w.status, w.detail = REFUSED, f"other versions than the client: {why}"
    for w in states:
        if w.status == RUNNING and not w.identity.get("devices"):
            w.status = NO_DEVICES
            w.detail = w.identity.get("device_error") or "the worker lists no device matching the selection"
    save()

    futures: dict[Any, WorkerState] = {}
    for w in states:
        if w.status != RUNNING:
            continue
        w.cases_total, w.started = len(rows), time.monotonic()
        for row in rows:
            f = client.submit(run_case, selection, row, seed, workers=[w.address], allow_other_workers=False,
                              pure=False, key=f"xgpu-parity-{w.name}-{'-'.join(row)}-{time.time_ns()}")
            futures[f] = w
    if not futures:
        save(complete=True)
    pending = set(futures)
    last_poll = 0.0
    missing: dict[str, int] = {}
    while pending:
        try:
            done, _ = distributed.wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
        except (TimeoutError, distributed.TimeoutError):
            done = set()
        for f in done:
            pending.discard(f)
            w = futures[f]
            if w.status != RUNNING:
                continue
            if f.status == "finished":
                got = f.result()
                w.results.extend(got)
                w.cases_done += 1
                w.failures += sum(1 for r in got if r["status"] == "fail")
                if w.cases_done == w.cases_total:
                    w.status = DONE
            elif f.status == "error":
                error = f.exception()
                gone = type(error).__name__ == "KilledWorker" or w.address not in _alive(client)
                _stop(w, LOST if gone else RAISED, (f"the worker died after {w.cases_done} of {w.cases_total} cases"
                                                     if gone else f"{type(error).__name__}: {error}"), futures, pending)
        now = time.monotonic()
        if timeout:
            for w in states:
                if w.status == RUNNING and now - w.started > timeout:
                    _stop(w, TIMEOUT, f"ran past --timeout {timeout:g} s after {w.cases_done} of {w.cases_total} "
                                      "cases", futures, pending)
        if now - last_poll >= 1.0:
            last_poll = now
            alive = _alive(client)
            for w in states:
                if w.status != RUNNING:
                    continue
                # missing from two listings a second apart: one listing can miss a worker that is there
                missing[w.address] = missing.get(w.address, 0) + 1 if w.address not in alive else 0
                if missing[w.address] >= 2:
                    _stop(w, LOST, f"the worker left the cluster (died?) after {w.cases_done} of {w.cases_total} "
                                   "cases", futures, pending)
        if done or not pending:
            save(complete=not pending)
    for w in states:
        _order_results(w, rows)
    return save(complete=True)


def _client_version() -> str:
    from xgpu import __version__

    return __version__


def workers_of(client) -> dict[str, dict[str, Any]]:
    """address -> what the scheduler knows of each worker (all of them: newer Dask lists 5 unless told)."""
    try:
        return dict(client.scheduler_info(n_workers=-1)["workers"])
    except TypeError:  # a Dask without the n_workers argument lists every worker
        return dict(client.scheduler_info()["workers"])


def _alive(client) -> set[str]:
    return set(workers_of(client))


def _stop(w: WorkerState, status: str, detail: str, futures: dict, pending: set) -> None:
    w.status, w.detail = status, detail
    mine = [f for f in pending if futures[f] is w]
    for f in mine:
        pending.discard(f)
        f.cancel()


def _order_results(w: WorkerState, rows: list[tuple[str, str, str]]) -> None:
    """Results in ``xgpu parity``'s order: device by device, case by case."""
    order = {tuple(r): i for i, r in enumerate(rows)}
    devs = {d["id"]: i for i, d in enumerate(w.identity.get("devices", []))}
    w.results.sort(key=lambda r: (devs.get(r["device"], 0), order.get((r["kernel"], r["case"], r["dtype"]), 0)))


def load_cluster_report(path: str | Path) -> dict[str, Any]:
    """Read the JSON a cluster run wrote (complete or partial)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidArgumentError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"{path}: not a JSON cluster report ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CLUSTER_FORMAT:
        raise InvalidArgumentError(f"{path}: not an xgpu cluster report (expected \"format\": \"{CLUSTER_FORMAT}\")")
    return data


def cluster_matrix(data: dict[str, Any]) -> Matrix:
    """The merged matrix of a cluster run: a column per worker and device, host and worker in each
    label; a worker that did not finish keeps the cells it measured, and its columns say why; a
    worker without devices is one column saying so."""
    reports = []
    for w, report in zip(data["workers"], data["reports"]):
        if not report["devices"]:
            report = {**report, "devices": [{"id": "-", "name": w["status"], "platform": w["status"],
                                             "vendor": "", "driver_version": ""}]}
        reports.append(report)
    m = merge_reports(reports)
    for c in m.columns:
        w = next(w for w, r in zip(data["workers"], reports) if r["machine"] is c["machine"])
        if w["status"] != DONE:
            c["label"] += f" [{w['status'].upper()}: {w['detail']}]" if w["detail"] else f" [{w['status'].upper()}]"
    return m
