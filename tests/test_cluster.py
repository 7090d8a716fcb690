"""The parity matrix and the user's tests on a real Dask cluster (docs/cluster.md).

Local clusters stand in for a lab's machines: ``--cluster local:3`` starts three worker processes,
each seeing one OpenCL implementation (its own ``OCL_ICD_VENDORS``); ``xgpu worker`` processes
joined to a ``dask scheduler`` split this machine's devices with ``--devices``. Nothing is mocked:
workers run the cases on their devices, one is killed with SIGKILL mid-run, one runs another
plugin version. A plugin's small kernel (two cases, one compile a device) keeps the run short; the
library's own grid runs the same way (docs/cluster.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import xgpu

pytest.importorskip("distributed", reason="the cluster extra is not installed: pip install 'xgpu[cluster]'")

from xgpu.tools.cluster import (  # noqa: E402
    CLUSTER_FORMAT,
    ClusterError,
    cluster_matrix,
    connect,
    load_cluster_report,
)
from xgpu.tools.parity import cell_text, load_report, merge_reports  # noqa: E402

from .conftest import ROOT, run_xgpu  # noqa: E402

GRID = ("--quick", "--kernel", "tiny", "--dtype", "float32")
IMPLEMENTATIONS = {"Portable Computing Language", "Intel(R) OpenCL", "Oclgrind"}

# A plugin kernel, installed for real (a module and its .dist-info on PYTHONPATH, which every worker
# process inherits): its cases travel to the workers like the library's, and a worker that finds
# another version of it is refused. One small compile a device keeps the tests short on loaded
# cores; `tinyslow` is a case that takes seconds (a long case to kill a worker in).
PLUGIN = """
import time
from pathlib import Path

import numpy as np
import xgpu

TEMPLATE = Path(__file__).with_name("tiny_scale.mako")


def _scale(n, pause=0.0):
    def run(device, rng):
        time.sleep(pause)
        x = rng.uniform(-1, 1, n).astype(np.float32)
        y = xgpu.asarray(np.full(n, np.nan, np.float32), device)
        xgpu.compile(TEMPLATE, device).scale(y, xgpu.asarray(x, device), n, global_size=n)
        return y.get(), 2.0 * x.astype(np.float64) + 1.0, 1
    return run


@xgpu.hookimpl
def xgpu_register_parity_cases(register):
    register.add("tiny", "n=1", "float32", _scale(1))
    register.add("tiny", "n=1000", "float32", _scale(1000))
    register.add("tinyslow", "n=7, 3 s", "float32", _scale(7, pause=3.0))
"""
KERNEL = """KERNEL void scale(GLOBAL_MEM float* y, GLOBAL_MEM const float* x, const index_t n) {
    const index_t i = GLOBAL_ID(0);
    if (i < n) {
        y[i] = 2.0f * x[i] + 1.0f;
    }
}
"""


def _install_plugin(folder: Path, version: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "xgpu_tiny.py").write_text(PLUGIN)
    (folder / "tiny_scale.mako").write_text(KERNEL)
    info = folder / f"xgpu_tiny-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: xgpu-tiny\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[xgpu]\ntiny = xgpu_tiny\n")
    return str(folder)


@pytest.fixture(scope="module", autouse=True)
def tiny_plugin(tmp_path_factory):
    """The plugin on PYTHONPATH of every process these tests start (the client and its workers)."""
    folder = _install_plugin(tmp_path_factory.mktemp("plugin") / "v1", "0.1")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = folder + (os.pathsep + old if old else "")
    yield folder
    if old is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = old


def _need_three_implementations():
    platforms = {d.platform for d in xgpu.devices()}
    missing = IMPLEMENTATIONS - platforms
    if missing:
        if os.environ.get("XGPU_REQUIRE_DEVICES"):
            pytest.fail(f"OpenCL implementation(s) {', '.join(sorted(missing))} required here but not found")
        pytest.skip(f"needs PoCL, Intel's CPU runtime and Oclgrind; missing {', '.join(sorted(missing))}")


def _cells(matrix):
    """Cell texts column by column, keyed by the device's platform (the same on both sides)."""
    out = {}
    for c in matrix.columns:
        out[c["device"]["platform"]] = {row: cell_text(matrix.cells.get((row, c["key"]))) for row in matrix.rows}
    return out


def test_local_cluster_of_three_implementations_equals_runs_one_by_one(tmp_path):
    _need_three_implementations()
    out, html, md = tmp_path / "cluster.json", tmp_path / "cluster.html", tmp_path / "cluster.md"
    proc = run_xgpu("parity", "--cluster", "local:3", *GRID, "-o", str(out), "--html", str(html), "--markdown", str(md))
    data = load_cluster_report(out)
    assert data["format"] == CLUSTER_FORMAT and data["complete"]
    assert [w["status"] for w in data["workers"]] == ["done"] * 3, data["workers"]
    platforms = [d["platform"] for r in data["reports"] for d in r["devices"]]
    assert sorted(platforms) == sorted(IMPLEMENTATIONS)  # one implementation a worker, three different ones
    matrix = cluster_matrix(data)
    assert len(matrix.columns) == 3 and matrix.counts()["fail"] == 0
    for c in matrix.columns:  # host and worker in every column
        assert c["label"].startswith(f"{c['machine']['hostname']}/{c['machine']['worker']}/")
        assert c["label"] in proc.stdout.replace("\n", "") or c["machine"]["worker"] in proc.stdout
    assert "local-" in md.read_text() and "local-" in html.read_text()
    # `xgpu parity merge` reads a cluster run's file as its workers' reports
    from xgpu.tools import cli

    assert cli.main(["parity", "merge", str(out), "--markdown", str(tmp_path / "merged.md")]) == 0
    assert all(w["name"] in (tmp_path / "merged.md").read_text() for w in data["workers"])

    # the same three environments, one `xgpu parity` each (side by side), merged: cell for cell the same
    paths = [tmp_path / f"{w['name']}.json" for w in data["workers"]]
    procs = [subprocess.Popen([sys.executable, "-m", "xgpu.tools.cli", "parity", *GRID, "-o", str(path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "OCL_ICD_VENDORS": w["env"]["OCL_ICD_VENDORS"]})
             for w, path in zip(data["workers"], paths)]
    for p in procs:
        out_text = p.communicate(timeout=300)[0]
        assert p.returncode == 0, out_text
    alone = [load_report(path) for path in paths]
    merged = merge_reports(alone)
    assert _cells(merged) == _cells(matrix)
    assert merged.rows == matrix.rows


def _read_partial(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_a_worker_killed_mid_run_is_named_and_the_others_complete(tmp_path):
    _need_three_implementations()
    out = tmp_path / "partial.json"
    cmd = [sys.executable, "-m", "xgpu.tools.cli", "parity", "--cluster", "local:3", *GRID, "--kernel", "tinyslow",
           "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 240
    try:
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            data = _read_partial(out)
            for w in (data or {}).get("workers", []):
                if "oclgrind" in w["name"] and w["pid"] and w["status"] == "running":
                    victim = w
                    os.kill(w["pid"], signal.SIGKILL)
                    break
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert victim is not None, f"the Oclgrind worker was never seen running:\n{stdout}\n{stderr}"
    data = load_cluster_report(out)
    assert data["complete"]
    states = {w["name"]: w for w in data["workers"]}
    lost = states[victim["name"]]
    assert lost["status"] == "lost" and "died" in lost["detail"], lost
    others = [w for n, w in states.items() if n != victim["name"]]
    assert [w["status"] for w in others] == ["done", "done"] and all(w["cases_done"] == 3 for w in others)
    # the results the victim measured before it died are kept, and its column names it
    kept = next(r for r in data["reports"] if r["machine"]["worker"] == victim["name"])
    assert len(kept["results"]) == lost["cases_done"]
    matrix = cluster_matrix(data)
    label = next(c["label"] for c in matrix.columns if c["machine"]["worker"] == victim["name"])
    assert "LOST" in label and victim["name"] in label
    assert proc.returncode == 1 and f"worker {victim['name']}" in stdout and "lost" in stdout


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A `dask scheduler`, two `xgpu worker`s splitting this machine's devices (PoCL, Intel), and a third
    worker with another version of the plugin."""
    _need_three_implementations()
    folder = tmp_path_factory.mktemp("sched")
    sfile = folder / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--dashboard-address", ":0", "--scheduler-file", str(sfile)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 120
        while not sfile.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sfile.read_text())["address"]
        for name, spec in (("split-pocl", "pocl"), ("split-intel", "intel")):
            procs.append(_start_worker(address, name, args=("--devices", spec)))
        # the same plugin at another version, on a third worker (started beside the others: less waiting)
        other = _install_plugin(folder / "v2", "0.2")
        procs.append(_start_worker(address, "odd-plugins", {"PYTHONPATH": other}))
        for p in procs[1:]:
            _joined(p)
        yield address, procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()


def _start_worker(address: str, name: str, env: dict[str, str] | None = None, args=()) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xgpu.tools.cli", "worker", address, "--name", name, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, **(env or {})})


def _joined(worker: subprocess.Popen) -> None:
    """Wait for `xgpu worker` to say it joined the scheduler."""
    assert worker.stdout is not None
    for line in worker.stdout:
        if "joined as" in line:
            return
    raise AssertionError(f"xgpu worker exited {worker.wait()} without joining")


def test_workers_split_devices_and_a_mismatched_plugin_version_is_refused(scheduler, tmp_path):
    _need_three_implementations()
    address, _ = scheduler
    out = tmp_path / "c.json"
    # refused before any case runs, naming the worker and what differs
    proc = run_xgpu("parity", "--scheduler", address, *GRID, "-o", str(out), check=False)
    assert proc.returncode == 1
    assert "VersionMismatchError" in proc.stderr and "worker odd-plugins" in proc.stderr
    assert "plugin 'tiny' xgpu-tiny 0.2 ok (here xgpu-tiny 0.1 ok)" in proc.stderr, proc.stderr
    assert "split-pocl" not in proc.stderr

    # left out on request: its column says why; the two others split the host's devices
    proc = run_xgpu("parity", "--scheduler", address, *GRID, "-o", str(out), "--skip-mismatched", check=False)
    data = load_cluster_report(out)
    states = {w["name"]: w for w in data["workers"]}
    assert set(states) == {"split-pocl", "split-intel", "odd-plugins"}, proc.stderr
    assert states["odd-plugins"]["status"] == "refused" and "0.2" in states["odd-plugins"]["detail"]
    assert states["split-pocl"]["status"] == states["split-intel"]["status"] == "done"
    assert states["split-pocl"]["resources"] == {"xgpu-devices": 1, "xgpu-opencl": 1}
    devices = {w["machine"]["worker"]: [d["platform"] for d in w["devices"]] for w in data["reports"]}
    assert devices["split-pocl"] == ["Portable Computing Language"] and devices["split-intel"] == ["Intel(R) OpenCL"]
    labels = [c["label"] for c in cluster_matrix(data).columns]
    assert any("odd-plugins" in x and "REFUSED" in x for x in labels), labels
    assert proc.returncode == 1  # a worker did not run

    # a worker whose devices the selection leaves out is a column saying so; one past --timeout too (its
    # 3 s case is still running after 1 s)
    run_xgpu("parity", "--scheduler", address, *GRID, "--kernel", "tinyslow", "-o", str(out), "--skip-mismatched",
             "--exclude", "intel", "--timeout", "1", check=False)
    data = load_cluster_report(out)
    states = {w["name"]: w for w in data["workers"]}
    assert states["split-intel"]["status"] == "no devices", states
    assert states["split-pocl"]["status"] == "timed out" and "--timeout 1 s" in states["split-pocl"]["detail"]
    labels = [c["label"] for c in cluster_matrix(data).columns]
    assert any("split-intel" in x and "NO DEVICES" in x for x in labels), labels
    assert any("split-pocl" in x and "TIMED OUT" in x for x in labels), labels


USER_TEST = '''
import numpy as np
import xgpu

def test_roundtrip(xgpu_device):
    x = np.arange(7, dtype=np.float32)
    assert (xgpu.asarray(x, xgpu_device).get() == x).all()

def test_fails_on_intel(xgpu_device):
    assert "Intel" not in xgpu_device.platform, "planted failure"
'''


def test_user_tests_run_on_every_worker_with_one_merged_result(scheduler, tmp_path):
    address, _ = scheduler
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "test_mine.py").write_text(USER_TEST)
    junit, out = tmp_path / "merged.xml", tmp_path / "merged.json"
    proc = subprocess.run([sys.executable, "-m", "xgpu.tools.cli", "test", "--scheduler", address,
                           "--skip-mismatched", "--junitxml", str(junit), "-o", str(out), "--", "mine", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    data = json.loads(out.read_text())
    assert proc.returncode == 1  # the planted failure on the Intel worker
    states = {w["name"]: w for w in data["workers"]}
    refused = states.pop("odd-plugins")
    assert refused["status"] == "refused" and "xgpu-tiny 0.2" in refused["detail"] and not refused["tests"]
    assert set(states) == {"split-pocl", "split-intel"} and all(w["status"] == "done" for w in states.values())
    outcome = {(n, t["id"].split("::")[-1]): t["outcome"] for n, w in states.items() for t in w["tests"]}
    # each worker ran the tests on its one device (the id its device has on this host)
    dev = {n: w["devices"][0].split()[0] for n, w in states.items()}
    assert [len(w["devices"]) for w in states.values()] == [1, 1]
    assert outcome == {("split-pocl", f"test_roundtrip[{dev['split-pocl']}]"): "passed",
                       ("split-pocl", f"test_fails_on_intel[{dev['split-pocl']}]"): "passed",
                       ("split-intel", f"test_roundtrip[{dev['split-intel']}]"): "passed",
                       ("split-intel", f"test_fails_on_intel[{dev['split-intel']}]"): "failed"}, outcome
    assert "3 passed, 1 failed, 0 skipped on 3 worker(s)" in proc.stdout
    assert "planted failure" in proc.stdout
    text = junit.read_text()
    assert text.count("<testsuite ") == 3 and "split-intel" in text and "refused" in text


def test_cluster_needs_a_valid_local_spec_and_a_scheduler(capsys):
    from xgpu.tools import cli

    assert cli.main(["parity", "--cluster", "local:zero"]) == 1
    assert "expected local:N" in capsys.readouterr().err
    with pytest.raises(ClusterError, match="no Dask scheduler answers at tcp://127.0.0.1:9.*dask scheduler"):
        connect("tcp://127.0.0.1:9", connect_s=1)


def test_docs_name_the_cluster_commands():
    text = (ROOT / "docs" / "cluster.md").read_text()
    for needle in ("xgpu parity --cluster local:3", "xgpu worker tcp://", "--timeout", "--skip-mismatched",
                   "dask scheduler"):
        assert needle in text, needle
    assert "xgpu test --scheduler" in (ROOT / "docs" / "testing.md").read_text()
