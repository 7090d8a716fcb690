"""Autotuning: the budgeted search, the store (per device identity, dtype, shape class), and the library
using stored variants with no code change."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import xgpu
from xgpu import tuning as autotune
from xgpu.errors import InvalidArgumentError, XgpuError
from xgpu.kernels.gemm import _kernel, config_for
from xgpu.kernels.gemm.autotune import neighbours
from xgpu.kernels.gemm.tuning import GemmConfig
from xgpu.tools.tune import Tunable, tune
from xgpu.tuning import TuningWarning

from .conftest import run_xgpu


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("XGPU_TUNING_DIR", str(tmp_path / "tuning"))
    return tmp_path / "tuning" / "tuning.json"


def cpu():
    """A real device, Intel's runtime where there is one (it compiles a variant in about a second;
    PoCL takes tens of seconds with a cold cache)."""
    real = [d for d in xgpu.devices() if not d.is_simulator]
    return next((d for d in real if "intel" in d.platform.lower()), real[0])


class Clock:
    """The tuner's clock, advanced by the toy's measurements only: budgets are tested without waiting."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def toy(values: dict[int, float | Exception], default=0, cost=0.0, clock: Clock | None = None) -> Tunable:
    """A search space of integers: neighbours are +-1, each has a fixed speed (or fails) and takes
    ``cost`` seconds of ``clock``."""
    def measure(x):
        if clock is not None:
            clock.now += cost
        v = values[x]
        if isinstance(v, Exception):
            raise v
        return v

    return Tunable("toy", "any", "toy", default, lambda x: [y for y in (x + 1, x - 1) if y in values], measure,
                   str, lambda x: {"x": x})


def test_search_climbs_to_the_best_and_discards_failures():
    t = toy({0: 10.0, 1: 12.0, 2: 20.0, 3: AssertionError("3 of 9 elements differ"), -1: 5.0,
             4: xgpu.errors.LaunchError("too large")})
    result = tune(t, budget_s=30)
    assert result.best == 2 and result.best_gflops == 20.0 and result.default_gflops == 10.0
    assert result.speedup == 2.0
    why = {label: reason for label, _, reason in result.tried}
    assert why["3"].startswith("wrong result: 3 of 9 elements differ")
    assert "4" not in why  # 4 is only a neighbour of 3, which was discarded
    assert "no untried neighbour" in result.stop


def test_each_candidate_is_compiled_once():
    t = toy({0: 10.0, 1: 12.0, 2: 20.0, -1: 5.0})
    compiled = []
    t.compile = lambda x, timeout: compiled.append(x)
    result = tune(t, budget_s=30)
    assert result.best == 2 and len(result.tried) == len(compiled) + 2  # the side-by-side re-timing compiles nothing
    assert sorted(compiled) == sorted(set(compiled))


def test_search_stops_within_its_budget(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("xgpu.tools.tune.time", clock)
    t = toy({i: float(i) for i in range(1000)}, cost=1 / 16, clock=clock)
    result = tune(t, budget_s=1.0)
    # a candidate starts only while 1.25x the slowest one still fits: after 14 (+ the default) at 1/16 s
    # each, 15/16 + 5/64 would overrun, and there is no time left to re-time the winner beside the default
    assert result.stop.startswith("budget") and result.best == 14 and len(result.tried) == 15
    assert result.seconds == 15 / 16


def test_a_failing_default_or_a_bad_budget_is_an_error():
    with pytest.raises(XgpuError, match="default toy variant 0 failed"):
        tune(toy({0: AssertionError("wrong")}), budget_s=5)
    with pytest.raises(InvalidArgumentError, match="budget must be positive"):
        tune(toy({0: 1.0}), budget_s=0)


def test_store_is_keyed_by_device_dtype_and_shape_class(store):
    dev = cpu()
    cfg = {"local_tiles": False, "tm": 64, "tn": 32, "wm": 8, "wn": 2, "tk": 16, "kc": 512,
           "contiguous_cols": False, "vw": 1}
    autotune.record("gemm", dev, "float32", "large", cfg, gflops=1.0)
    assert autotune.lookup("gemm", dev, np.float32, "large") == cfg
    assert autotune.lookup("gemm", dev, np.float64, "large") is None
    assert autotune.lookup("gemm", dev, np.float32, "small") is None
    other = next(d for d in xgpu.devices() if d is not dev)
    assert autotune.lookup("gemm", other, np.float32, "large") is None
    autotune.record("gemm", dev, "float32", "large", {**cfg, "tm": 128}, gflops=2.0)  # replaces, not adds
    assert [e["config"]["tm"] for e in autotune.entries()] == [128]
    data = json.loads(store.read_text())
    assert data["format"] == "xgpu-tuning/1"
    assert data["entries"][0]["device"]["driver_version"] == dev.driver_version
    assert data["entries"][0]["device"]["xgpu"] == xgpu.__version__


def test_other_driver_or_xgpu_version_does_not_apply(monkeypatch):
    dev = cpu()
    autotune.record("gemm", dev, "float32", "large", {"tm": 1}, gflops=1.0)
    monkeypatch.setattr(dev, "driver_version", dev.driver_version + "-new")
    assert autotune.lookup("gemm", dev, "float32", "large") is None
    monkeypatch.undo()
    monkeypatch.setattr(xgpu, "__version__", "99.0")
    assert autotune.lookup("gemm", dev, "float32", "large") is None


@pytest.mark.parametrize("content", ["{not json", '{"format": "something-else/1", "entries": []}', "[1, 2]"])
def test_corrupt_or_foreign_file_is_ignored_with_a_warning_and_kept(store, content):
    store.parent.mkdir(parents=True)
    store.write_text(content)
    with pytest.warns(TuningWarning, match="ignoring the tuning file"):
        assert autotune.lookup("gemm", cpu(), "float32", "large") is None
    # a file that is not an xgpu store is never overwritten or moved: record refuses it, naming the fix
    with pytest.raises(InvalidArgumentError, match="not an xgpu tuning store.*left alone.*XGPU_TUNING_DIR"):
        autotune.record("gemm", cpu(), "float32", "large", {"tm": 1}, gflops=1.0)
    assert store.read_text() == content and sorted(p.name for p in store.parent.iterdir()) == ["tuning.json"]


def test_library_uses_a_stored_variant_without_code_change():
    dev = cpu()
    default = config_for(dev, np.dtype(np.float32))
    tuned = GemmConfig(local_tiles=False, tm=32, tn=16, wm=4, wn=2, kc=128)
    assert tuned != default
    autotune.record("gemm", dev, "float32", "large", {**tuned.__dict__}, gflops=1.0)
    _, cfg_large = _kernel(dev, np.dtype(np.float32), False, False, None, "large")
    _, cfg_small = _kernel(dev, np.dtype(np.float32), False, False, None, "small")
    assert cfg_large == tuned and cfg_small == default
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, (600, 520)).astype(np.float32), rng.uniform(-1, 1, (520, 530)).astype(np.float32)
    got = xgpu.gemm(xgpu.asarray(a, dev), xgpu.asarray(b, dev)).get()  # 600*530*520 >= 512**3: large
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    monkeypatch_env = {"XGPU_TUNING": "0"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(*next(iter(monkeypatch_env.items())))
        assert _kernel(dev, np.dtype(np.float32), False, False, None, "large")[1] == default


def test_gemm_neighbours_fit_the_device():
    dev = cpu()
    default = config_for(dev, np.dtype(np.float32))
    found = neighbours(default, dev, np.dtype(np.float32))
    assert found and default not in found
    for cfg in found:
        assert cfg.tm % cfg.wm == 0 and cfg.tn % (cfg.wn * cfg.pw) == 0
        assert 1 <= cfg.work_group_size <= dev.max_work_group_size
    if default.panel:  # panels per work-item are searched too
        assert {c.pw for c in found} - {default.pw}


def test_tune_command_small_budget_then_show_and_clear(store):
    dev = cpu()
    proc = run_xgpu("tune", "gemm", "--device", dev.id, "--size", "256", "--budget", "90", "--json")
    out = proc.stdout
    result = json.loads(out[out.index("{"):])
    assert result["kernel"] == "gemm" and result["shape_class"] == "small" and result["device_id"] == dev.id
    assert "stored for" in out
    # the library, reading the same store, now picks the winner for small float32 products
    assert _kernel(dev, np.dtype(np.float32), False, False, None, "small")[1].label == result["label"]
    shown = run_xgpu("tune", "--show").stdout
    assert "gemm" in shown and dev.id in shown and "yes" in shown
    listed = json.loads(run_xgpu("tune", "--show", "--json").stdout)
    assert len(listed["entries"]) == 1
    assert "forgot 1" in run_xgpu("tune", "--clear").stdout
    assert not store.exists()


def test_tune_conv2d_command(store):
    dev = cpu()
    proc = run_xgpu("tune", "conv2d", "--device", dev.id, "--size", "1", "--budget", "90", "--json")
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["kernel"] == "conv2d" and result["shape_class"] == "window 3x3"
    from xgpu.kernels.conv2d import plan

    # the library now picks the stored variant for 3x3 layers (this process reads the same store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = plan(dev, np.float32, 64, 64, (3, 3))
    assert chosen.config.label == result["label"]
    if result["label"] != result["default_label"]:
        assert "tuned variant" in chosen.reason
    from xgpu.kernels.conv2d import igemm_config

    assert plan(dev, np.float32, 64, 64, (1, 1)).config == igemm_config(dev, np.dtype(np.float32))  # not 3x3


def test_tuning_a_simulator_is_refused():
    sim = [d for d in xgpu.devices() if d.is_simulator]
    if not sim:
        pytest.skip("no simulator here")
    proc = run_xgpu("tune", "gemm", "--device", sim[0].id, "--budget", "5", check=False)
    assert proc.returncode == 1 and "is a simulator" in proc.stderr


def test_bad_budget_is_a_clear_error():
    proc = run_xgpu("tune", "gemm", "--device", cpu().id, "--budget", "-1", check=False)
    assert proc.returncode == 1 and "--budget must be a positive" in proc.stderr and "Traceback" not in proc.stderr
