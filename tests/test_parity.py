"""`xgpu parity`: the matrix, its JSON report, merging reports into HTML and Markdown, plugin cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xgpu
from xgpu.errors import InvalidArgumentError
from xgpu.tools import cli
from xgpu.tools.parity import REPORT_FORMAT, collect_cases, load_report, merge_reports, run_parity

from .conftest import run_xgpu


def test_quick_grid_passes_on_every_device(tmp_path):
    out = tmp_path / "report.json"
    proc = run_xgpu("parity", "--quick", "--dtype", "float32", "-o", str(out), "--markdown", str(tmp_path / "m.md"))
    report = json.loads(out.read_text())
    assert report["format"] == REPORT_FORMAT and report["xgpu"] == xgpu.__version__
    assert {"hostname", "platform", "python"} <= set(report["machine"])
    ids = {d.id for d in xgpu.devices()}
    assert {d["id"] for d in report["devices"]} == ids
    assert all(d["driver_version"] and "backend_version" in d for d in report["devices"])
    results = report["results"]
    assert {r["kernel"] for r in results} == {"gemm", "conv2d"}
    assert len(results) == len(ids) * len([c for c in collect_cases(quick=True) if c.dtype == "float32"])
    assert all(r["status"] == "pass" for r in results), [r for r in results if r["status"] != "pass"]
    assert all(r["max_error"] <= r["tolerance"] for r in results)
    assert "0 fail" in proc.stdout and "conv2d" in proc.stdout
    assert (tmp_path / "m.md").read_text().startswith("# xgpu parity")


class Planted:
    """A plugin kernel whose result is wrong on one device only, and one float64 case."""

    def __init__(self, bad_device: str):
        self.bad = bad_device

    @xgpu.hookimpl
    def xgpu_register_parity_cases(self, register):
        def run(device, rng):
            x = rng.uniform(1, 2, 50)
            got = xgpu.asarray(x.astype(np.float32), device).get().astype(np.float64)
            if device.id == self.bad:
                got[7] += 1.0
            return got, x, 1

        def exact(device, rng):
            x = rng.uniform(1, 2, 50)
            return xgpu.asarray(x, device).get(), x, 1

        register.add("planted", "off by one on one device", "float32", run)
        register.add("planted", "huge", "float64", exact, work=10**12)


@pytest.fixture
def planted():
    devs = xgpu.devices()
    plugin = Planted(devs[-1].id)
    name = xgpu.register_plugin(plugin, name="planted-parity")
    yield plugin
    xgpu.unregister_plugin(name)


def test_divergent_case_is_highlighted_and_fails(planted, tmp_path, monkeypatch):
    devs = xgpu.devices()
    if len(devs) < 2:
        pytest.skip("needs two devices")
    report = run_parity(devs, collect_cases(kernels=["planted"]))
    by = {(r["case"], r["device"]): r for r in report["results"]}
    bad = by[("off by one on one device", planted.bad)]
    assert bad["status"] == "fail" and "1 of 50 elements" in bad["detail"] and "index (7,)" in bad["detail"]
    assert all(by[("off by one on one device", d.id)]["status"] == "pass" for d in devs if d.id != planted.bad)
    for d in devs:
        r = by[("huge", d.id)]
        if not d.fp64:  # the case is float64: the dtype's reason comes first (rusticl on llvmpipe)
            assert r["status"] == "skip" and "float64 is not supported" in r["detail"]
        elif d.is_simulator:
            assert r["status"] == "skip" and "too much for a simulator" in r["detail"]
        else:
            assert r["status"] == "pass"
    matrix = merge_reports([report])
    assert matrix.divergent(("planted", "off by one on one device", "float32"))
    assert not matrix.divergent(("planted", "huge", "float64"))

    monkeypatch.chdir(tmp_path)
    html, md = tmp_path / "m.html", tmp_path / "m.md"
    code = cli.main(["parity", "--kernel", "planted", "-o", "r.json", "--html", str(html), "--markdown", str(md)])
    assert code == 1  # a failing case makes the exit status non-zero
    assert 'class="divergent"' in html.read_text()
    assert "| **planted** | **off by one on one device** |" in md.read_text()


def test_dtype_the_device_lacks_is_a_skip_with_reason(planted, monkeypatch):
    dev = next(d for d in xgpu.devices() if not d.is_simulator)
    monkeypatch.setattr(dev, "fp64", False)
    (r,) = run_parity([dev], [c for c in collect_cases(kernels=["planted"]) if c.dtype == "float64"])["results"]
    assert r["status"] == "skip" and "float64 is not supported" in r["detail"]


def test_merge_two_machines_into_html_and_markdown(tmp_path):
    dev = next(d for d in xgpu.devices() if not d.is_simulator)
    cases = [c for c in collect_cases(quick=True, kernels=["gemm"]) if c.dtype == "float32"][:2]
    a = run_parity([dev], cases)
    b = json.loads(json.dumps(a))
    b["machine"]["hostname"] = "lab-nvidia-box"
    b["results"][0].update(status="fail", max_error=0.5, detail="planted failure")
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    html, md = tmp_path / "m.html", tmp_path / "m.md"
    proc = run_xgpu("parity", "merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                    "--html", str(html), "--markdown", str(md), check=False)
    assert proc.returncode == 1, proc.stderr
    text = md.read_text()
    assert f"lab-nvidia-box/{dev.id}" in text and "FAIL 5.0e-01" in text and "planted failure" in text
    assert text.count("**") >= 2  # the divergent row is bold
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and 'class="fail"' in page and 'class="divergent"' in page
    assert "lab-nvidia-box" in proc.stdout


def test_merge_refuses_what_is_not_a_report(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    (tmp_path / "y.json").write_text("not json")
    with pytest.raises(InvalidArgumentError, match="not an xgpu parity report"):
        load_report(tmp_path / "x.json")
    with pytest.raises(InvalidArgumentError, match="not a JSON parity report"):
        load_report(tmp_path / "y.json")
    proc = run_xgpu("parity", "merge", str(tmp_path / "missing.json"), check=False)
    assert proc.returncode == 1 and "no such file" in proc.stderr


def test_unknown_kernel_is_refused():
    with pytest.raises(InvalidArgumentError, match="no parity cases for kernel.*nope.*known: conv2d, gemm"):
        collect_cases(kernels=["nope"])


def test_bad_dtype_is_a_clear_error():
    proc = run_xgpu("parity", "--dtype", "nope", check=False)
    assert proc.returncode == 1 and "InvalidArgumentError: --dtype" in proc.stderr and "Traceback" not in proc.stderr


def test_unwritable_outputs_are_refused_before_the_run(tmp_path):
    missing = tmp_path / "no-such-folder"
    proc = run_xgpu("parity", "--quick", "-o", str(missing / "r.json"), check=False)
    assert proc.returncode == 1 and f"cannot write {missing / 'r.json'}" in proc.stderr
    assert "Traceback" not in proc.stderr and "pass" not in proc.stdout  # refused before any case ran


def test_compile_rows_for_offline_targets_beside_the_devices(tmp_path):
    # every library variant (here the quick float32 GEMM ones) through each chosen GPU compiler, as columns
    dev = xgpu.devices()[-1]
    out = tmp_path / "r.json"
    proc = run_xgpu("parity", "--kernel", "gemm", "--dtype", "float32", "--quick", "--device", dev.id,
                    "--targets", "amd:gfx90a,sm_80", "--targets", "intel:dg2", "-o", str(out),
                    "--markdown", str(tmp_path / "m.md"))
    report = load_report(out)
    ids = [d["id"] for d in report["devices"]]
    assert ids == [dev.id, "target:amd:gfx90a", "target:intel:dg2", "target:nvidia:sm_80"]
    compiles = [r for r in report["results"] if r["device"].startswith("target:")]
    assert compiles and {r["device"] for r in compiles} == set(ids[1:])
    assert all(r["status"] == "pass" and r["case"].startswith("compile ") for r in compiles), compiles
    assert all(max(k["registers"] for k in r["resources"].values()) > 0 for r in compiles)
    assert "bytes spilled" in compiles[0]["detail"]
    text = (tmp_path / "m.md").read_text()
    assert "target:amd:gfx90a" in text and " reg " in text and "0 fail" in proc.stdout
    # the report merges like any other: the compile columns stay
    merged = merge_reports([report])
    assert [c["device"]["id"] for c in merged.columns] == ids


def test_a_target_spec_that_names_nothing_is_refused_before_the_run(tmp_path):
    proc = run_xgpu("parity", "--quick", "--targets", "gfx9000", "-o", str(tmp_path / "r.json"), check=False)
    assert proc.returncode == 1 and "'gfx9000' names no offline target" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r.json").exists()
