from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import xgpu
from xgpu.errors import BackendUnavailableError, DeviceNotFoundError, InvalidArgumentError

from .conftest import run_xgpu

REQUIRED = [s for s in os.environ.get("XGPU_REQUIRE_DEVICES", "").split(",") if s]


@pytest.mark.skipif(not REQUIRED, reason="XGPU_REQUIRE_DEVICES not set: no list of devices this machine must show")
@pytest.mark.parametrize("spec", REQUIRED)
def test_required_implementation_is_listed(spec):
    matches = xgpu._devices.match_devices(spec)
    assert matches, f"no device matches {spec!r}; devices: {[d.name for d in xgpu.devices()]}"


def test_three_platforms_when_required():
    if len(REQUIRED) < 3:
        pytest.skip("XGPU_REQUIRE_DEVICES names fewer than three implementations")
    platforms = {d.platform for d in xgpu.devices() if d.backend == "opencl"}
    assert len(platforms) >= 3, platforms


def test_device_attributes(xgpu_device):
    d = xgpu_device
    assert d.id.startswith(d.backend + ":")
    assert d.type in ("gpu", "cpu", "accelerator")
    for attr in ("compute_units", "global_mem_bytes", "local_mem_bytes", "max_work_group_size"):
        assert getattr(d, attr) > 0, attr
    assert type(d.clock_mhz) is int  # 0 where the runtime does not say (Intel's CPU runtime)
    assert d.name and d.platform and d.vendor and d.driver_version
    assert d.supports("float32") and d.supports(np.float32)
    assert d.supports("float16"), "every device stores float16 through the load/store helpers"
    assert d.supports("float16", arithmetic=True) == d.fp16_arithmetic
    assert d.supports(np.float64) == d.fp64
    assert not d.supports("complex128")
    # the same object each time (the parametrized one may predate a plugin change that relisted devices)
    assert xgpu.get_device(d.id) is xgpu.get_device(d.id) and xgpu.get_device(d.id).id == d.id
    assert repr(d).startswith("<xgpu.Device " + d.id)


def test_get_device_by_backend_name_and_substring():
    devs = xgpu.devices()
    d = devs[0]
    assert xgpu.get_device(d.backend).backend == d.backend
    part = d.name[: max(3, len(d.name) // 2)].swapcase()  # case-insensitive
    chosen = xgpu.get_device(part)
    # a substring of a device's name, platform, vendor or alias; a simulator only if nothing else matches
    assert part.lower() in " ".join((chosen.name, chosen.platform, chosen.vendor, *chosen.aliases)).lower()
    assert chosen.is_simulator <= d.is_simulator


def test_default_is_never_a_simulator(monkeypatch):
    monkeypatch.delenv("XGPU_DEVICE", raising=False)
    d = xgpu.get_device()
    assert not d.is_simulator
    non_sim = [x for x in xgpu.devices() if not x.is_simulator]
    rank = {"gpu": 0, "accelerator": 1, "cpu": 2}
    assert rank[d.type] == min(rank[x.type] for x in non_sim)


def test_simulator_only_when_asked():
    sims = [d for d in xgpu.devices() if d.is_simulator]
    if not sims:
        pytest.skip("no simulator device here")
    assert xgpu.get_device("oclgrind").is_simulator
    assert xgpu.get_device(sims[0].id) is sims[0]


def test_xgpu_device_env(monkeypatch):
    last = xgpu.devices()[-1]
    monkeypatch.setenv("XGPU_DEVICE", last.id)
    assert xgpu.get_device() is last
    monkeypatch.setenv("XGPU_DEVICE", "no-such-device-anywhere")
    with pytest.raises(DeviceNotFoundError, match="XGPU_DEVICE"):
        xgpu.get_device()


def test_unknown_spec_lists_devices():
    with pytest.raises(DeviceNotFoundError) as info:
        xgpu.get_device("quantum-accelerator-9000")
    message = str(info.value)
    assert "quantum-accelerator-9000" in message
    for d in xgpu.devices():
        assert d.id in message


def test_bad_spec_type():
    with pytest.raises(InvalidArgumentError):
        xgpu.get_device(3)


def test_unavailable_backend_spec():
    status = xgpu.list_backends()
    down = [s for s in status.values() if not s.available]
    if not down:
        pytest.skip("every registered backend is available here")
    with pytest.raises(BackendUnavailableError, match=down[0].name):
        xgpu.get_device(down[0].name)


def test_devices_json_matches_python_api(monkeypatch):
    monkeypatch.delenv("XGPU_DEVICE", raising=False)
    payload = json.loads(run_xgpu("devices", "--json").stdout)
    assert [d["id"] for d in payload["devices"]] == [d.id for d in xgpu.devices()]
    assert payload["default"]["id"] == xgpu.get_device().id
    assert sum(d["default"] for d in payload["devices"]) == 1
    assert payload["default"]["reason"].startswith("default rule: first ")


def test_devices_table_marks_default_and_unavailable():
    out = run_xgpu("devices").stdout
    for d in xgpu.devices():
        assert d.id in out
    assert "* default device: " + xgpu.get_device().id in out
    for s in xgpu.list_backends().values():
        if not s.available:
            assert f"{s.name}: {s.reason}" in " ".join(out.split())  # wrapped at spaces to the width


def test_devices_default_from_env_is_explained():
    last = xgpu.devices()[-1]
    out = run_xgpu("devices", env={"XGPU_DEVICE": last.id}).stdout
    assert f"* default device: {last.id} (XGPU_DEVICE={last.id})" in out


@pytest.mark.parametrize("given,expected", [(None, "1"), ("0", "0")])
def test_pocl_threads_are_pinned_unless_told_otherwise(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "POCL_AFFINITY"}
    if given is not None:
        env["POCL_AFFINITY"] = given
    code = "import os, xgpu; xgpu.devices(); print(os.environ['POCL_AFFINITY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
