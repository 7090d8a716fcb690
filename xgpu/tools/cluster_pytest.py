"""``xgpu test``: the user's device-parametrised pytest tests on every worker of a Dask cluster.

The client packs the test files and folders named on its command line (with the ``conftest.py``
and ``__init__.py`` files between them and the current folder, and the pytest configuration file
found there) into one archive; each worker unpacks it into a fresh folder and runs pytest in a
process of its own, with ``XGPU_TEST_DEVICES`` set to the devices the worker exposes, so every test
that takes ``xgpu_device`` runs on that worker's devices. Each worker's JUnit XML comes back; the
client merges them: a table of test by worker, one JUnit XML with a suite per worker, one JSON.
A worker that dies, runs past ``--timeout`` or cannot start pytest is reported so; the rest is kept.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xgpu.errors import InvalidArgumentError

#: The archive sent to the workers may not be larger than this.
MAX_ARCHIVE_BYTES = 50 * 2**20
CONFIG_FILES = ("pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "conftest.py")
_SKIP_DIRS = {"__pycache__", ".git", ".venv", ".pytest_cache", "node_modules"}


def _test_paths(args: list[str], root: Path) -> list[Path]:
    out = []
    for a in args:
        if a.startswith("-"):
            continue
        p = Path(a.split("::")[0])
        full = (root / p).resolve()
        if not full.exists():
            continue
        try:
            full.relative_to(root.resolve())
        except ValueError:
            raise InvalidArgumentError(f"{a}: test paths must lie inside the current folder ({root}), "
                                       "which is what is sent to the workers") from None
        out.append(full)
    return out


def pack(args: list[str], root: Path) -> bytes:
    """A gzipped tar of what the pytest arguments name, relative to ``root``."""
    root = root.resolve()
    paths = _test_paths(args, root)
    if not paths:
        raise InvalidArgumentError("name the test files or folders to run after `--`, e.g. "
                                   "xgpu test --scheduler tcp://HOST:8786 -- tests/test_mine.py")
    files: dict[str, Path] = {}
    for name in CONFIG_FILES:
        if (root / name).is_file():
            files[name] = root / name
    for p in paths:
        folder = p if p.is_dir() else p.parent
        while folder != root and root in folder.parents:  # the package and conftest files above the tests
            for name in ("__init__.py", "conftest.py"):
                if (folder / name).is_file():
                    files[str((folder / name).relative_to(root))] = folder / name
            folder = folder.parent
        walk = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()
                                        and not _SKIP_DIRS & set(f.relative_to(p).parts)]
        for f in walk:
            files[str(f.relative_to(root))] = f
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, f in sorted(files.items()):
            tar.add(str(f), arcname=name, recursive=False)
    data = buf.getvalue()
    if len(data) > MAX_ARCHIVE_BYTES:
        raise InvalidArgumentError(f"the tests to send are {len(data) / 2**20:.0f} MiB packed (limit "
                                   f"{MAX_ARCHIVE_BYTES // 2**20} MiB): name the test files, not a large folder")
    return data


def run_pytest_here(archive: bytes, args: list[str], timeout: float | None = None) -> dict[str, Any]:
    """On a worker: unpack the tests and run pytest on this worker's devices; JUnit XML and output back."""
    from xgpu.tools.cluster import WORKER_DEVICES_ENV, _case_lock

    with _case_lock, tempfile.TemporaryDirectory(prefix="xgpu-test-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        junit = Path(tmp) / ".xgpu-junit.xml"
        env = dict(os.environ)
        if os.environ.get(WORKER_DEVICES_ENV):
            env["XGPU_TEST_DEVICES"] = os.environ[WORKER_DEVICES_ENV]
        cmd = [sys.executable, "-m", "pytest", *args, f"--junitxml={junit}", "-p", "no:cacheprovider"]
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raw = exc.stdout or b""
            out = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
            return {"returncode": None, "junit": junit.read_text() if junit.exists() else "",
                    "output": out[-20000:], "seconds": round(time.monotonic() - start, 1), "timed_out": True}
        return {"returncode": proc.returncode, "junit": junit.read_text() if junit.exists() else "",
                "output": (proc.stdout + proc.stderr)[-20000:], "seconds": round(time.monotonic() - start, 1),
                "timed_out": False}


def parse_junit(text: str) -> list[dict[str, str]]:
    """(id, outcome, message) of each test case of a JUnit XML file pytest wrote."""
    if not text.strip():
        return []
    out = []
    for case in ET.fromstring(text).iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        test_id = f"{module}::{case.get('name', '?')}"
        outcome, message = "passed", ""
        for kind, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            el = case.find(kind)
            if el is not None:
                lines = (el.get("message") or "").strip().splitlines()
                outcome, message = name, lines[0] if lines else ""
                break
        out.append({"id": test_id, "outcome": outcome, "message": message, "time": case.get("time", "0")})
    return out


def run_tests(client, archive: bytes, args: list[str], *, timeout: float | None = None,
              skip_mismatched: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run pytest on every worker of ``client``'s cluster; the merged result."""
    from xgpu.tools import cluster

    distributed = cluster._distributed()
    info = cluster.workers_of(client)
    states = [cluster.WorkerState(address=a, name=str(w.get("name", a)), host=str(w.get("host", "?")))
              for a, w in sorted(info.items(), key=lambda kv: str(kv[1].get("name")))]
    for w in states:
        try:
            w.identity = client.submit(cluster.worker_identity, workers=[w.address], allow_other_workers=False,
                                       pure=False).result(timeout=cluster.WAIT_FOR_WORKERS_S)
        except Exception as exc:
            w.status, w.detail = cluster.RAISED, f"{type(exc).__name__}: {exc}"
    mine = {"xgpu": cluster._client_version(), "plugins": cluster.plugin_versions()}
    mismatched = cluster.check_versions([w for w in states if w.identity], mine)
    if mismatched and not skip_mismatched:
        lines = "\n".join(f"  worker {w.name} ({w.address}, host {w.host}): {why}" for w, why in mismatched)
        raise cluster.VersionMismatchError(
            f"{len(mismatched)} worker(s) do not run the same xgpu and plugins as this machine:\n{lines}\n"
            "install the same versions there, or leave those workers out with --skip-mismatched")
    for w, why in mismatched:
        w.status, w.detail = cluster.REFUSED, f"other versions than the client: {why}"
    futures = {}
    for w in states:
        if w.status == cluster.RUNNING:
            w.started = time.monotonic()
            futures[client.submit(run_pytest_here, archive, args, timeout, workers=[w.address],
                                  allow_other_workers=False, pure=False)] = w
    outcomes: dict[str, dict[str, Any]] = {}
    pending = set(futures)
    missing: dict[str, int] = {}
    while pending:
        try:
            done, _ = distributed.wait(list(pending), timeout=1.0, return_when="FIRST_COMPLETED")
        except (TimeoutError, distributed.TimeoutError):
            done = set()
        for f in done:
            pending.discard(f)
            w = futures[f]
            if f.status == "finished":
                got = f.result()
                outcomes[w.name] = got
                if got["timed_out"]:
                    w.status, w.detail = cluster.TIMEOUT, f"pytest ran past --timeout {timeout:g} s"
                elif got["returncode"] not in (0, 1, 5):  # 5: no tests collected
                    w.status = cluster.RAISED
                    tail = got["output"].strip().splitlines()[-3:]
                    w.detail = f"pytest exited {got['returncode']}: " + " / ".join(tail)
                else:
                    w.status = cluster.DONE
            else:
                gone = w.address not in cluster._alive(client)
                w.status = cluster.LOST if gone else cluster.RAISED
                w.detail = "the worker died while running the tests" if gone else str(f.exception())
            if progress:
                progress(f"{w.name} ({w.host}): {w.status}")
        alive = cluster._alive(client)
        now = time.monotonic()
        for f in list(pending):
            w = futures[f]
            # missing from two listings a second apart (one listing can miss a worker that is there)
            missing[w.address] = missing.get(w.address, 0) + 1 if w.address not in alive else 0
            if missing[w.address] >= 2:
                w.status, w.detail = cluster.LOST, "the worker left the cluster (died?) while running the tests"
            elif timeout and now - w.started > timeout + 30:  # pytest's own timeout did not end it
                w.status, w.detail = cluster.TIMEOUT, f"no answer {timeout:g} s after the tests started"
            else:
                continue
            pending.discard(f)
            f.cancel()
    workers = []
    totals = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for w in states:
        got = outcomes.get(w.name, {})
        tests = parse_junit(got.get("junit", ""))
        for t in tests:
            key = "failed" if t["outcome"] == "error" else t["outcome"]
            totals[key] = totals.get(key, 0) + 1
        workers.append({"name": w.name, "host": w.host, "address": w.address, "status": w.status, "detail": w.detail,
                        "returncode": got.get("returncode"), "seconds": got.get("seconds"),
                        "devices": [d["id"] + " " + str(d.get("platform") or d["name"])
                                    for d in w.identity.get("devices", [])],
                        "tests": tests, "output": got.get("output", "")})
    return {"format": "xgpu-test-cluster/1", "args": args, "workers": workers, "totals": totals}


def table(data: dict[str, Any]):
    """Tests by workers, as a rich table."""
    from rich.table import Table

    t = Table(title="xgpu test: one column per worker", title_justify="left")
    t.add_column("test")
    ids: dict[str, None] = {}
    by_worker = []
    for w in data["workers"]:
        label = f"{w['host']}/{w['name']}" + (f" [{w['status'].upper()}]" if w["status"] != "done" else "")
        t.add_column(label)
        by_worker.append({x["id"]: x for x in w["tests"]})
        for x in w["tests"]:
            ids.setdefault(x["id"])
    style = {"passed": "green", "failed": "bold red", "error": "bold red", "skipped": "dim"}
    for test_id in ids:
        cells = []
        for tests in by_worker:
            x = tests.get(test_id)
            cells.append(f"[{style[x['outcome']]}]{x['outcome']}[/]" if x else "-")
        t.add_row(test_id, *cells)
    return t


def junit_xml(data: dict[str, Any]) -> str:
    """The merged result as JUnit XML: a ``testsuite`` per worker (a lost worker: one error case)."""
    root = ET.Element("testsuites", name="xgpu test")
    for w in data["workers"]:
        tests = w["tests"]
        suite = ET.SubElement(root, "testsuite", name=f"{w['host']}/{w['name']}", tests=str(len(tests) or 1),
                              failures=str(sum(t["outcome"] == "failed" for t in tests)),
                              errors=str(sum(t["outcome"] == "error" for t in tests) + (w["status"] != "done")),
                              skipped=str(sum(t["outcome"] == "skipped" for t in tests)))
        props = ET.SubElement(suite, "properties")
        for d in w["devices"]:
            ET.SubElement(props, "property", name="device", value=d)
        for t in tests:
            case = ET.SubElement(suite, "testcase", classname=w["name"], name=t["id"], time=t["time"])
            if t["outcome"] in ("failed", "error", "skipped"):
                ET.SubElement(case, {"failed": "failure"}.get(t["outcome"], t["outcome"]), message=t["message"])
        if w["status"] != "done":
            case = ET.SubElement(suite, "testcase", classname=w["name"], name="worker")
            ET.SubElement(case, "error", message=f"{w['status']}: {w['detail']}")
    return ET.tostring(root, encoding="unicode") + "\n"
