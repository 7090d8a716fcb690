"""The parity matrix: every kernel of the library (and of plugins) on every device, against float64.

``xgpu parity`` runs :func:`run_parity` and writes a JSON report; ``xgpu parity merge`` joins
reports from several machines into one matrix (console, HTML, Markdown). Plugins add their own
kernels' cases with the ``xgpu_register_parity_cases`` hook.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import platform
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xgpu._plugins import call_each
from xgpu.errors import InvalidArgumentError, XgpuError
from xgpu.hookspecs import CaseRegistry, ParityCase
from xgpu.testing import compare, tolerance

__all__ = [
    "REPORT_FORMAT",
    "CaseRegistry",
    "ParityCase",
    "collect_cases",
    "load_report",
    "markdown_matrix",
    "html_matrix",
    "merge_reports",
    "run_parity",
]

REPORT_FORMAT = "xgpu-parity/1"
DTYPES = ("float32", "float64", "float16")
#: Cases with more floating-point work than this are left out on simulators (Oclgrind: a few MFLOP/s).
SIMULATOR_WORK = 2_000_000


def collect_cases(quick: bool = False, kernels: Iterable[str] = (), dtypes: Iterable[Any] = ()) -> list[ParityCase]:
    """Every registered case (``quick``: the quick grid only), optionally of some kernels and dtypes only."""
    try:
        wanted_dtypes = {np.dtype(d).name for d in dtypes}
    except TypeError as exc:
        raise InvalidArgumentError(f"--dtype: {exc}") from None
    registry = call_each("xgpu_register_parity_cases", CaseRegistry())
    wanted = set(kernels)
    known = {c.kernel for c in registry.cases}
    if wanted - known:
        raise InvalidArgumentError(
            f"no parity cases for kernel(s) {', '.join(sorted(wanted - known))}; known: {', '.join(sorted(known))}"
        )
    return [c for c in registry.cases if (c.quick or not quick) and (not wanted or c.kernel in wanted)
            and (not wanted_dtypes or c.dtype in wanted_dtypes)]


def _run_one(case: ParityCase, device: Any, seed: int) -> dict[str, Any]:
    result: dict[str, Any] = {"kernel": case.kernel, "case": case.case, "dtype": case.dtype, "device": device.id}
    if not device.supports(case.dtype):
        return {**result, "status": "skip", "detail": f"{case.dtype} is not supported on {device.name}"}
    if device.is_simulator and case.work > SIMULATOR_WORK:
        return {**result, "status": "skip",
                "detail": f"{case.work / 1e6:.0f} MFLOP is too much for a simulator (limit {SIMULATOR_WORK / 1e6:.0f})"}
    start = time.perf_counter()
    try:
        actual, reference, terms = case.run(device, np.random.default_rng(seed))
        ok, max_err, why = compare(actual, reference, dtype=case.dtype, terms=terms)
        result.update(status="pass" if ok else "fail", max_error=None if math.isnan(max_err) else max_err,
                      tolerance=tolerance(case.dtype, terms), detail=why)
    except XgpuError as exc:
        result.update(status="fail", max_error=None, detail=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a plugin's case that breaks must not stop the matrix
        result.update(status="fail", max_error=None, detail=f"{type(exc).__name__} in the case itself: {exc}")
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def machine_info() -> dict[str, str]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def device_info(device: Any) -> dict[str, Any]:
    info = device.as_dict()
    info["backend_version"] = device._backend.version()
    return info


def run_parity(devices: list[Any], cases: list[ParityCase], *, seed: int = 0,
               progress: Callable[[ParityCase, Any, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run each case on each device; return the report (what ``xgpu parity`` writes as JSON)."""
    from xgpu import __version__

    results = []
    for device in devices:
        for case in cases:
            r = _run_one(case, device, seed)
            results.append(r)
            if progress:
                progress(case, device, r)
    return {
        "format": REPORT_FORMAT,
        "xgpu": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "devices": [device_info(d) for d in devices],
        "results": results,
    }


TARGET_PREFIX = "target:"  # a compile row's column: the offline target as a device of the report


def select_targets(specs: Iterable[str]) -> list[Any]:
    """The offline targets ``specs`` name (``amd:gfx90a``, a bare ``sm_90``, a vendor such as ``intel``, or
    ``all`` for every available one); a spec that names nothing or an unavailable target is an error."""
    from xgpu._program import offline_targets

    targets = offline_targets()
    chosen: dict[str, Any] = {}
    for spec in specs:
        for s in (p.strip().lower() for p in spec.split(",") if p.strip()):
            found = [t for t in targets.values()
                     if (s == "all" and t.available) or s in (t.name, t.arch, t.name.split(":")[0])]
            if not found:
                raise InvalidArgumentError(f"--targets {s!r} names no offline target: `xgpu targets` lists them")
            missing = [f"{t.name} ({t.reason})" for t in found if not t.available and s != "all"]
            if missing:
                raise InvalidArgumentError(f"--targets {s!r}: unavailable here: {'; '.join(missing)}")
            chosen.update((t.name, t) for t in found if t.available)
    return sorted(chosen.values(), key=lambda t: t.name)


def _resource_text(resources: dict[str, dict[str, int]]) -> str:
    """One line for a build's kernels: the most registers and spills any of them needs."""
    if not resources:
        return "compiled"
    regs = max(r.get("registers", 0) for r in resources.values())
    spills = max(r.get("spill_bytes", 0) for r in resources.values())
    shared = max(r.get("shared_bytes", 0) for r in resources.values())
    return f"{regs} registers, {spills} bytes spilled, {shared} bytes shared/LDS"


def run_compiles(targets: list[Any], kernels: Iterable[str] = (), dtypes: Iterable[Any] = (), quick: bool = False,
                 progress: Callable[[str, Any, dict[str, Any]], None] | None = None
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Compile every library variant for every target (the compilers run on every core): the report's
    compile rows, as (device entries, results). A row passes when the vendor's compiler builds it, and
    its detail is the resource report; a dtype a target cannot do is a skip with the reason."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import xgpu
    from xgpu.errors import UnsupportedDtypeError
    from xgpu.kernels.variants import library_variants, variant_row

    wanted_kernels = set(kernels)
    wanted_dtypes = {np.dtype(d).name for d in dtypes}
    variants = []
    for name, template, defines in library_variants():
        kernel, case, dtype = variant_row(name)
        if (wanted_kernels and kernel not in wanted_kernels and name.split("-")[0] not in wanted_kernels) or (
                wanted_dtypes and dtype not in wanted_dtypes) or (quick and dtype != "float32"):
            continue
        variants.append((name, template, defines))
    if quick:
        variants = variants[::4]

    def build(name: str, template: Any, defines: dict[str, Any], target: Any) -> dict[str, Any]:
        kernel, case, dtype = variant_row(name)
        row = {"kernel": kernel, "case": f"compile {case}", "dtype": dtype, "device": TARGET_PREFIX + target.name,
               "max_error": None}
        try:
            b = xgpu.compile_offline(template, target=target.name, defines=defines)
        except UnsupportedDtypeError as exc:
            return {**row, "status": "skip", "detail": str(exc)}
        except XgpuError as exc:
            return {**row, "status": "fail", "detail": str(exc)}
        return {**row, "status": "pass", "detail": _resource_text(b.resources), "resources": b.resources}

    results = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = [(name, t, pool.submit(build, name, template, defines, t))
                   for t in targets for name, template, defines in variants]
        for name, t, future in futures:
            r = future.result()
            results.append(r)
            if progress:
                progress(name, t, r)
    devices = [{"id": TARGET_PREFIX + t.name, "name": t.name, "platform": f"offline: {t.toolchain}",
                "vendor": t.name.split(":")[0], "type": "offline target", "driver_version": t.toolchain}
               for t in targets]
    return devices, results


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report ``xgpu parity`` wrote; a file that is not one gives a clear error."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidArgumentError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"{path}: not a JSON parity report ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise InvalidArgumentError(f"{path}: not an xgpu parity report (expected \"format\": \"{REPORT_FORMAT}\")")
    for key in ("machine", "devices", "results"):
        if key not in data:
            raise InvalidArgumentError(f"{path}: parity report without {key!r}")
    check_report(data, str(path))
    return data


STATUSES = ("pass", "fail", "skip")


def check_report(data: dict[str, Any], where: str = "report") -> None:
    """Every field the writers read, with its type: a report of the right tag but the wrong shape is
    refused with the field named, instead of failing half-way through a merge."""
    def bad(what: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"{where}: {what} (a report `xgpu parity` wrote has it; was the file edited?)")

    if not isinstance(data.get("machine"), dict):
        raise bad("'machine' is not an object")
    if not isinstance(data.get("devices"), list) or not isinstance(data.get("results"), list):
        raise bad("'devices' and 'results' must be lists")
    if not isinstance(data.get("xgpu", ""), str):
        raise bad("'xgpu' is not a string")
    ids = set()
    for i, d in enumerate(data["devices"]):
        if not isinstance(d, dict) or not isinstance(d.get("id"), str) or not isinstance(d.get("name", ""), str):
            raise bad(f"devices[{i}] has no string 'id' and 'name'")
        ids.add(d["id"])
    for i, r in enumerate(data["results"]):
        if not isinstance(r, dict):
            raise bad(f"results[{i}] is not an object")
        for key in ("kernel", "case", "dtype", "device"):
            if not isinstance(r.get(key), str):
                raise bad(f"results[{i}] has no string {key!r}")
        if r.get("status") not in STATUSES:
            raise bad(f"results[{i}] has status {r.get('status')!r}, not one of {', '.join(STATUSES)}")
        err = r.get("max_error")
        if err is not None and (isinstance(err, bool) or not isinstance(err, (int, float))):
            raise bad(f"results[{i}] has a max_error that is not a number: {err!r}")
        if not isinstance(r.get("detail", ""), str):
            raise bad(f"results[{i}] has a detail that is not a string")
        if r["device"] not in ids:
            raise bad(f"results[{i}] ({r['kernel']} {r['case']} {r['dtype']}, {r['status']}) names device "
                      f"{r['device']!r}, which is not in the report's device list ({', '.join(sorted(ids)) or 'none'})")


@dataclass
class Matrix:
    """Rows (kernel, case, dtype) by columns (machine, device): what the reports render to."""

    columns: list[dict[str, Any]]  # {"key", "label", "machine", "device"}
    rows: list[tuple[str, str, str]]
    cells: dict[tuple[tuple[str, str, str], str], dict[str, Any]]
    reports: list[dict[str, Any]]
    #: Every result of every report merged (a cell shows one; a failure always wins its cell).
    results: list[dict[str, Any]] = field(default_factory=list)

    def divergent(self, row: tuple[str, str, str]) -> bool:
        """Passes on some device and fails on another: the cases a lab most needs to see."""
        states = {self.cells[(row, c["key"])]["status"] for c in self.columns if (row, c["key"]) in self.cells}
        return {"pass", "fail"} <= states

    def counts(self) -> dict[str, int]:
        """Results by status: every result given, also those that share a cell."""
        out = {"pass": 0, "fail": 0, "skip": 0}
        for cell in self.results or self.cells.values():
            out[cell["status"]] = out.get(cell["status"], 0) + 1
        return out


def merge_reports(reports: list[dict[str, Any]]) -> Matrix:
    """One matrix from reports of one or more machines (a device appears once per machine)."""
    columns: list[dict[str, Any]] = []
    rows: dict[tuple[str, str, str], None] = {}
    cells: dict[tuple[tuple[str, str, str], str], dict[str, Any]] = {}
    # a Dask worker's report names the worker too (xgpu parity --scheduler): host/worker
    hosts = [r["machine"].get("hostname", "?") + (f"/{r['machine']['worker']}" if r["machine"].get("worker") else "")
             for r in reports]
    results: list[dict[str, Any]] = []
    by_key: dict[str, dict[str, Any]] = {}
    for i, report in enumerate(reports):
        check_report(report, f"report {i + 1} ({hosts[i]})")
        host = hosts[i]
        multi = len(reports) > 1
        keys: dict[str, str] = {}
        for d in report["devices"]:
            # the same device (id, name, platform, driver) of the same host, reported twice: one column
            ident = (d["id"], d.get("name", ""), d.get("platform", ""), d.get("driver_version", ""))
            key = f"{host}/{d['id']}"
            n = 2
            while key in by_key and by_key[key]["ident"] != ident:
                key, n = f"{host}#{n}/{d['id']}", n + 1
            keys[d["id"]] = key
            if key not in by_key:
                label = (f"{key.rsplit('/', 1)[0]}/" if multi else "") + f"{d['id']} {d.get('platform') or d['name']}"
                by_key[key] = {"key": key, "label": label, "machine": report["machine"], "device": d, "ident": ident}
                columns.append(by_key[key])
        for r in report["results"]:
            row = (r["kernel"], r["case"], r["dtype"])
            rows.setdefault(row)
            results.append(r)
            where = (row, keys[r["device"]])
            earlier = cells.get(where)
            # a cell reported twice shows the worse outcome: a failure is never hidden by a later pass
            if earlier is None or _RANK[r["status"]] >= _RANK[earlier["status"]]:
                cells[where] = r
    for c in columns:
        c.pop("ident", None)
    return Matrix(columns, list(rows), cells, reports, results)


_RANK = {"skip": 0, "pass": 1, "fail": 2}


def cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    if cell["device"].startswith(TARGET_PREFIX) and cell["status"] == "pass":
        resources = cell.get("resources") or {}
        if isinstance(resources, dict) and resources and all(isinstance(r, dict) for r in resources.values()):
            regs = max(int(r.get("registers", 0)) for r in resources.values())
            spills = max(int(r.get("spill_bytes", 0)) for r in resources.values())
            return f"pass {regs} reg" + (f", SPILLS {spills} B" if spills else "")
        return "pass"
    if cell["status"] == "pass":
        return f"pass {cell['max_error']:.1e}" if cell.get("max_error") is not None else "pass"
    if cell["status"] == "fail":
        return f"FAIL {cell['max_error']:.1e}" if cell.get("max_error") is not None else "FAIL"
    return "skip"


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def md_escape(text: Any) -> str:
    """Text safe inside a Markdown table cell: no HTML (``<`` ``>`` ``&`` as entities), no emphasis, links
    or code, a ``|`` that cannot end the cell, and one line."""
    t = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    t = _MD_SPECIAL.sub(r"\\\1", t)
    return " ".join(t.split())


def markdown_matrix(m: Matrix) -> str:
    """The matrix as a Markdown table; divergent rows are marked, failures and skips explained below."""
    counts = m.counts()
    out = ["# xgpu parity", "",
           f"{len(m.reports)} report(s), {len(m.columns)} device(s): {counts['pass']} pass, {counts['fail']} fail, "
           f"{counts['skip']} skip. Cells give the normwise relative error against a float64 reference; "
           "**bold** rows pass on one device and fail on another.", ""]
    out.append("| kernel | case | dtype | " + " | ".join(md_escape(c["label"]) for c in m.columns) + " |")
    out.append("|---|---|---|" + "---|" * len(m.columns))
    for row in m.rows:
        texts = [md_escape(cell_text(m.cells.get((row, c["key"])))) for c in m.columns]
        head = [md_escape(h) for h in row]
        if m.divergent(row):
            head = [f"**{h}**" for h in head]
            texts = [f"**{t}**" for t in texts]
        out.append("| " + " | ".join(head + texts) + " |")
    notes = [(row, c, m.cells[(row, c["key"])]) for row in m.rows for c in m.columns
             if (row, c["key"]) in m.cells and m.cells[(row, c["key"])]["status"] != "pass"]
    if notes:
        out += ["", "## Failures and skips", ""]
        for row, c, cell in notes:
            out.append(f"- {md_escape(cell['status'])}: {md_escape(' / '.join(row))} on {md_escape(c['label'])}: "
                       f"{md_escape(_first_line(cell.get('detail', '')))}")
    out += ["", "## Machines and devices", ""]
    for c in m.columns:
        d, mach = c["device"], c["machine"]
        version = next((r.get("xgpu", "?") for r in m.reports if r["machine"] is mach), "?")
        out.append(md_escape(f"- {c['label']}: {d.get('vendor', '')} / {d.get('platform', '')}, driver "
                             f"{d.get('driver_version', '')}, {d.get('backend_version', '')}; "
                             f"{mach.get('platform', '')}, xgpu {version}"))
    return "\n".join(out) + "\n"


_CSS = """body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f0f0f0}
.pass{background:#e3f6e3}.fail{background:#f9d0d0;font-weight:bold}.skip{background:#f4f4f4;color:#777}
tr.divergent td:first-child{border-left:6px solid #d33}tr.divergent{outline:2px solid #d33}"""


def html_matrix(m: Matrix) -> str:
    """The matrix as a standalone HTML page: colored cells, details on hover, divergent rows outlined."""
    e = html.escape
    counts = m.counts()
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>xgpu parity</title>",
             f"<style>{_CSS}</style></head><body><h1>xgpu parity</h1>",
             f"<p>{len(m.reports)} report(s), {len(m.columns)} device(s): {counts['pass']} pass, "
             f"{counts['fail']} fail, {counts['skip']} skip. Cells: normwise relative error against a float64 "
             "reference. Rows outlined in red pass on one device and fail on another.</p>",
             "<table><tr><th>kernel</th><th>case</th><th>dtype</th>"]
    parts += [f'<th title="{e(str(c["device"].get("driver_version", "")))}">{e(str(c["label"]))}</th>'
              for c in m.columns]
    parts.append("</tr>")
    for row in m.rows:
        parts.append(f'<tr class="{"divergent" if m.divergent(row) else ""}">')
        parts += [f"<td>{e(str(x))}</td>" for x in row]
        for c in m.columns:
            cell = m.cells.get((row, c["key"]))
            status = cell["status"] if cell else "skip"
            status = status if status in STATUSES else "fail"  # a class name from a fixed list only
            detail = e(str(cell.get("detail", "")) if cell else "not run", quote=True)
            parts.append(f'<td class="{status}" title="{detail}">{e(cell_text(cell))}</td>')
        parts.append("</tr>")
    parts.append("</table><h2>Machines and devices</h2><ul>")
    for c in m.columns:
        d = c["device"]
        parts.append(f"<li>{e(c['label'])}: {e(str(d.get('vendor', '')))} / {e(str(d.get('platform', '')))}, driver "
                     f"{e(str(d.get('driver_version', '')))}; {e(str(c['machine'].get('platform', '')))}</li>")
    parts.append("</ul></body></html>\n")
    return "".join(parts)
